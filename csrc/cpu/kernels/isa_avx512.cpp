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
// GCC 12 reports its own intrinsics built on _mm512_undefined_* (_mm512_reduce_add_*, and
// _mm512_cvtepu16_epi32 and _mm512_slli_epi32 where inlined into some loops) as uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace linear_ext::cpu::avx512 {

inline __mmask16 first_lanes(int count) { return static_cast<__mmask16>((1u << count) - 1); }

// The streaming kernels prefetch into L2, further ahead than the L1 tuning, and the row streaming
// sweeps 8 rows of B for one or two rows of A. Measured on Zen 4 (1 thread, 4096², one process
// alternating with the L1 tuning of 512 bytes into L1 and 4 rows of B): input grad 1.2-1.35x as
// fast at batch 1-2 and 1.12-1.2x at 3-16; forward 1.2-1.38x at batch 1-3, 1.1x at 4 and 1.2x at
// 8-16. The forward wants 4096 bytes ahead (1.2x at 8-16 rows, against 1.02-1.04x with 2048: its
// first row block streams W only part of the time), the row streaming 2048 (1.28x at batch 1,
// against 1.20x with 4096; even at 3-16 rows). Eight rows of B at 3-8 rows of A, whose broadcasts
// then spill, measured 0.6-0.95x.
constexpr StreamTuning kStreamTuning = {2, 4096, 2048, 8};

struct F32 {
  using T = float;
  using Reg = __m512;
  static constexpr int width = 16;
  static constexpr StreamTuning stream = kStreamTuning;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static T hsum(Reg r) { return _mm512_reduce_add_ps(r); }
  // Lane j: the sum of a[j]'s lanes, for j < N ≤ 16. A transpose-and-add tree: the 256-bit halves
  // of two registers added (s: two registers' 8 partial sums each), then the 128-bit quarters of
  // two of those (u: four registers' 4 partial sums each), then pairs of lanes (within quarters),
  // twice; lane 4q + t then holds a[4t + q]'s sum, and one permute puts the sums in order.
  template <int N>
  static Reg hsums(const Reg* a) {
    const auto at = [&](int j) { return j < N ? a[j] : _mm512_setzero_ps(); };
    Reg s[8], u[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(at(2 * i), at(2 * i + 1), 0x44),
                           _mm512_shuffle_f32x4(at(2 * i), at(2 * i + 1), 0xEE));
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
      u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xDD));
    const auto pair_sums = [](Reg x, Reg y) {  // per quarter: x0+x1, x2+x3, y0+y1, y2+y3
      return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
    };
    const Reg sums = pair_sums(pair_sums(u[0], u[1]), pair_sums(u[2], u[3]));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), sums);
  }
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
  static constexpr StreamTuning stream = kStreamTuning;
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_pd(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
  static T hsum(Reg r) { return _mm512_reduce_add_pd(r); }
  // Lane j: the sum of a[j]'s lanes, for j < N ≤ 8: as F32::hsums, with one pairwise step; lane
  // 2q + t then holds a[4t + q]'s sum.
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
    {&pack_avx2_f32, &simd_dot_kernel<avx512::F32, float, 4, 4, 8, 24>, &simd_rowstream_kernel<avx512::F32, float, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_f64, &simd_dot_kernel<avx512::F64, double, 4, 4, 8, 24>, &simd_rowstream_kernel<avx512::F64, double, kRowStreamMaxRows>, nullptr},
    {&pack_avx2_bf16, &simd_dot_kernel<avx512::F32, c10::BFloat16, 4, 4, 8, 24>, &simd_rowstream_kernel<avx512::F32, c10::BFloat16, kRowStreamMaxRows>, &round_avx2_bf16},
    {&pack_avx2_f16, &simd_dot_kernel<avx512::F32, c10::Half, 4, 4, 8, 24>, &simd_rowstream_kernel<avx512::F32, c10::Half, kRowStreamMaxRows>, &round_avx2_f16},
};

}  // namespace linear_ext::cpu
