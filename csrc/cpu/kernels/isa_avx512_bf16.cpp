// bfloat16 GEMMs on AVX512_BF16's dot-product instruction: vdpbf16ps adds, per float32 lane, the
// products of two pairs of bfloat16 values, so one instruction does 32 multiply-adds where the
// float32 FMA does 16. Measured on Zen 4: torch's bfloat16 matmul (oneDNN, on this instruction)
// ran at ~210 GFLOP/s per core, ~2x the float32 FMA peak, and 2x our float32 micro-kernel fed with
// converted bfloat16.
//
// Layout: packing pairs consecutive k-steps. A packed sliver holds, per pair of k-steps, R 32-bit
// words (low half the even k-step's value, high half the odd one's; a missing odd step is zero),
// in the float slivers of the float32 kernels (kernels.h's PackFn layout with kc/2 rounded up
// steps of 32 bits). So the float32 micro-kernel body (ukernel_simd.h) runs unchanged: it
// broadcasts an A word and multiplies it with NR words of B, with V::fma doing a pair per lane.
// C, the bias and the stores stay float32. The skinny forward's dot kernels (dot_simd.h) run on it
// too: rows of X and W are both contiguous along k, so 32 values loaded as they lie are 16 pairs,
// no packing needed (batch 8-16 × 4096² forwards: 0.7-0.9x torch's speed on float32 FMAs over
// converted values, 1.3-1.6x on pairs). So does the input grad's row streaming, two rows of B
// interleaved per register (batch 16 × 4096²: 0.8x torch → 1.25x; with B in cache, as fast as the
// pair kernels' packed loops or up to 1.8x faster at 4-8 rows).
//
// Semantics: vdpbf16ps reads subnormal inputs as zero and flushes subnormal results, whatever the
// float mode (as torch's own bfloat16 matmul does on these CPUs); each step adds the odd k-step's
// exact product, then the even one's, each rounded to float32 once, as an FMA would.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/pack_avx2.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16,avx2,fma,f16c")

#include "cpu/kernels/avx512_common.h"

namespace linear_ext::cpu::avx512_bf16 {

// Float32 registers whose lanes each hold a pair of bfloat16 k-steps: fma(a, b, c) = c + a·b per
// pair (vdpbf16ps). Loads, stores and adds act on float32 sums (C, the bias) as for F32.
struct Bf16Pairs {
  using T = float;
  using Reg = __m512;
  static constexpr int width = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_ps(x); }  // a pair's 32 bits, copied bit for bit
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_dpbf16_ps(c, (__m512bh)a, (__m512bh)b); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg load_from_partial(const T* p, int count) { return _mm512_maskz_loadu_ps(first_lanes(count), p); }
  static void store_partial(T* p, Reg r, int count) { _mm512_mask_storeu_ps(p, first_lanes(count), r); }

  // For the dot kernels (dot_simd.h), whose operands are both contiguous along k: 32 bfloat16
  // values loaded as they lie are already 16 pairs of k-steps, so the rows need no packing.
  static constexpr int values_per_load = 32;
  static constexpr StreamTuning stream = kAvx512StreamTuning;
  static Reg load_from(const c10::BFloat16* p) { return _mm512_loadu_ps(reinterpret_cast<const float*>(p)); }
  static Reg load_from_partial(const c10::BFloat16* p, int count) {
    return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(first_lanes32(count), p));
  }
  static T hsum(Reg r) { return _mm512_reduce_add_ps(r); }
  template <int N>
  static Reg hsums(const Reg* a) { return hsums_f32<N>(a); }
};

namespace {

// Stores one pair (the odd k-step zero where there is none) as its 32-bit word at `out`, and adds
// its values to *sum in k order when the row sums are wanted.
void store_pair(c10::BFloat16 even, c10::BFloat16 odd, bool has_odd, float* out, float* sum) {
  const uint32_t word = static_cast<uint32_t>(even.x) | static_cast<uint32_t>(has_odd ? odd.x : 0) << 16;
  std::memcpy(out, &word, sizeof word);
  if (sum) {
    *sum += static_cast<float>(even);
    if (has_odd) *sum += static_cast<float>(odd);
  }
}

// Any strides, one value at a time.
void pack_pairs_scalar(const c10::BFloat16* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc,
                       float* dst, float* sums) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t s0 = 0; s0 < width; s0 += R, src += R * vs, dst += R * kp) {
    const int64_t n = width - s0 < R ? width - s0 : R;
    for (int64_t pp = 0; pp < kp; ++pp) {
      const bool has_odd = 2 * pp + 1 < kc;
      for (int64_t i = 0; i < R; ++i) {
        if (i >= n) {
          dst[pp * R + i] = 0.0f;
          continue;
        }
        const c10::BFloat16* even = src + i * vs + 2 * pp * ks;
        store_pair(*even, has_odd ? even[ks] : c10::BFloat16(), has_odd, dst + pp * R + i, sums ? sums + s0 + i : nullptr);
      }
    }
  }
}

// vs == 1 (dY·W's W, dYᵀ·X's dYᵀ and X): a k-step's values are contiguous, so a pair of k-steps
// is two rows interleaved, 8 values at a time; row sums are added the same way, even row first.
void pack_pairs_rows(const c10::BFloat16* src, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                     float* sums) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t s0 = 0; s0 < width; s0 += R, src += R, dst += R * kp) {
    const int64_t n = width - s0 < R ? width - s0 : R;
    const int64_t n8 = n / 8 * 8;
    for (int64_t pp = 0; pp < kp; ++pp) {
      const c10::BFloat16* even = src + 2 * pp * ks;
      const bool has_odd = 2 * pp + 1 < kc;
      const c10::BFloat16* odd = even + ks;
      float* out = dst + pp * R;
      for (int64_t i = 0; i < n8; i += 8) {
        const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(even + i));
        const __m128i o = has_odd ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(odd + i)) : _mm_setzero_si128();
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_unpacklo_epi16(e, o));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 4), _mm_unpackhi_epi16(e, o));
        if (sums) {
          const auto widen = [](__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); };
          __m256 s = _mm256_add_ps(_mm256_loadu_ps(sums + s0 + i), widen(e));
          if (has_odd) s = _mm256_add_ps(s, widen(o));
          _mm256_storeu_ps(sums + s0 + i, s);
        }
      }
      for (int64_t i = n8; i < R; ++i) {
        if (i >= n) {
          out[i] = 0.0f;
          continue;
        }
        store_pair(even[i], has_odd ? odd[i] : c10::BFloat16(), has_odd, out + i, sums ? sums + s0 + i : nullptr);
      }
    }
  }
}

// PackFn for the pair layout above.
void pack_pairs(const c10::BFloat16* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                float* sums) {
  // ks == 1 (X·Wᵀ's X and W, dY·W's dY): with an even row stride and depth, and the source 4-byte
  // aligned, a pair is one aligned 32-bit word of the source, so the sliver is the float32 packer's
  // transpose of 32-bit words, bit for bit (no row sums: only dYᵀ·X asks for them, at ks ≠ 1).
  // An odd depth (only in a GEMM of odd K, whose contiguous rows are then odd too) packs one value
  // at a time.
  if (ks == 1 && !sums && vs % 2 == 0 && kc % 2 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {
    pack_avx2_f32(reinterpret_cast<const float*>(src), vs / 2, 1, width, R, kc / 2, dst, nullptr);
    return;
  }
  if (vs == 1) {
    pack_pairs_rows(src, ks, width, R, kc, dst, sums);
    return;
  }
  pack_pairs_scalar(src, vs, ks, width, R, kc, dst, sums);
}

}  // namespace
}  // namespace linear_ext::cpu::avx512_bf16

#include "cpu/kernels/dot_simd.h"
#include "cpu/kernels/row_groups.h"
#include "cpu/kernels/rowstream_simd.h"
#include "cpu/kernels/ukernel_simd.h"

namespace linear_ext::cpu::avx512_bf16 {
namespace {

// 16 values of B's row p (columns j..j+15) and of row p + 1, interleaved into 16 pairs, the odd
// row's values zero past k (odd k) and both past n (count < 16 columns).
__m512 pair_of_rows(const c10::BFloat16* row, int64_t ldb, bool has_odd, int count) {
  const __mmask32 lanes = first_lanes32(count);
  const __m512i even = _mm512_maskz_loadu_epi16(lanes, row);
  const __m512i odd = has_odd ? _mm512_maskz_loadu_epi16(lanes, row + ldb) : _mm512_setzero_si512();
  // Lane 2j ← even[j], lane 2j + 1 ← odd[j] (indices from 32 pick the second operand).
  const __m512i interleave = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38,
                                              6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  return _mm512_castsi512_ps(_mm512_permutex2var_epi16(even, interleave, odd));
}

// acc[i][:] += rows [0, 2·PAIRS) of B (those below k_left) times a[i]'s values there, in pairs, for
// i < rows ≤ BLOCK: as rowstream_sweep (rowstream_simd.h), each B vector a pair of rows. B streams
// from memory; each row is fetched rowstream_prefetch_bytes ahead (without rowstream_sweep's wrap
// to the next group near a row's end).
template <int BLOCK, int PAIRS, bool Prefetch>
void pair_sweep(int rows, int64_t n, int64_t k_left, const c10::BFloat16* a, int64_t a_rs, int64_t a_cs,
                const c10::BFloat16* b, int64_t ldb, float* acc, int64_t acc_ld) {
  __m512 ai[PAIRS][BLOCK];
#pragma GCC unroll 4
  for (int q = 0; q < PAIRS; ++q)
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) {
      const c10::BFloat16* ap = a + i * a_rs + 2 * q * a_cs;
      const bool even = i < rows && 2 * q < k_left, odd = i < rows && 2 * q + 1 < k_left;
      const uint32_t word = (even ? ap->x : 0u) | (odd ? uint32_t{ap[a_cs].x} << 16 : 0u);
      ai[q][i] = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(word)));
    }
  RowGroups<float, BLOCK> acc_rows(acc, acc_ld);
  constexpr int64_t kAhead = kAvx512StreamTuning.rowstream_prefetch_bytes / sizeof(c10::BFloat16);
  for (int64_t j = 0; j < n; j += 16) {
    const int count = static_cast<int>(std::min<int64_t>(16, n - j));
    __m512 bv[PAIRS];
#pragma GCC unroll 4
    for (int q = 0; q < PAIRS; ++q) {
      const c10::BFloat16* row = b + 2 * q * ldb + j;
      if constexpr (Prefetch) {
        __builtin_prefetch(row + kAhead, 0, kAvx512StreamTuning.locality);
        __builtin_prefetch(row + ldb + kAhead, 0, kAvx512StreamTuning.locality);
      }
      bv[q] = 2 * q < k_left ? pair_of_rows(row, ldb, 2 * q + 1 < k_left, count) : _mm512_setzero_ps();
    }
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) {
      if (i >= rows) continue;
      __m512 r = _mm512_loadu_ps(acc_rows.row(i));
#pragma GCC unroll 4
      for (int q = 0; q < PAIRS; ++q) r = Bf16Pairs::fma(ai[q][i], bv[q], r);
      _mm512_storeu_ps(acc_rows.row(i), r);
    }
    acc_rows.advance(16);
  }
}

// RowStreamFn on pairs: B's rows two at a time, interleaved in registers (pair_of_rows), in sweeps
// of a few pairs as rowstream_sweeps; rows of A in equal blocks of up to 8. Outputs of up to
// kNarrowMaxVectors vectors keep the float32 kernel, whose sums stay in registers.
void rowstream_pairs(int64_t m, int64_t n, int64_t k, bool b_streams, const c10::BFloat16* a, int64_t a_rs,
                     int64_t a_cs, const c10::BFloat16* b, int64_t ldb, const float* bias, c10::BFloat16* y, int64_t ldy,
                     float* acc) {
  if (n <= kNarrowMaxVectors * 16) {
    kAvx512Kernels.for_bf16.rowstream(m, n, k, b_streams, a, a_rs, a_cs, b, ldb, bias, y, ldy, acc);
    return;
  }
  const int rows = static_cast<int>(m);
  const int64_t acc_ld = rowstream_acc_stride<float>(n);
  zero_rowstream_acc<Bf16Pairs>(rows, acc, acc_ld);
  const auto sweeps = [&]<int kBlock, int kPairs>() {
    const int block_rows = equal_block_rows<Bf16Pairs>(rows, kBlock);
    for (int64_t p = 0; p < k; p += 2 * kPairs) {
      pair_sweep<kBlock, kPairs, true>(block_rows, n, k - p, a + p * a_cs, a_rs, a_cs, b + p * ldb, ldb, acc, acc_ld);
      for (int i0 = block_rows; i0 < rows; i0 += block_rows)
        pair_sweep<kBlock, kPairs, false>(std::min(block_rows, rows - i0), n, k - p, a + i0 * a_rs + p * a_cs, a_rs,
                                          a_cs, b + p * ldb, ldb, acc + i0 * acc_ld, acc_ld);
    }
  };
  // Rows of A per block × pairs of B's rows per sweep: 16 registers of A's pairs either way. Up to 4
  // rows of A, 4 pairs (8 rows of B: more streams, and acc loaded and stored once per 8 rows of B)
  // ran 1.14-1.44x as fast as 8 × 2 at 1-4 rows × 4096² on 1 thread, 1.00-1.33x on 2 (Zen 4, one
  // process alternating both; the same bits); at 8 and 16 rows 0.91-1.07x: more rows keep 8 × 2.
  if (rows <= 4) sweeps.template operator()<4, 4>();
  else sweeps.template operator()<8, 2>();
  store_rowstream_acc<Bf16Pairs>(rows, n, acc, acc_ld, bias, y, ldy);
}

}  // namespace
}  // namespace linear_ext::cpu::avx512_bf16

#pragma GCC pop_options

namespace linear_ext::cpu {

// 8×48, as the AVX-512 float32 kernel (isa_avx512.cpp): 24 accumulators, 3 B registers, one
// broadcast; each k-step of the kernel is a pair of the GEMM's.
const Bf16PairKernels kAvx512Bf16PairKernels = {
    {&simd_microkernel<avx512_bf16::Bf16Pairs, 8, 3, 8>, 8, 48, 16,
     {&simd_microkernel<avx512_bf16::Bf16Pairs, 8, 1, 8>, &simd_microkernel<avx512_bf16::Bf16Pairs, 8, 2, 8>},
     nullptr,
     {nullptr, nullptr, nullptr},
     nullptr,
     {nullptr, nullptr, nullptr},
     {nullptr, nullptr, nullptr}},
    &avx512_bf16::pack_pairs,
    &simd_dot_kernel<avx512_bf16::Bf16Pairs, c10::BFloat16, 4, 4, 8, 24>,
    &avx512_bf16::rowstream_pairs,
    // Measured as isa_avx512.cpp's tables: the packed loops at twice the float32 rate cross deep.
    // One row from K = 2: rows of W of up to two loads (K ≤ 64) have their own loop (dot_short_rows
    // in dot_simd.h), 1.1-6x as fast as the packed loops at K = 3-40.
    {{0, 1, 72, 100, 136, 188, 264, 368, 448, 250, 300, 360, 380, 480, 560, 750, 750}},
};

}  // namespace linear_ext::cpu
