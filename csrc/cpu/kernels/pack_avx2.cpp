// Vectorised packing with AVX2 + F16C (see pack_avx2.h). Two strided layouts are special-cased:
//  - ks == 1: each vector (a row of row-major A, a column of Wᵀ) is contiguous along k, so the
//    sliver is a transpose: 8×8 blocks are loaded as 8 rows, transposed in registers and stored
//    as 8 k-steps (4×8 blocks for leftover vectors; a six-vector sliver as 8×8, see below). Eight
//    vectors are packed over the whole depth before the next eight: eight read streams, which the
//    hardware prefetchers follow, where walking all R (48) vectors in step was ~1.6x slower from memory;
//  - vs == 1: the R values of one k-step are contiguous: a converting copy, 8 at a time.
// float64 takes the same paths four values at a time (4×4 transposes). Anything else (and the
// remainders narrower than a register) goes through the scalar packer.
#include "cpu/kernels/pack_avx2.h"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "cpu/kernels/pack_scalar.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace linear_ext::cpu {
namespace {

// 8 consecutive source values as floats.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const c10::BFloat16* p) {
  // bfloat16 is the high half of a float32: widen to 32 bits and shift into place.
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
}
inline __m256 load8(const c10::Half* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// Rows r[0..3] (8 k-values each) → u[q] holds k = q in its low half and k = q + 4 in its high half.
inline void transpose4x8(const __m256* r, __m256* u) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  u[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  u[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  u[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  u[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

// Stores the first `lanes` (1-4) values of v.
inline void store_lanes(float* p, __m128 v, int lanes) {
  if (lanes == 4) {
    _mm_storeu_ps(p, v);
    return;
  }
  if (lanes & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), v);
    v = _mm_movehl_ps(v, v);
    p += 2;
  }
  if (lanes & 1) _mm_store_ss(p, v);
}

// A full sliver of six vectors (the AVX2 float micro-kernel's MR rows of A), through the same 8×8
// transpose as eight vectors, rows 6 and 7 repeating row 5: each k-step's eight values are stored
// whole, six floats after the previous k-step's, whose two extra lanes they overwrite (the last
// k-step of every eight is stored as 4 + 2 lanes, so nothing lands past it). That is 9 stores
// per 8 k-steps where two 4-row groups took 16: packing went from 7.5% to 6.0% of a 2048×768×3072
// forward (perf, Zen 3), whose A (2048×3072) is packed this way.
template <typename T>
void pack_six_row_sliver(const T* src, int64_t vs, int64_t kc, float* dst) {
  const int64_t kc8 = kc / 8 * 8;
  for (int64_t p = 0; p < kc8; p += 8) {
    float* out = dst + p * 6;
    __m256 r[8], lo[4], hi[4];
#pragma GCC unroll 6
    for (int q = 0; q < 6; ++q) r[q] = load8(src + q * vs + p);
    r[6] = r[7] = r[5];
    transpose4x8(r, lo);
    transpose4x8(r + 4, hi);
    // In k order: each store's lanes 6-7 are overwritten by the next one.
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) _mm256_storeu_ps(out + q * 6, _mm256_permute2f128_ps(lo[q], hi[q], 0x20));
#pragma GCC unroll 3
    for (int q = 0; q < 3; ++q) _mm256_storeu_ps(out + (q + 4) * 6, _mm256_permute2f128_ps(lo[q], hi[q], 0x31));
    const __m256 last = _mm256_permute2f128_ps(lo[3], hi[3], 0x31);
    store_lanes(out + 7 * 6, _mm256_castps256_ps128(last), 4);
    store_lanes(out + 7 * 6 + 4, _mm256_extractf128_ps(last, 1), 2);
  }
  if (kc8 < kc) pack_scalar(src + kc8, vs, int64_t{1}, 6, 6, kc - kc8, dst + kc8 * 6, static_cast<float*>(nullptr));
}

// One sliver of n ≤ R vectors, each contiguous along k.
template <typename T>
void pack_transposed_sliver(const T* src, int64_t vs, int n, int R, int64_t kc, float* dst) {
  if (R == 6 && n == 6) {
    pack_six_row_sliver(src, vs, kc, dst);
    return;
  }
  const int64_t kc8 = kc / 8 * 8;
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int64_t p = 0; p < kc8; p += 8) {
      float* out = dst + p * R;
      __m256 r[8], lo[4], hi[4];
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q) r[q] = load8(src + (i + q) * vs + p);
      transpose4x8(r, lo);
      transpose4x8(r + 4, hi);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        _mm256_storeu_ps(out + q * R + i, _mm256_permute2f128_ps(lo[q], hi[q], 0x20));
        _mm256_storeu_ps(out + (q + 4) * R + i, _mm256_permute2f128_ps(lo[q], hi[q], 0x31));
      }
    }
  }
  // The rest four at a time, through the sliver's zero padding: rows past n are zeros, and only the
  // lanes below R are stored (MR = 6 ends in a 2-wide group).
  for (; i < R; i += 4) {
    const int rows = std::clamp(n - i, 0, 4), lanes = std::min(R - i, 4);
    for (int64_t p = 0; p < kc8; p += 8) {
      float* out = dst + p * R;
      __m256 r[4], u[4];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) r[q] = q < rows ? load8(src + (i + q) * vs + p) : _mm256_setzero_ps();
      transpose4x8(r, u);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        store_lanes(out + q * R + i, _mm256_castps256_ps128(u[q]), lanes);
        store_lanes(out + (q + 4) * R + i, _mm256_extractf128_ps(u[q], 1), lanes);
      }
    }
  }
  if (kc8 < kc) pack_scalar(src + kc8, vs, int64_t{1}, n, R, kc - kc8, dst + kc8 * R, static_cast<float*>(nullptr));
}

// The same for float64: 4×4 blocks, four values per register.
void pack_transposed_sliver(const double* src, int64_t vs, int n, int R, int64_t kc, double* dst) {
  const int64_t kc4 = kc / 4 * 4;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int64_t p = 0; p < kc4; p += 4) {
      __m256d r[4];
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) r[q] = _mm256_loadu_pd(src + (i + q) * vs + p);
      const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
      const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
      double* out = dst + p * R + i;
      _mm256_storeu_pd(out, _mm256_permute2f128_pd(t0, t2, 0x20));
      _mm256_storeu_pd(out + R, _mm256_permute2f128_pd(t1, t3, 0x20));
      _mm256_storeu_pd(out + 2 * R, _mm256_permute2f128_pd(t0, t2, 0x31));
      _mm256_storeu_pd(out + 3 * R, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
  }
  for (; i < n; ++i)
    for (int64_t p = 0; p < kc4; ++p) dst[p * R + i] = src[i * vs + p];
  for (; i < R; ++i)
    for (int64_t p = 0; p < kc4; ++p) dst[p * R + i] = 0.0;
  if (kc4 < kc) pack_scalar(src + kc4, vs, int64_t{1}, n, R, kc - kc4, dst + kc4 * R, static_cast<double*>(nullptr));
}

// Vectors contiguous along k: sliver by sliver, each a run of in-register transposes.
// With sums, each sliver's are added just after it is packed, while it is in L1 (this layout is
// the bias grad's only when dY is a transposed view).
template <typename T, typename acc_t>
void pack_transposed(const T* src, int64_t vs, int64_t width, int R, int64_t kc, acc_t* dst, acc_t* sums) {
  for (int64_t s0 = 0; s0 < width; s0 += R) {
    const int n = static_cast<int>(std::min<int64_t>(R, width - s0));
    pack_transposed_sliver(src + s0 * vs, vs, n, R, kc, dst + s0 * kc);
    if (sums) add_sliver_sums(dst + s0 * kc, n, R, kc, sums + s0);
  }
}

// Converting copies in registers of 8 floats or 4 doubles.
struct FloatLanes {
  using Reg = __m256;
  static constexpr int width = 8;
  template <typename T>
  static Reg load(const T* p) { return load8(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
};
struct DoubleLanes {
  using Reg = __m256d;
  static constexpr int width = 4;
  static Reg load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, Reg v) { _mm256_storeu_pd(p, v); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
};
template <typename acc_t>
using Lanes = std::conditional_t<std::is_same_v<acc_t, double>, DoubleLanes, FloatLanes>;

// k-steps [p0, p1) of one full sliver (R, a compile-time constant, so that each step is a few
// unrolled loads and stores); with sums, the copied values are also added to sums[0, R), each in
// k order, the running sums held in registers.
template <int R, typename T, typename acc_t>
void copy_full_sliver(const T* src, int64_t ks, int64_t p0, int64_t p1, acc_t* dst, acc_t* sums) {
  using L = Lanes<acc_t>;
  constexpr int kVectors = R / L::width, kRest = R % L::width;
  typename L::Reg acc[kVectors > 0 ? kVectors : 1] = {};
  acc_t rest[kRest > 0 ? kRest : 1] = {};
  if (sums) {
    for (int v = 0; v < kVectors; ++v) acc[v] = L::load(sums + v * L::width);
    for (int i = 0; i < kRest; ++i) rest[i] = sums[kVectors * L::width + i];
  }
  for (int64_t p = p0; p < p1; ++p) {
    const T* row = src + p * ks;
    acc_t* out = dst + p * R;
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) {
      const typename L::Reg x = L::load(row + v * L::width);
      L::store(out + v * L::width, x);
      if (sums) acc[v] = L::add(acc[v], x);
    }
#pragma GCC unroll 8
    for (int i = kVectors * L::width; i < R; ++i) {
      out[i] = static_cast<acc_t>(row[i]);
      if (sums) rest[i - kVectors * L::width] += out[i];
    }
  }
  if (sums) {
    for (int v = 0; v < kVectors; ++v) L::store(sums + v * L::width, acc[v]);
    for (int i = 0; i < kRest; ++i) sums[kVectors * L::width + i] = rest[i];
  }
}

// The same for an edge sliver of n < R vectors (or an R no micro-kernel uses), zero-padded.
template <typename T, typename acc_t>
void copy_sliver(const T* src, int64_t ks, int n, int R, int64_t p0, int64_t p1, acc_t* dst, acc_t* sums) {
  using L = Lanes<acc_t>;
  for (int64_t p = p0; p < p1; ++p) {
    const T* row = src + p * ks;
    acc_t* out = dst + p * R;
    int i = 0;
    for (; i + L::width <= n; i += L::width) L::store(out + i, L::load(row + i));
    for (; i < n; ++i) out[i] = static_cast<acc_t>(row[i]);
    for (; i < R; ++i) out[i] = acc_t(0);
  }
  if (sums) add_sliver_sums(dst + p0 * R, n, R, p1 - p0, sums);
}

// The values of one k-step contiguous: plain converting copies. k runs in chunks of 16 source
// rows: within a chunk, sliver by sliver, so that reads stay on a few pages (a row of a large
// matrix is often a page of its own) and writes go to one sliver at a time. Full slivers of the
// micro-kernels' MR and NR widths take the unrolled copy.
template <typename T, typename acc_t>
void pack_copied(const T* src, int64_t ks, int64_t width, int R, int64_t kc, acc_t* dst, acc_t* sums) {
  constexpr int64_t kRowsPerChunk = 16;
  for (int64_t p0 = 0; p0 < kc; p0 += kRowsPerChunk) {
    const int64_t p1 = std::min(kc, p0 + kRowsPerChunk);
    for (int64_t s0 = 0; s0 < width; s0 += R) {
      const int n = static_cast<int>(std::min<int64_t>(R, width - s0));
      const T* from = src + s0;
      acc_t* to = dst + s0 * kc;
      acc_t* sliver_sums = sums ? sums + s0 : nullptr;
      switch (n == R ? R : 0) {
        case 6: copy_full_sliver<6>(from, ks, p0, p1, to, sliver_sums); break;
        case 8: copy_full_sliver<8>(from, ks, p0, p1, to, sliver_sums); break;
        case 16: copy_full_sliver<16>(from, ks, p0, p1, to, sliver_sums); break;
        case 24: copy_full_sliver<24>(from, ks, p0, p1, to, sliver_sums); break;
        case 48: copy_full_sliver<48>(from, ks, p0, p1, to, sliver_sums); break;
        default: copy_sliver(from, ks, n, R, p0, p1, to, sliver_sums);
      }
    }
  }
}

template <typename T, typename acc_t>
void pack(const T* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, acc_t* dst, acc_t* sums) {
  if (ks == 1 && vs != 1) {
    pack_transposed(src, vs, width, R, kc, dst, sums);
  } else if (vs == 1) {
    pack_copied(src, ks, width, R, kc, dst, sums);
  } else {
    pack_scalar(src, vs, ks, width, R, kc, dst, sums);
  }
}

}  // namespace

void pack_avx2_f32(const float* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums) {
  pack(src, vs, ks, width, R, kc, dst, sums);
}
void pack_avx2_bf16(const c10::BFloat16* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums) {
  pack(src, vs, ks, width, R, kc, dst, sums);
}
void pack_avx2_f16(const c10::Half* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums) {
  pack(src, vs, ks, width, R, kc, dst, sums);
}
void pack_avx2_f64(const double* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, double* dst,
                   double* sums) {
  pack(src, vs, ks, width, R, kc, dst, sums);
}

void round_avx2_bf16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::BFloat16* dst, int64_t ld_dst) {
  // c10's rounding on the bits: + 0x7FFF + the kept part's lowest bit, then the high half; NaN
  // becomes the quiet NaN 0x7FC0.
  const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1), nan = _mm256_set1_epi32(0x7FC0);
  for (int64_t row = 0; row < m; ++row, src += ld_src, dst += ld_dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(src + i);
      const __m256i u = _mm256_castps_si256(v);
      const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
      r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      const __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), halves);
    }
    round_scalar(src + i, 0, 1, n - i, dst + i, 0);
  }
}

void round_avx2_f16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::Half* dst, int64_t ld_dst) {
  for (int64_t row = 0; row < m; ++row, src += ld_src, dst += ld_dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    round_scalar(src + i, 0, 1, n - i, dst + i, 0);
  }
}

}  // namespace linear_ext::cpu

#pragma GCC pop_options
