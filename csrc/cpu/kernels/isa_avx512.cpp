// AVX-512F kernels. Micro-kernels 8×48 (float) and 8×24 (double): 24 accumulators + 3 B
// registers + 1 broadcast A value use 28 of the 32 zmm registers, and 8 broadcasts + 3 loads per
// 24 FMAs keep the front end under its 4 µops/cycle (12×32 needs 14 loads per 24 FMAs and ran
// ~10% slower). B streams from L2, so it is prefetched 8 k-steps ahead (16 by the packing kernel,
// which reads it from memory). row_major_a_packing_b reads B's rows in place from L2, where rows a
// power of two apart crowd a few L1 sets: 8 steps ahead its prefetches were evicted before use, 4
// measured 6-7% faster. The float kernels that read A in place (row_major_a) do not prefetch their
// packed B panel: it is read in address order, which the hardware prefetchers follow, and the
// prefetch instructions took front-end slots from the eight A rows' broadcasts (without them the
// MNIST input grads and forwards ran 3-8% faster; double measured even). Dot kernels (skinny
// forward) take 4 rows of W × 4 rows of X: 16 accumulators, 8 loads per 16 FMAs; up to 8 rows of X
// run as one block, with up to 24 accumulators (6 rows of W at 4 rows of X, 3 at 7-8). Packing uses
// the AVX2 packers (every AVX-512 CPU has AVX2 and F16C).
//
// Standard and c10 headers come before the target pragma so that their inline functions are
// compiled for the baseline ISA only (the linker may pick any TU's copy of those).
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/pack_avx2.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma,f16c")

#include "cpu/kernels/avx512_common.h"

namespace linear_ext::cpu::avx512 {

struct F32 {
  using T = float;
  using Reg = __m512;
  static constexpr int width = 16;
  static constexpr StreamTuning stream = kAvx512StreamTuning;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static T hsum(Reg r) { return _mm512_reduce_add_ps(r); }
  template <int N>
  static Reg hsums(const Reg* a) { return hsums_f32<N>(a); }
  static Reg load_from(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load_from(const c10::BFloat16* p) {
    const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
  }
  static Reg load_from(const c10::Half* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Reg load_from_partial(const float* p, int count) { return _mm512_maskz_loadu_ps(first_lanes(count), p); }
  static void store_partial(float* p, Reg r, int count) { _mm512_mask_storeu_ps(p, first_lanes(count), r); }
};

struct F64 {
  using T = double;
  using Reg = __m512d;
  static constexpr int width = 8;
  static constexpr StreamTuning stream = kAvx512StreamTuning;
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_pd(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  static T hsum(Reg r) { return _mm512_reduce_add_pd(r); }
  // Lane j: the sum of a[j]'s lanes, for j < N ≤ 8: as hsums_f32 (avx512_common.h), with one
  // pairwise step; lane 2q + t then holds a[4t + q]'s sum.
  template <int N>
  static Reg hsums(const Reg* a) {
    const auto at = [&](int j) { return j < N ? a[j] : _mm512_setzero_pd(); };
    Reg s[4], u[2];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
      s[i] = _mm512_add_pd(_mm512_shuffle_f64x2(at(2 * i), at(2 * i + 1), 0x44),
                           _mm512_shuffle_f64x2(at(2 * i), at(2 * i + 1), 0xEE));
#pragma GCC unroll 2
    for (int i = 0; i < 2; ++i)
      u[i] = _mm512_add_pd(_mm512_shuffle_f64x2(s[2 * i], s[2 * i + 1], 0x88),
                           _mm512_shuffle_f64x2(s[2 * i], s[2 * i + 1], 0xDD));
    const Reg sums = _mm512_add_pd(_mm512_shuffle_pd(u[0], u[1], 0x00), _mm512_shuffle_pd(u[0], u[1], 0xFF));
    return _mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), sums);
  }
  static Reg load_from(const double* p) { return _mm512_loadu_pd(p); }
  static Reg load_from_partial(const double* p, int count) {
    return _mm512_maskz_loadu_pd(static_cast<__mmask8>(first_lanes(count)), p);
  }
  static void store_partial(double* p, Reg r, int count) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>(first_lanes(count)), r);
  }
};

// Where the skinny forward turns to the dot kernels (DotMinDepth: dot products when K > min_k[rows]),
// per dtype: each the midpoint between the grid depths (16-1024) where the packed loops last won
// and the dot kernels first did, at 4096 outputs on 1 thread (Zen 4, one process alternating the
// two paths; float32 gave the same crossovers at 1024 outputs and on 2 threads). The dot block for
// 7-8 rows has three rows of W (dot_nb_for_rows), and the packed loops an 8-row micro-kernel, so
// those rows cross deepest. 16-bit values are converted to float by the dot kernels' loads of both
// operands, by the packed loops once, in packing: their crossovers lie deeper still. One row of
// float32 or float64 takes the dot kernels from K = 2: rows of W of up to two registers have their
// own loop (dot_short_rows in dot_simd.h), faster than the packed loops at any such K.
constexpr DotMinDepth kF32DotMinDepth = {{0, 1, 12, 40, 44, 80, 88, 176, 256, 72, 88, 88, 112, 120, 144, 176, 224}};
constexpr DotMinDepth kF64DotMinDepth = {{0, 1, 12, 12, 24, 36, 48, 104, 176, 32, 36, 40, 48, 60, 72, 92, 112}};
constexpr DotMinDepth kBf16DotMinDepth = {{0, 16, 36, 56, 72, 104, 136, 200, 280, 144, 168, 192, 240, 352, 400, 500, 560}};
constexpr DotMinDepth kF16DotMinDepth = {{0, 32, 56, 80, 120, 160, 208, 352, 500, 224, 256, 320, 376, 500, 560, 640, 740}};

// RoundFn: a 16-bit output's float sums rounded as round_avx2_bf16 and round_avx2_f16 do, sixteen
// at a time, the last n % 16 of each row by those. A bfloat16 weight grad at batch 1-16 × 4096² (its
// output's pages mapped) ran 1.12-1.18x as fast as with eight at a time on 2 threads, even on 1 (one
// process alternating both); other shapes even.
void round_bf16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::BFloat16* dst, int64_t ld_dst) {
  const __m512i bias = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1), nan = _mm512_set1_epi32(0x7FC0);
  const int64_t full = n / 16 * 16;
  for (int64_t row = 0; row < m; ++row) {
    for (int64_t i = 0; i < full; i += 16) {
      const __m512 v = _mm512_loadu_ps(src + row * ld_src + i);
      const __m512i u = _mm512_castps_si512(v);
      const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
      __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
      r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), nan);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + row * ld_dst + i), _mm512_cvtepi32_epi16(r));
    }
  }
  if (full < n) round_avx2_bf16(src + full, ld_src, m, n - full, dst + full, ld_dst);
}

void round_f16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::Half* dst, int64_t ld_dst) {
  const int64_t full = n / 16 * 16;
  for (int64_t row = 0; row < m; ++row)
    for (int64_t i = 0; i < full; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + row * ld_dst + i),
                          _mm512_cvtps_ph(_mm512_loadu_ps(src + row * ld_src + i), _MM_FROUND_TO_NEAREST_INT));
  if (full < n) round_avx2_f16(src + full, ld_src, m, n - full, dst + full, ld_dst);
}

}  // namespace linear_ext::cpu::avx512

#include "cpu/kernels/dot_simd.h"
#include "cpu/kernels/rowstream_simd.h"
#include "cpu/kernels/ukernel_simd.h"

#pragma GCC pop_options

namespace linear_ext::cpu {

const IsaKernels kAvx512Kernels = {
    "avx512",
    {&simd_microkernel<avx512::F32, 8, 3, 8>, 8, 48, 16,
     {&simd_microkernel<avx512::F32, 8, 1, 8>, &simd_microkernel<avx512::F32, 8, 2, 8>},
     &simd_microkernel_packing_b<avx512::F32, 8, 3, 16>,
     {&simd_microkernel_row_major_a<avx512::F32, 8, 1, 0>, &simd_microkernel_row_major_a<avx512::F32, 8, 2, 0>,
      &simd_microkernel_row_major_a<avx512::F32, 8, 3, 0>},
     &simd_microkernel_row_major_a_packing_b<avx512::F32, 8, 3, 4>,
     {nullptr, nullptr, nullptr},
     {nullptr, nullptr, nullptr}},
    {&simd_microkernel<avx512::F64, 8, 3, 8>, 8, 24, 8,
     {&simd_microkernel<avx512::F64, 8, 1, 8>, &simd_microkernel<avx512::F64, 8, 2, 8>},
     &simd_microkernel_packing_b<avx512::F64, 8, 3, 16>,
     {&simd_microkernel_row_major_a<avx512::F64, 8, 1, 8>, &simd_microkernel_row_major_a<avx512::F64, 8, 2, 8>,
      &simd_microkernel_row_major_a<avx512::F64, 8, 3, 8>},
     &simd_microkernel_row_major_a_packing_b<avx512::F64, 8, 3, 4>,
     {nullptr, nullptr, nullptr},
     {nullptr, nullptr, nullptr}},
    {&pack_avx2_f32, &simd_dot_kernel<avx512::F32, float, 4, 4, 8, 24>, avx512::kF32DotMinDepth, &simd_rowstream_kernel<avx512::F32, float, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_f64, &simd_dot_kernel<avx512::F64, double, 4, 4, 8, 24>, avx512::kF64DotMinDepth, &simd_rowstream_kernel<avx512::F64, double, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_bf16, &simd_dot_kernel<avx512::F32, c10::BFloat16, 4, 4, 8, 24>, avx512::kBf16DotMinDepth, &simd_rowstream_kernel<avx512::F32, c10::BFloat16, kRowStreamMaxRows>, &avx512::round_bf16},
    {&pack_avx2_f16, &simd_dot_kernel<avx512::F32, c10::Half, 4, 4, 8, 24>, avx512::kF16DotMinDepth, &simd_rowstream_kernel<avx512::F32, c10::Half, kRowStreamMaxRows>, &avx512::round_f16},
};

}  // namespace linear_ext::cpu
