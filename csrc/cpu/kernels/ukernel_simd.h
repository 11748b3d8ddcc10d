// The micro-kernel body shared by every ISA (contract in kernels.h), written once over a
// vector-traits type V. Each isa_<name>.cpp includes this after its `#pragma GCC target`, so every
// instantiation is compiled for that ISA; V's types are per-ISA, so no two files ever instantiate
// the same function (which would let the linker mix ISAs).
//
// V provides: T (element), Reg (register), width (elements per Reg), zero(), loadu(ptr),
// storeu(ptr, Reg), broadcast(T), fma(a, b, c) = a·b + c, add(a, b), and for the first count <
// width lanes load_from_partial(ptr, count) (the rest zero) and store_partial(ptr, Reg, count).
#pragma once

#include "cpu/kernels/row_groups.h"
#include "cpu/kernels/simd_helpers.h"

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

// Where the micro-kernel's k loop reads A (at(i): row i's value at the current k; next(): k + 1).
// A packed sliver: Stride values per k-step, contiguous (the packing's MR; a kernel over fewer
// rows reads the first of them).
template <typename T, int Stride>
struct PackedSliver {
  const T* a;
  T at(int i) const { return a[i]; }
  void next() { a += Stride; }
};

// MR rows of a row-major A, one pointer per row (rows past m repeat the last real row).
template <typename T, int MR>
struct RowPointers {
  const T* rows[MR];
  int64_t p = 0;
  RowPointers(const T* a, int64_t lda, int m) {
    rows[0] = a;
    for (int i = 1; i < MR; ++i) rows[i] = rows[i - 1] + (i < m ? lda : 0);
  }
  T at(int i) const { return rows[i][p]; }
  void next() { ++p; }
};

// MR full rows of a row-major A, lda apart (row_groups.h).
template <typename T, int MR>
struct RowGroupsReader {
  RowGroups<const T, MR> rows;
  RowGroupsReader(const T* a, int64_t lda) : rows(a, lda) {}
  T at(int i) const { return *rows.row(i); }
  void next() { rows.advance(1); }
};

// acc[i][·] += A(i, p) · B's row p (NR values at b + p·ldb) for p < kc, in p order, A read
// through `a`.
// PFB > 0 prefetches B that many k-steps ahead (in gemm.cpp's loop orders B streams from L2 or
// memory). With PackB, every B row read is also stored to b_packed, NR apart.
template <typename V, int MR, int NV, int PFB, bool PackB, typename AReader>
[[gnu::always_inline]] inline void k_loop(int64_t kc, AReader a, const typename V::T* b, int64_t ldb,
                                          typename V::T* b_packed, typename V::Reg (&acc)[MR][NV]) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  constexpr int NR = NV * W;
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
      const Reg av = V::broadcast(a.at(i));
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
    }
    a.next();
    b += ldb;
  }
}

// MR rows × NV registers per row: NR = NV·width columns; MR·NV accumulators live in registers.
// PFB and PackB as for k_loop. A packed sliver holds AStride ≥ MR rows per k-step.
// With RowA, `a` is not a packed sliver but MR rows of a row-major A, lda apart; rows past m read
// the last real row instead (never out of bounds), and their sums are dropped like padding's.
template <typename V, int MR, int NV, int PFB, bool PackB, bool RowA = false, int AStride = MR>
void simd_microkernel_impl(int64_t kc, const typename V::T* a, int64_t lda, const typename V::T* b, int64_t ldb,
                           typename V::T* b_packed, const typename V::T* c_in, int64_t ldc_in,
                           typename V::T* c_out, int64_t ldc_out, const typename V::T* bias, int m, int n) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  constexpr int NR = NV * W;

  // C is touched only after the k loop: start fetching every cache line of its rows now. A full
  // tile passes constant bounds, so that its prefetches are unrolled: at small kc a looping
  // prefetch cost as much as the FMAs. The in-place (RowA) kernels skip this for a short k loop:
  // at K = 10 (the MNIST 256→10 input grad) the prefetches held the line-fill buffers that the A
  // and B loads wanted (~10% slower with them). At larger K they hide the misses of a C that is
  // not in cache, as in a training step, where the output was last used a layer ago (MNIST MLP
  // step ~1% faster with them; ops timed alone, C in L2, measured even).
  constexpr int64_t kRowAMinKcForCPrefetch = 32;
  if (!RowA || kc >= kRowAMinKcForCPrefetch) {
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

  if constexpr (!RowA)
    k_loop<V, MR, NV, PFB, PackB>(kc, PackedSliver<T, AStride>{a}, b, ldb, b_packed, acc);
  else if (m == MR)
    k_loop<V, MR, NV, PFB, PackB>(kc, RowGroupsReader<T, MR>(a, lda), b, ldb, b_packed, acc);
  else
    k_loop<V, MR, NV, PFB, PackB>(kc, RowPointers<T, MR>(a, lda, m), b, ldb, b_packed, acc);

  // Stores the first `lanes` of row i's vector j of C: the sum, plus C_in, plus the bias, in that
  // order (whole vectors but in a tile's partial last one).
  const auto store = [&](int i, int j, Reg r, int lanes) [[gnu::always_inline]] {
    if (c_in) r = V::add(r, load_first_lanes<V>(c_in + i * ldc_in + j * W, lanes));
    if (bias) r = V::add(r, load_first_lanes<V>(bias + j * W, lanes));
    store_first_lanes<V>(c_out + i * ldc_out + j * W, r, lanes);
  };
  if (m == MR && n == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) store(i, j, acc[i][j], W);
    return;
  }
  // Only rows missing (the last sliver of rows that are not a multiple of MR): whole vectors for
  // the first m rows, straight from the registers. A skinny GEMM's slivers run at KC = 16, where
  // copying such a tile element by element made every call ~1.5x as slow as a full one (batch-12
  // AVX-512 and batch-16 AVX2 input grads 10-20% faster).
  if (n == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
      if (i < m)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) store(i, j, acc[i][j], W);
    return;
  }
  // Columns missing: the first m rows' vectors up to column n, the last one partial, straight from
  // the registers. Spilling the registers and copying the m×n corner element by element made a
  // 10-column weight grad at batch 1 (4096 × 10, all edge tiles) 1.8x as slow as torch.
  const int full = n / W, rest = n % W;
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) continue;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      if (j < full)
        store(i, j, acc[i][j], W);
      else if (j == full && rest > 0)
        store(i, j, acc[i][j], rest);
    }
  }
}

template <typename V, int MR, int NV, int PFB = 0>
void simd_microkernel(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                      const typename V::T* c_in, int64_t ldc_in, typename V::T* c_out, int64_t ldc_out,
                      const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, MR, NV, PFB, false>(kc, a, 0, b, ldb, nullptr, c_in, ldc_in, c_out, ldc_out, bias, m, n);
}

// The first Rows rows of an MR-row tile: `a` is a packed sliver of MR rows.
template <typename V, int Rows, int MR, int NV>
void simd_microkernel_few_rows(int64_t kc, const typename V::T* a, const typename V::T* b, int64_t ldb,
                               const typename V::T* c_in, int64_t ldc_in, typename V::T* c_out, int64_t ldc_out,
                               const typename V::T* bias, int m, int n) {
  simd_microkernel_impl<V, Rows, NV, 0, false, false, MR>(kc, a, 0, b, ldb, nullptr, c_in, ldc_in, c_out, ldc_out,
                                                          bias, m, n);
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
