// AVX2 + FMA kernels. Micro-kernels 6×16 (float) and 6×8 (double): 12 accumulators + 2 B
// registers + 1 broadcast A value use 15 of the 16 ymm registers, 12 FMAs per 8 loads; 2- and
// 4-row variants take the last row sliver of rows that are not a multiple of 6. Dot
// kernels (skinny forward) take 3 rows of W × 4 rows of X: 12 accumulators, 7 loads per 12 FMAs.
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
#pragma GCC target("avx2,fma,f16c")

namespace linear_ext::cpu::avx2 {

inline __m256i first_lanes_mask32(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// store_partial: plain stores of 4, 2 and 1 lanes, as a masked store (vmaskmovps) costs Zen 3 about
// ten times as much as a plain one (a batch-1 weight grad with 3 or 10 columns, all edge tiles,
// measured 10-20% slower with it).
struct F32 {
  using T = float;
  using Reg = __m256;
  static constexpr int width = 8;
  static constexpr StreamTuning stream = kL1StreamTuning;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm256_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm256_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static T hsum(Reg r) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  // Lane j: the sum of a[j]'s lanes, for j < N ≤ 8.
  template <int N>
  static Reg hsums(const Reg* a) {
    const auto at = [&](int j) { return j < N ? a[j] : _mm256_setzero_ps(); };
    // Per 128-bit half, q0 holds the sums of a[0..3]'s four lanes there, q1 those of a[4..7].
    const Reg q0 = _mm256_hadd_ps(_mm256_hadd_ps(at(0), at(1)), _mm256_hadd_ps(at(2), at(3)));
    const Reg q1 = _mm256_hadd_ps(_mm256_hadd_ps(at(4), at(5)), _mm256_hadd_ps(at(6), at(7)));
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
  }
  static Reg load_from(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load_from(const c10::BFloat16* p) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
  }
  static Reg load_from(const c10::Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Reg load_from_partial(const float* p, int count) { return _mm256_maskload_ps(p, first_lanes_mask32(count)); }
  static void store_partial(float* p, Reg r, int count) {
    __m128 half = _mm256_castps256_ps128(r);
    if (count & 4) {
      _mm_storeu_ps(p, half);
      half = _mm256_extractf128_ps(r, 1);
      p += 4;
    }
    if (count & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), half);
      half = _mm_movehl_ps(half, half);
      p += 2;
    }
    if (count & 1) _mm_store_ss(p, half);
  }
};

struct F64 {
  using T = double;
  using Reg = __m256d;
  static constexpr int width = 4;
  static constexpr StreamTuning stream = kL1StreamTuning;
  static Reg zero() { return _mm256_setzero_pd(); }
  static Reg loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, Reg r) { _mm256_storeu_pd(p, r); }
  static Reg broadcast(T x) { return _mm256_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
  static T hsum(Reg r) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(r), _mm256_extractf128_pd(r, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  // Lane j: the sum of a[j]'s lanes, for j < N ≤ 4.
  template <int N>
  static Reg hsums(const Reg* a) {
    const auto at = [&](int j) { return j < N ? a[j] : _mm256_setzero_pd(); };
    // Per 128-bit half, the sums of a[0..1]'s two lanes there, then of a[2..3]'s.
    const Reg h01 = _mm256_hadd_pd(at(0), at(1)), h23 = _mm256_hadd_pd(at(2), at(3));
    return _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20), _mm256_permute2f128_pd(h01, h23, 0x31));
  }
  static Reg load_from(const double* p) { return _mm256_loadu_pd(p); }
  static Reg load_from_partial(const double* p, int count) {
    const __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3));
    return _mm256_maskload_pd(p, mask);
  }
  // A double's lanes as two float lanes each.
  static void store_partial(double* p, Reg r, int count) {
    F32::store_partial(reinterpret_cast<float*>(p), _mm256_castpd_ps(r), 2 * count);
  }
};

// The Zen 3 crossovers (kernels.h), but one row of float32 takes the dot kernels from K = 2: rows of
// W of up to two registers have their own loop (dot_short_rows in dot_simd.h), 1.7-2.9x as fast as
// the packed loops at batch 1 × 4096 outputs × K = 2-8 (AVX2 kernels on Zen 4). float64 keeps the
// Zen 3 table: not measured against its packed loops.
constexpr DotMinDepth kF32DotMinDepth = [] {
  DotMinDepth d = kDotMinDepthZen3;
  d.min_k[1] = 1;
  return d;
}();

}  // namespace linear_ext::cpu::avx2

#include "cpu/kernels/dot_simd.h"
#include "cpu/kernels/rowstream_simd.h"
#include "cpu/kernels/ukernel_simd.h"

#pragma GCC pop_options

namespace linear_ext::cpu {

const IsaKernels kAvx2Kernels = {
    "avx2",
    {&simd_microkernel<avx2::F32, 6, 2>, 6, 16, 8, {&simd_microkernel<avx2::F32, 6, 1>, nullptr},
     &simd_microkernel_packing_b<avx2::F32, 6, 2, 16>,
     {&simd_microkernel_row_major_a<avx2::F32, 6, 1>, &simd_microkernel_row_major_a<avx2::F32, 6, 2>, nullptr},
     &simd_microkernel_row_major_a_packing_b<avx2::F32, 6, 2, 4>,
     {&simd_microkernel_few_rows<avx2::F32, 2, 6, 2>, &simd_microkernel_few_rows<avx2::F32, 4, 6, 2>, nullptr},
     {&simd_microkernel_row_major_a<avx2::F32, 2, 2>, &simd_microkernel_row_major_a<avx2::F32, 4, 2>, nullptr}},
    {&simd_microkernel<avx2::F64, 6, 2>, 6, 8, 4, {&simd_microkernel<avx2::F64, 6, 1>, nullptr},
     &simd_microkernel_packing_b<avx2::F64, 6, 2, 16>,
     {&simd_microkernel_row_major_a<avx2::F64, 6, 1>, &simd_microkernel_row_major_a<avx2::F64, 6, 2>, nullptr},
     &simd_microkernel_row_major_a_packing_b<avx2::F64, 6, 2, 4>,
     {&simd_microkernel_few_rows<avx2::F64, 2, 6, 2>, &simd_microkernel_few_rows<avx2::F64, 4, 6, 2>, nullptr},
     {&simd_microkernel_row_major_a<avx2::F64, 2, 2>, &simd_microkernel_row_major_a<avx2::F64, 4, 2>, nullptr}},
    {&pack_avx2_f32, &simd_dot_kernel<avx2::F32, float, 3, 4>, avx2::kF32DotMinDepth, &simd_rowstream_kernel<avx2::F32, float, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_f64, &simd_dot_kernel<avx2::F64, double, 3, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<avx2::F64, double, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_bf16, &simd_dot_kernel<avx2::F32, c10::BFloat16, 3, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<avx2::F32, c10::BFloat16, kRowStreamMaxRows>, &round_avx2_bf16},
    {&pack_avx2_f16, &simd_dot_kernel<avx2::F32, c10::Half, 3, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<avx2::F32, c10::Half, kRowStreamMaxRows>, &round_avx2_f16},
};

}  // namespace linear_ext::cpu
