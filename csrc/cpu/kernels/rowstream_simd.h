// The row-streaming kernel for the fewest rows of A (contract: RowStreamFn in kernels.h), written
// once over a vector-traits type V and included by each isa_<name>.cpp after its target pragma.
//
// With few rows of A and row-major B (dX = dY·W at decode batch sizes), every B row is used once
// per row of A and B dwarfs everything else, so B must stream through memory exactly once, in
// address order. The output rows accumulate in an acc_t buffer (L1/L2) while B's rows pass by:
// acc[i][:] += A[i][p] · B[p][:], each B vector loaded once for a block of up to BLOCK rows of A
// (and a group of rows of B: rowstream_sweep). More rows than BLOCK are split into equal blocks,
// which sweep each group of B rows in turn: from memory for the first block, from L2 for the others.
// Narrow outputs (a few vectors per row) keep their sums in registers instead (rowstream_narrow).
// Beyond ukernel_simd.h's needs, V provides load_from (as for dot_simd.h) and stream (a StreamTuning:
// kernels.h).
#pragma once

#include <algorithm>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/row_groups.h"
#include "cpu/kernels/simd_helpers.h"

namespace linear_ext::cpu {

// acc[i·acc_ld + j] += Σ_{q<RB} a[i·a_rs + q·a_cs] · b[q·ldb + j] for i < rows ≤ BLOCK, j < n:
// one group of RB rows of B (fewer for the last k % RB rows), each B vector loaded once. A's
// RB·BLOCK values are broadcast once into registers, or with Operands kept in a small table that
// every FMA reads as its broadcast memory operand (AVX-512): more rows of B than registers hold.
// Prefetch: B is read for the first time, from memory (V::stream). Within the prefetch distance of
// a row's end, the same row of the next group (RB rows further on) is fetched instead, whose start
// would otherwise be read before any fetch reached it: 1-16 rows × 4096² 2-7% faster (Zen 4, one
// process alternating both). The offset is chosen inside the one loop: the loop split in two at
// that column (its body inlined twice) ran 8-25% slower at 8-16 rows.
template <typename V, typename Src, int BLOCK, int RB, bool Operands, bool Prefetch>
[[gnu::always_inline]] inline void rowstream_sweep(int rows, int64_t n, const Src* a, int64_t a_rs, int64_t a_cs,
                                                   const Src* b, int64_t ldb, typename V::T* acc, int64_t acc_ld) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  T a_table[Operands ? RB * BLOCK : 1];  // [q·BLOCK + i]
  Reg ai[Operands ? 1 : RB][BLOCK];
#pragma GCC unroll 8
  for (int q = 0; q < RB; ++q)
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) {
      const T value = i < rows ? static_cast<T>(a[i * a_rs + q * a_cs]) : T(0);
      if constexpr (Operands) a_table[q * BLOCK + i] = value;
      else ai[q][i] = V::broadcast(value);
    }
  const T* table = a_table;
  const auto a_value = [&](int q, int i) [[gnu::always_inline]] {
    if constexpr (Operands) {
      return V::broadcast(table[q * BLOCK + i]);
    } else {
      return ai[q][i];
    }
  };
  RowGroups<T, BLOCK> acc_rows(acc, acc_ld);  // at the current column
  constexpr int64_t kAhead = V::stream.rowstream_prefetch_bytes / sizeof(Src);
  const int64_t wrap_from = n - kAhead;  // the first column whose prefetch wraps
  const int64_t wrapped = kAhead + RB * ldb - n;
  // The last n % W columns take one more vector step, B's loaded masked (load_tail), while acc's
  // rows have room for a whole vector (rowstream_acc_stride). Element by element, a 12-column
  // output ran at half torch's speed; through a zero-padded copy, whose stores the vector load
  // then waited on, a 100-column one at 0.7x.
  for (int64_t j = 0; j < n; j += W) {
    Reg bv[RB];
    if (j + W <= n) {
      const int64_t ahead = j >= wrap_from ? wrapped : kAhead;
#pragma GCC unroll 8
      for (int q = 0; q < RB; ++q) {
        if constexpr (Prefetch) __builtin_prefetch(b + q * ldb + j + ahead, 0, V::stream.locality);
        bv[q] = V::load_from(b + q * ldb + j);
      }
    } else {
#pragma GCC unroll 8
      for (int q = 0; q < RB; ++q) bv[q] = load_tail<V>(b + q * ldb + j, static_cast<int>(n - j));
    }
    // An opaque table pointer in every step keeps GCC from hoisting the table's broadcasts out of
    // the loop into registers, which it would then spill.
    if constexpr (Operands) asm("" : "+r"(table));
#pragma GCC unroll 8
    for (int i = 0; i < BLOCK; ++i) {
      if (i >= rows) continue;
      Reg r = V::loadu(acc_rows.row(i));
#pragma GCC unroll 8
      for (int q = 0; q < RB; ++q) r = V::fma(a_value(q, i), bv[q], r);
      V::storeu(acc_rows.row(i), r);
    }
    acc_rows.advance(W);
  }
}

// Output rows of at most this many vectors take rowstream_narrow, not the sweeps: at batch 1 ×
// 4096 rows of B, 10, 24 and 32 columns ran at 0.2-0.75x torch's speed swept, 1.5-1.9x narrow
// (Zen 3). With more vectors the accumulators no longer fit in the registers beside B's.
constexpr int kNarrowMaxVectors = 4;

// Narrow outputs, n ≤ NV vectors: the R rows' accumulators stay in registers for the whole of k and
// go to acc once, as whole vectors, where the sweeps reload and store each vector of acc for every
// RB rows of B and wait on that chain. With fewer than four accumulators, k is dealt round-robin
// to S sets of them, so that S chains of FMAs overlap, and the sets are added in order at the end:
// the sums depend on R and NV (on m and n), never on the thread count.
template <typename V, typename Src, int R, int NV>
void rowstream_narrow(int64_t n, int64_t k, const Src* a, int64_t a_rs, int64_t a_cs, const Src* b, int64_t ldb,
                      typename V::T* acc, int64_t acc_ld) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  constexpr int S = R * NV >= 4 ? 1 : 4 / (R * NV);
  const int last = static_cast<int>(n - (NV - 1) * W);  // columns in the last vector, 1 to W
  Reg c[S][R][NV];
#pragma GCC unroll 4
  for (int s = 0; s < S; ++s)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) c[s][i][v] = V::zero();
  const auto step = [&](int64_t p, Reg (&cs)[R][NV]) [[gnu::always_inline]] {
    const Src* row = b + p * ldb;
    Reg bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v + 1 < NV; ++v) bv[v] = V::load_from(row + v * W);
    bv[NV - 1] = last == W ? V::load_from(row + (NV - 1) * W) : load_tail<V>(row + (NV - 1) * W, last);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const Reg ai = V::broadcast(static_cast<T>(a[i * a_rs + p * a_cs]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) cs[i][v] = V::fma(ai, bv[v], cs[i][v]);
    }
  };
  int64_t p = 0;
  for (; p + S <= k; p += S)
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s) step(p + s, c[s]);
  for (; p < k; ++p) step(p, c[0]);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      Reg sum = c[0][i][v];
#pragma GCC unroll 4
      for (int s = 1; s < S; ++s) sum = V::add(sum, c[s][i][v]);
      V::storeu(acc + i * acc_ld + v * W, sum);
    }
}

// The helpers below take V only so that each ISA's file compiles its own copy (an inline function
// shared by files with different target pragmas could be linked from the wrong one).

// acc's rows set to zero, the padding past n too: a last partial vector sums into it, and stale
// scratch there could be subnormal, which slows every FMA that touches it.
template <typename V>
void zero_rowstream_acc(int rows, typename V::T* acc, int64_t acc_ld) {
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < acc_ld; ++j) acc[i * acc_ld + j] = typename V::T(0);
}

// Rows per block when `rows` are cut into equal blocks of at most `block`.
template <typename V>
int equal_block_rows(int rows, int block) {
  const int blocks = (rows + block - 1) / block;
  return (rows + blocks - 1) / blocks;
}

// y[i·ldy + j] = acc[i·acc_ld + j] (+ bias[j]), rounded to Src, for i < rows, j < n; nothing
// where y is null (the sums stay in acc).
template <typename V, typename Src>
void store_rowstream_acc(int rows, int64_t n, const typename V::T* acc, int64_t acc_ld, const typename V::T* bias,
                         Src* y, int64_t ldy) {
  if (y == nullptr) return;
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) y[i * ldy + j] = static_cast<Src>(bias ? acc[i * acc_ld + j] + bias[j] : acc[i * acc_ld + j]);
}

// All rows in blocks of up to BLOCK, each group of RB rows of B swept once per block. RB rows of B
// per group: RB concurrent streams for the prefetchers, and acc is loaded and stored once per RB
// rows. The FMAs still run in p order, so the result does not depend on RB.
template <typename V, typename Src, int BLOCK, int RB, bool Operands>
void rowstream_sweeps(int rows, int64_t n, int64_t k, const Src* a, int64_t a_rs, int64_t a_cs, const Src* b,
                      int64_t ldb, typename V::T* acc, int64_t acc_ld) {
  zero_rowstream_acc<V>(rows, acc, acc_ld);
  const int block_rows = equal_block_rows<V>(rows, BLOCK);
  int64_t p = 0;
  for (; p + RB <= k; p += RB) {
    rowstream_sweep<V, Src, BLOCK, RB, Operands, true>(block_rows, n, a + p * a_cs, a_rs, a_cs, b + p * ldb, ldb, acc,
                                                       acc_ld);
    for (int i0 = block_rows; i0 < rows; i0 += block_rows)
      rowstream_sweep<V, Src, BLOCK, RB, Operands, false>(std::min(block_rows, rows - i0), n, a + i0 * a_rs + p * a_cs,
                                                          a_rs, a_cs, b + p * ldb, ldb, acc + i0 * acc_ld, acc_ld);
  }
  // The last k % RB rows of B as one group: one pass over acc, not one per row (dX 7 or 10 deep,
  // at 1-8 rows × 4096 columns, ran 10-20% faster).
  const auto last_group = [&]<int Rest>() {
    for (int i0 = 0; i0 < rows; i0 += block_rows)
      rowstream_sweep<V, Src, BLOCK, Rest, Operands, false>(std::min(block_rows, rows - i0), n,
                                                            a + i0 * a_rs + p * a_cs, a_rs, a_cs, b + p * ldb, ldb,
                                                            acc + i0 * acc_ld, acc_ld);
  };
  with_rows<RB>(k - p, last_group);
}

template <typename V, typename Src, int BLOCK>
void simd_rowstream_kernel(int64_t m, int64_t n, int64_t k, bool b_streams, const Src* a, int64_t a_rs, int64_t a_cs,
                           const Src* b, int64_t ldb, const typename V::T* bias, Src* y, int64_t ldy,
                           typename V::T* acc) {
  constexpr int W = V::width;
  const int rows = static_cast<int>(m);
  const int64_t acc_ld = rowstream_acc_stride<typename V::T>(n);
  // Broadcast operands (V::stream) where B streams from memory, or is converted from 16 bits.
  constexpr int kOperandGroup = V::stream.rowstream_operand_group;
  if (n <= kNarrowMaxVectors * W) {
    // Rows in blocks of up to four (two for three or four vectors): at most eight accumulators.
    with_rows<kNarrowMaxVectors + 1>((n + W - 1) / W, [&]<int NV>() {
      constexpr int kRows = NV <= 2 ? 4 : 2;
      for (int i0 = 0; i0 < rows; i0 += kRows)
        with_rows<kRows + 1>(std::min(kRows, rows - i0), [&]<int R>() {
          rowstream_narrow<V, Src, R, NV>(n, k, a + i0 * a_rs, a_rs, a_cs, b, ldb, acc + i0 * acc_ld, acc_ld);
        });
    });
  } else if (kOperandGroup > 0 && (b_streams || sizeof(Src) < sizeof(typename V::T))) {
    constexpr int kGroup = std::max(kOperandGroup, 1);
    if (rows <= 2) rowstream_sweeps<V, Src, 2, kGroup, true>(rows, n, k, a, a_rs, a_cs, b, ldb, acc, acc_ld);
    else rowstream_sweeps<V, Src, BLOCK, kGroup, true>(rows, n, k, a, a_rs, a_cs, b, ldb, acc, acc_ld);
  } else if (rows <= 2) {  // a block of two rows, whose broadcasts leave registers for more rows of B
    constexpr int kGroup = V::stream.rowstream_few_rows_group;
    rowstream_sweeps<V, Src, 2, kGroup, false>(rows, n, k, a, a_rs, a_cs, b, ldb, acc, acc_ld);
  } else {
    rowstream_sweeps<V, Src, BLOCK, 4, false>(rows, n, k, a, a_rs, a_cs, b, ldb, acc, acc_ld);
  }
  store_rowstream_acc<V>(rows, n, acc, acc_ld, bias, y, ldy);
}

}  // namespace linear_ext::cpu
