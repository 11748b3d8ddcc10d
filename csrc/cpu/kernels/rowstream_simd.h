// The row-streaming kernel for the fewest rows of A (contract: RowStreamFn in kernels.h), written
// once over a vector-traits type V and included by each isa_<name>.cpp after its target pragma.
//
// With few rows of A and row-major B (dX = dY·W at decode batch sizes), every B row is used once
// per row of A and B dwarfs everything else, so B must stream through memory exactly once, in
// address order. The output rows accumulate in an acc_t buffer (L1/L2) while B's rows pass by:
// acc[i][:] += A[i][p] · B[p][:], each B vector loaded once for a block of up to BLOCK rows of A
// (their broadcasts fill the registers). More rows than BLOCK are split into equal blocks, which
// sweep each group of B rows in turn: from memory for the first block, from L2 for the others.
#pragma once

#include <algorithm>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/row_groups.h"

namespace linear_ext::cpu {

// acc[i·acc_ld + j] += Σ_{q<RB} a[i·a_rs + q·a_cs] · b[q·ldb + j] for i < rows ≤ BLOCK, j < n:
// one group of RB rows of B (RB = 1 for the last rows of an odd k), each B vector loaded once.
// Prefetch: B is read for the first time, from memory.
template <typename V, typename Src, int BLOCK, int RB, bool Prefetch>
[[gnu::always_inline]] inline void rowstream_sweep(int rows, int64_t n, const Src* a, int64_t a_rs, int64_t a_cs,
                                                   const Src* b, int64_t ldb, typename V::T* acc, int64_t acc_ld) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  Reg ai[RB][BLOCK];
#pragma GCC unroll 4
  for (int q = 0; q < RB; ++q)
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) ai[q][i] = V::broadcast(i < rows ? static_cast<T>(a[i * a_rs + q * a_cs]) : T(0));
  RowGroups<T, BLOCK> acc_rows(acc, acc_ld);  // at the current column
  // The last n % W columns take one more vector step: B's through a zero-padded copy, while acc's
  // rows have room for a whole vector (rowstream_acc_stride). Element by element, a 12-column
  // output ran at half torch's speed.
  for (int64_t j = 0; j < n; j += W) {
    Reg bv[RB];
    if (j + W <= n) {
#pragma GCC unroll 4
      for (int q = 0; q < RB; ++q) {
        if constexpr (Prefetch) __builtin_prefetch(b + q * ldb + j + kPrefetchBytes / sizeof(Src));
        bv[q] = V::load_from(b + q * ldb + j);
      }
    } else {
      alignas(64) T tail[RB][W];
      for (int q = 0; q < RB; ++q) {
        for (int t = 0; t < W; ++t) tail[q][t] = j + t < n ? static_cast<T>(b[q * ldb + j + t]) : T(0);
        bv[q] = V::loadu(tail[q]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) {
      if (i >= rows) continue;
      Reg r = V::loadu(acc_rows.row(i));
#pragma GCC unroll 4
      for (int q = 0; q < RB; ++q) r = V::fma(ai[q][i], bv[q], r);
      V::storeu(acc_rows.row(i), r);
    }
    acc_rows.advance(W);
  }
}

template <typename V, typename Src, int BLOCK>
void simd_rowstream_kernel(int64_t m, int64_t n, int64_t k, const Src* a, int64_t a_rs, int64_t a_cs, const Src* b,
                           int64_t ldb, const typename V::T* bias, Src* y, int64_t ldy, typename V::T* acc) {
  using T = typename V::T;
  const int rows = static_cast<int>(m);
  const int64_t acc_ld = rowstream_acc_stride<T>(n);
  // The padding past n too: a last partial vector sums into it, and stale scratch there could be
  // subnormal, which slows every FMA that touches it.
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < acc_ld; ++j) acc[i * acc_ld + j] = T(0);

  const int blocks = (rows + BLOCK - 1) / BLOCK;
  const int block_rows = (rows + blocks - 1) / blocks;
  // RB rows of B per group: RB concurrent streams for the prefetchers, and acc is loaded and
  // stored once per RB rows. The FMAs still run in p order, so the result is the same.
  constexpr int RB = 4;
  int64_t p = 0;
  for (; p + RB <= k; p += RB) {
    rowstream_sweep<V, Src, BLOCK, RB, true>(block_rows, n, a + p * a_cs, a_rs, a_cs, b + p * ldb, ldb, acc, acc_ld);
    for (int i0 = block_rows; i0 < rows; i0 += block_rows)
      rowstream_sweep<V, Src, BLOCK, RB, false>(std::min(block_rows, rows - i0), n, a + i0 * a_rs + p * a_cs, a_rs,
                                                a_cs, b + p * ldb, ldb, acc + i0 * acc_ld, acc_ld);
  }
  for (; p < k; ++p)
    for (int i0 = 0; i0 < rows; i0 += block_rows)
      rowstream_sweep<V, Src, BLOCK, 1, false>(std::min(block_rows, rows - i0), n, a + i0 * a_rs + p * a_cs, a_rs, a_cs,
                                               b + p * ldb, ldb, acc + i0 * acc_ld, acc_ld);

  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = static_cast<Src>(bias ? acc[i * acc_ld + j] + bias[j] : acc[i * acc_ld + j]);
}

}  // namespace linear_ext::cpu
