/* What this CPU can do at most, to put GEMM throughput in perspective:
 *   fma_gflops: independent FMA chains in registers (no memory traffic), per ISA and dtype;
 *   read_gbs:   streaming reads of a buffer far larger than the caches.
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

__attribute__((target("avx2"))) static double sum_chunk(const float* p, long n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (long i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

/* GB/s of `threads` threads reading disjoint parts of an n-float buffer, best of `reps` passes. */
double read_gbs(int threads, long n, int reps) {
  float* buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return -1;
#pragma omp parallel for num_threads(threads)
  for (long i = 0; i < n; ++i) buf[i] = 1.0f;  /* first touch by the reading threads */
  double best = 0;
  volatile double sink = 0;
  for (int r = 0; r < reps; ++r) {
    double start = omp_get_wtime(), total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      long chunk = n / omp_get_num_threads(), begin = chunk * omp_get_thread_num();
      total += sum_chunk(buf + begin, chunk);
    }
    double gbs = n * sizeof(float) / (omp_get_wtime() - start) / 1e9;
    sink += total;
    if (gbs > best) best = gbs;
  }
  free(buf);
  return best;
}
