// The row-streaming kernel for the fewest rows of A (contract: RowStreamFn in kernels.h), written
// once over a vector-traits type V and included by each isa_<name>.cpp after its target pragma.
//
// With 1-8 rows of A and row-major B (dX = dY·W at decode batch sizes), every B row is used once
// per row of A and B dwarfs everything else, so B must stream through memory exactly once, in
// address order. The output rows accumulate in an acc_t buffer (L1/L2) while B's rows pass by:
// acc[i][:] += A[i][p] · B[p][:], each B vector loaded once for all rows of A.
#pragma once

#include "cpu/kernels/kernels.h"

namespace linear_ext::cpu {

template <typename V, typename Src, int MAX_ROWS>
void simd_rowstream_kernel(int64_t m, int64_t n, int64_t k, const Src* a, int64_t a_rs, int64_t a_cs, const Src* b,
                           int64_t ldb, const typename V::T* bias, Src* y, int64_t ldy, typename V::T* acc) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  const int64_t n_full = n / W * W;
  const int rows = static_cast<int>(m);
  const int64_t acc_ld = rowstream_acc_stride<T>(n);
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) acc[i * acc_ld + j] = T(0);

  // RB rows of B per pass: RB concurrent streams for the prefetchers, and acc is loaded and
  // stored once per RB rows. The FMAs still run in p order, so the result is the same.
  constexpr int RB = 4;
  int64_t p = 0;
  for (; p + RB <= k; p += RB) {
    Reg ai[RB][MAX_ROWS];
#pragma GCC unroll 4
    for (int q = 0; q < RB; ++q)
#pragma GCC unroll 8
      for (int i = 0; i < MAX_ROWS; ++i)
        ai[q][i] = V::broadcast(i < rows ? static_cast<T>(a[i * a_rs + (p + q) * a_cs]) : T(0));
    int64_t j = 0;
    for (; j < n_full; j += W) {
      Reg bv[RB];
#pragma GCC unroll 4
      for (int q = 0; q < RB; ++q) {
        __builtin_prefetch(b + (p + q) * ldb + j + kPrefetchBytes / sizeof(Src));
        bv[q] = V::load_from(b + (p + q) * ldb + j);
      }
#pragma GCC unroll 8
      for (int i = 0; i < MAX_ROWS; ++i) {
        if (i >= rows) continue;
        Reg r = V::loadu(acc + i * acc_ld + j);
#pragma GCC unroll 4
        for (int q = 0; q < RB; ++q) r = V::fma(ai[q][i], bv[q], r);
        V::storeu(acc + i * acc_ld + j, r);
      }
    }
    for (; j < n; ++j)
      for (int q = 0; q < RB; ++q)
        for (int i = 0; i < rows; ++i)
          acc[i * acc_ld + j] += static_cast<T>(a[i * a_rs + (p + q) * a_cs]) * static_cast<T>(b[(p + q) * ldb + j]);
  }
  for (; p < k; ++p) {
    const Src* brow = b + p * ldb;
    Reg ai[MAX_ROWS];
#pragma GCC unroll 8
    for (int i = 0; i < MAX_ROWS; ++i) ai[i] = V::broadcast(i < rows ? static_cast<T>(a[i * a_rs + p * a_cs]) : T(0));
    int64_t j = 0;
    for (; j < n_full; j += W) {
      const Reg bv = V::load_from(brow + j);
#pragma GCC unroll 8
      for (int i = 0; i < MAX_ROWS; ++i)
        if (i < rows) V::storeu(acc + i * acc_ld + j, V::fma(ai[i], bv, V::loadu(acc + i * acc_ld + j)));
    }
    for (; j < n; ++j)
      for (int i = 0; i < rows; ++i) acc[i * acc_ld + j] += static_cast<T>(a[i * a_rs + p * a_cs]) * static_cast<T>(brow[j]);
  }

  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = static_cast<Src>(bias ? acc[i * acc_ld + j] + bias[j] : acc[i * acc_ld + j]);
}

}  // namespace linear_ext::cpu
