// What the AVX-512 kernel files share (isa_avx512.cpp, isa_avx512_bf16.cpp): included after their
// target pragma, so that these functions are compiled for AVX-512. They sit in an unnamed namespace:
// each file keeps its own copy, compiled for its own target (one inline copy, linked into both,
// could carry the other file's instructions).
#pragma once

#include <immintrin.h>

#include "cpu/kernels/kernels.h"

// GCC 12 reports its own intrinsics built on _mm512_undefined_* (_mm512_reduce_add_*, the shuffles
// of hsums_f32, and _mm512_cvtepu16_epi32 and _mm512_slli_epi32 where inlined into some loops) as
// uninitialized. For the rest of each including file, which goes on to compile its kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace linear_ext::cpu {
namespace {

inline __mmask16 first_lanes(int count) { return static_cast<__mmask16>((1u << count) - 1); }
inline __mmask32 first_lanes32(int count) { return static_cast<__mmask32>((1u << count) - 1); }  // count < 32

// The streaming kernels prefetch into L2, further ahead than the L1 tuning, and the row streaming
// sweeps 8 rows of B at a time: for one or two rows of A, and at any rows with broadcast operands.
// Measured on Zen 4 (1 thread, 4096², one process alternating with the L1 tuning of 512 bytes into
// L1 and 4 rows of B): input grad 1.2-1.35x as fast at batch 1-2 and 1.12-1.2x at 3-16; forward
// 1.2-1.38x at batch 1-3, 1.1x at 4 and 1.2x at 8-16. The forward wants 4096 bytes ahead (1.2x at
// 8-16 rows, against 1.02-1.04x with 2048: its first row block streams W only part of the time),
// the row streaming 2048 (1.28x at batch 1, against 1.20x with 4096; even at 3-16 rows).
// Broadcast operands with 8 rows of B, against A's values in registers beside 4 (8 spilled them:
// 0.46-0.91x), one process alternating both: with B streaming from memory, float32 1.12-1.56x as
// fast at 3-16 rows on 1 thread and 1.09-1.25x on 2, float64 1.09-1.37x at 4-8 rows, 1-2 rows
// even; float16, and bfloat16 through float32, 1.13-1.54x at 1-8 rows, in cache too. float32 and
// float64 with B in cache (512²-1024²) keep registers: 0.83-0.95x there. 16 rows of B: 0.89-1.04x.
constexpr StreamTuning kAvx512StreamTuning = {2, 4096, 2048, 8, 8};

// Lane j: the sum of a[j]'s float lanes, for j < N ≤ 16. A transpose-and-add tree: the 256-bit
// halves of two registers added (s: two registers' 8 partial sums each), then the 128-bit quarters
// of two of those (u: four registers' 4 partial sums each), then pairs of lanes (within quarters),
// twice; lane 4q + t then holds a[4t + q]'s sum, and one permute puts the sums in order.
template <int N>
__m512 hsums_f32(const __m512* a) {
  const auto at = [&](int j) { return j < N ? a[j] : _mm512_setzero_ps(); };
  __m512 s[8], u[4];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    s[i] = _mm512_add_ps(_mm512_shuffle_f32x4(at(2 * i), at(2 * i + 1), 0x44),
                         _mm512_shuffle_f32x4(at(2 * i), at(2 * i + 1), 0xEE));
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
    u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x88),
                         _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xDD));
  const auto pair_sums = [](__m512 x, __m512 y) {  // per quarter: x0+x1, x2+x3, y0+y1, y2+y3
    return _mm512_add_ps(_mm512_shuffle_ps(x, y, _MM_SHUFFLE(2, 0, 2, 0)), _mm512_shuffle_ps(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
  };
  const __m512 sums = pair_sums(pair_sums(u[0], u[1]), pair_sums(u[2], u[3]));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), sums);
}

}  // namespace
}  // namespace linear_ext::cpu
