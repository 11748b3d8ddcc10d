// The micro-kernel body shared by every ISA (contract in kernels.h), written once over a
// vector-traits type V. Each isa_<name>.cpp includes this after its `#pragma GCC target`, so every
// instantiation is compiled for that ISA; V's types are per-ISA, so no two files ever instantiate
// the same function (which would let the linker mix ISAs).
//
// V provides: T (element), Reg (register), width (elements per Reg), zero(), loadu(ptr),
// storeu(ptr, Reg), broadcast(T), fma(a, b, c) = a·b + c, add(a, b).
#pragma once

namespace linear_ext::cpu {

// Prefetches every cache line of rows × cols of a row-major matrix (each row's last element too:
// a row need not start on a line).
template <typename T>
[[gnu::always_inline]] inline void prefetch_rows(const T* c, int64_t ldc, int rows, int cols) {
  constexpr int kLine = 64 / static_cast<int>(sizeof(T));
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; j += kLine) __builtin_prefetch(c + i * ldc + j);
    __builtin_prefetch(c + i * ldc + cols - 1);
  }
}

// MR rows × NV registers per row: NR = NV·width columns; MR·NV accumulators live in registers.
// PFB > 0 prefetches B that many k-steps ahead (in gemm.cpp's loop orders B streams from L2 or
// memory). With b_packed, every B row read is also stored there, NR apart.
// With RowA, `a` is not a packed sliver but MR rows of a row-major A, lda apart; rows past m read
// the last real row instead (never out of bounds), and their sums are dropped like padding's.
template <typename V, int MR, int NV, int PFB, bool PackB, bool RowA = false>
void simd_microkernel_impl(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b, int64_t ldb,
                           typename V::T* b_packed, const typename V::T* c_in, int64_t ldc_in,
                           typename V::T* c_out, int64_t ldc_out, const typename V::T* bias, int m, int n) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  constexpr int NR = NV * W;
  const T* a_rows[MR];
  if constexpr (RowA) {
    a_rows[0] = a;
#pragma GCC unroll 32
    for (int i = 1; i < MR; ++i) a_rows[i] = a_rows[i - 1] + (i < m ? lda : 0);
  }

  // C is touched only after the k loop: start fetching every cache line of its rows now. A full
  // tile passes constant bounds, so that its prefetches are unrolled: at small kc a looping
  // prefetch cost as much as the FMAs. The in-place (RowA) kernels skip this: they serve at most
  // 128 rows of C with B's rows under a page (gemm.cpp's run_in_place), so C is in L2 or freshly
  // allocated, and the prefetches only held line-fill buffers the A and B loads wanted (without
  // them the input grad at K = 10 ran ~10% faster, larger K measured even).
  if constexpr (!RowA) {
    if (m == MR && n == NR)
      prefetch_rows(c_out, ldc_out, MR, NR);
    else
      prefetch_rows(c_out, ldc_out, m, n);
  }

  Reg acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    Reg bv[NV];
    if constexpr (PFB > 0) {
#pragma GCC unroll 8
      for (int j = 0; j < NR * static_cast<int>(sizeof(T)); j += 64)
        __builtin_prefetch(reinterpret_cast<const char*>(b + PFB * ldb) + j);
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      bv[j] = V::loadu(b + j * W);
      if constexpr (PackB) V::storeu(b_packed + j * W, bv[j]);
    }
    if constexpr (PackB) b_packed += NR;
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const Reg av = V::broadcast(RowA ? a_rows[i][p] : a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
    }
    if constexpr (!RowA) a += MR;
    b += ldb;
  }

  if (m == MR && n == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        Reg r = acc[i][j];
        if (c_in) r = V::add(r, V::loadu(c_in + i * ldc_in + j * W));
        if (bias) r = V::add(r, V::loadu(bias + j * W));
        V::storeu(c_out + i * ldc_out + j * W, r);
      }
    return;
  }
  // Edge tile: spill the registers and copy out only the m×n corner (same additions, same order).
  alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) V::storeu(tile + i * NR + j * W, acc[i][j]);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      T r = tile[i * NR + j];
      if (c_in) r += c_in[i * ldc_in + j];
      if (bias) r += bias[j];
      c_out[i * ldc_out + j] = r;
    }
}

template <typename V, int MR, int NV, int PFB = 0>
void simd_microkernel(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                      const typename V::T* c_in, int64_t ldc_in, typename V::T* c_out, int64_t ldc_out,
                      const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, MR, NV, PFB, false>(kc, a, 0, b, ldb, nullptr, c_in, ldc_in, c_out, ldc_out, bias, m, n);
}

template <typename V, int MR, int NV, int PFB = 0>
void simd_microkernel_row_major_a(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                                  int64_t ldb, const typename V::T* c_in, int64_t ldc_in, typename V::T* c_out,
                                  int64_t ldc_out, const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, MR, NV, PFB, false, true>(kc, a, lda, b, ldb, nullptr, c_in, ldc_in, c_out, ldc_out, bias,
                                                     m, n);
}

template <typename V, int MR, int NV, int PFB>
void simd_microkernel_packing_b(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                                typename V::T* b_packed, const typename V::T* c_in, int64_t ldc_in,
                                typename V::T* c_out, int64_t ldc_out, const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, MR, NV, PFB, true>(kc, a, 0, b, ldb, b_packed, c_in, ldc_in, c_out, ldc_out, bias, m, n);
}

template <typename V, int MR, int NV, int PFB>
void simd_microkernel_row_major_a_packing_b(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b,
                                            int64_t ldb, typename V::T* b_packed, const typename V::T* c_in,
                                            int64_t ldc_in, typename V::T* c_out, int64_t ldc_out,
                                            const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, MR, NV, PFB, true, true>(kc, a, lda, b, ldb, b_packed, c_in, ldc_in, c_out, ldc_out, bias,
                                                    m, n);
}

}  // namespace linear_ext::cpu
