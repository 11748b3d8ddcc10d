/* What this CPU can do at most, to put GEMM throughput in perspective:
 *   fma_gflops: independent FMA chains in registers (no memory traffic), per ISA and dtype;
 *   read_gbs:   streaming reads of a buffer far larger than the caches;
 *   read_seconds: one such read of a caller's buffer.
 * Built and loaded by machine_peaks.py. Twelve chains per thread hide the FMA latency (4-5 cycles)
 * on both FMA ports. */
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>

#define CHAINS 12

#define FMA_LOOP(vec, set1, fmadd, reduce_t)                                \
  vec acc[CHAINS];                                                        \
  const vec a = set1(0.999999), b = set1(1e-6);                           \
  for (int j = 0; j < CHAINS; ++j) acc[j] = set1(j);                      \
  for (long i = 0; i < iters; ++i)                                        \
    _Pragma("GCC unroll 12") for (int j = 0; j < CHAINS; ++j) acc[j] = fmadd(acc[j], a, b); \
  vec s = acc[0];                                                         \
  for (int j = 1; j < CHAINS; ++j) s = fmadd(s, a, acc[j]);               \
  volatile reduce_t sink = *(reduce_t*)&s;                                \
  (void)sink;

__attribute__((target("avx2,fma"))) static void fma_avx2_f32(long iters) { FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, float) }
__attribute__((target("avx2,fma"))) static void fma_avx2_f64(long iters) { FMA_LOOP(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, double) }
__attribute__((target("avx512f"))) static void fma_avx512_f32(long iters) { FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, float) }
__attribute__((target("avx512f"))) static void fma_avx512_f64(long iters) { FMA_LOOP(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, double) }

/* GFLOP/s of `threads` threads each running `iters` steps; isa_bits 256 or 512, dtype_bytes 4 or 8. */
double fma_gflops(int threads, long iters, int isa_bits, int dtype_bytes) {
  double start = omp_get_wtime();
#pragma omp parallel num_threads(threads)
  {
    if (isa_bits == 512) dtype_bytes == 4 ? fma_avx512_f32(iters) : fma_avx512_f64(iters);
    else dtype_bytes == 4 ? fma_avx2_f32(iters) : fma_avx2_f64(iters);
  }
  double seconds = omp_get_wtime() - start;
  double lanes = isa_bits / 8.0 / dtype_bytes;
  return threads * (double)iters * CHAINS * lanes * 2 / seconds / 1e9;
}

/* XOR of the n 32-bit words at p: loads and nothing else, whatever the bytes hold (float
 * adds could slow down on the subnormals and NaNs of other dtypes' bytes). Read as READ_STREAMS
 * equal parts in step, a cache line of each at a time, each prefetched PREFETCH_BYTES ahead into
 * L2 (prefetches past the end do not fault): the way our dot kernels read rows of W. One stream left
 * to the hardware prefetchers was not the machine's bandwidth: on 2 threads it read 31.7 GB/s of a
 * W our forward streamed at 46.6. Eight prefetched streams read at least as fast as one in every
 * run measured (Zen 4, 64 MiB, evicted first): 1 thread 28.4-29.1 GB/s against 26.1-28.0,
 * 2 threads 34.9-36.3 against 33.0-34.1, and 51.7-56.0 against 40.0-45.8 in a faster minute;
 * four streams read less than one on 1 thread; 2048-8192 bytes ahead and 16 streams the same. */
#define READ_STREAMS 8
#define PREFETCH_BYTES 2048

__attribute__((target("avx2"))) static unsigned xor_chunk(const float* p, long n) {
  const long part = n / READ_STREAMS / 16 * 16; /* whole 64-byte lines per stream */
  __m256i s0 = _mm256_setzero_si256(), s1 = s0;
  for (long i = 0; i < part; i += 16)
    for (int j = 0; j < READ_STREAMS; ++j) {
      const float* q = p + j * part + i;
      _mm_prefetch((const char*)q + PREFETCH_BYTES, _MM_HINT_T1);
      s0 = _mm256_xor_si256(s0, _mm256_loadu_si256((const __m256i*)q));
      s1 = _mm256_xor_si256(s1, _mm256_loadu_si256((const __m256i*)(q + 8)));
    }
  unsigned lanes[8], bits = 0;
  _mm256_storeu_si256((__m256i*)lanes, _mm256_xor_si256(s0, s1));
  for (int j = 0; j < 8; ++j) bits ^= lanes[j];
  const unsigned* rest = (const unsigned*)(p + READ_STREAMS * part); /* the last, partial lines */
  for (long i = 0; i < n - READ_STREAMS * part; ++i) bits ^= rest[i];
  return bits;
}

/* What one thread's read of the n words at p folds to, for the tests: every word read, once. */
unsigned read_xor(const float* p, long n) { return xor_chunk(p, n); }

/* Seconds for `threads` threads to read the n floats at p once, each its own equal part, from when
 * all of them are ready to when the last is done (waking the threads is not counted): a pure
 * stream, the reference for a kernel that streams an operand (bench_linear.py's %bw). */
double read_seconds(const float* p, long n, int threads) {
  double start = 0, seconds = 0;
  unsigned total = 0;
#pragma omp parallel num_threads(threads) reduction(^ : total)
  {
#pragma omp barrier
#pragma omp master
    start = omp_get_wtime();
    long chunk = n / omp_get_num_threads(), begin = chunk * omp_get_thread_num();
    total ^= xor_chunk(p + begin, chunk);
#pragma omp barrier
#pragma omp master
    seconds = omp_get_wtime() - start;
  }
  volatile unsigned sink = total;
  (void)sink;
  return seconds;
}

/* GB/s of `threads` threads reading disjoint parts of an n-float buffer, best of `reps` passes. */
double read_gbs(int threads, long n, int reps) {
  float* buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return -1;
#pragma omp parallel for num_threads(threads)
  for (long i = 0; i < n; ++i) buf[i] = 1.0f;  /* first touch by the reading threads */
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    double gbs = n * sizeof(float) / read_seconds(buf, n, threads) / 1e9;
    if (gbs > best) best = gbs;
  }
  free(buf);
  return best;
}
