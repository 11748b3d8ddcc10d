// The skinny-forward dot-product kernel (contract: DotKernelFn in kernels.h), written once over a
// vector-traits type V and included by each isa_<name>.cpp after its `#pragma GCC target`.
//
// With few rows of X (decode-style batches) the GEMM is bound by streaming W from memory, and
// X and W are both contiguous along k: no packing, no transposes. A block of NB rows of W is
// dotted with MB rows of X at a time, NB·MB vector accumulators along k, reduced across lanes at
// the end. All row blocks of X run while the NB rows of W are in cache, so W is read from memory
// once; with several row blocks, k is walked in chunks that keep those rows in L1 (below). One
// row of X against rows of W no longer than two loads has a loop of its own (dot_short_rows).
//
// Beyond ukernel_simd.h's needs, V provides: load_from(const Src*) loading values_per_load<V>()
// Src values (simd_helpers.h: `width`, one per lane, unless V says otherwise) into a Reg,
// load_from_partial(const T*, count) loading count < width values zero-filled, hsum(Reg) -> T,
// stream (a StreamTuning: kernels.h), and optionally hsums<N>(const Reg*) (store_sums).
#pragma once

#include <algorithm>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/simd_helpers.h"

namespace linear_ext::cpu {

// Rows of W per block for a single block of `rows` rows of X: the accumulator budget, up to six rows
// of W (six measured faster than three and than eight at batch 1; dot_stream_nb_for_rows below
// has since taken eight where W streams from memory).
constexpr int dot_nb_for_rows(int budget, int rows) { return std::min(6, budget / rows); }

// Rows of W per block where W streams from memory in rows of at least the prefetch distance, for a
// 32- or 64-bit dtype (one process alternating the choices; Zen 4, 1 thread unless said):
//  - 1 row of X: 8 where the budget holds 24 sums (AVX-512). float32 × 4096², 4096 × 11008,
//    11008 × 4096 and 16384 × 1024 1.06-1.11x as fast as 6, float64 × 4096² 1.04x; with W evicted
//    from the caches before each call 1.06x; 2 threads 1.01-1.09x. 2 rows measured 0.92-1.05x.
//  - 4-6 rows: 3 where the budget allows more. Six rows of W left the stream at 20-23 GB/s, three
//    reach 27-32 (float32 4 / 5 / 6 × 4096² 1.33 / 1.41 / 1.15x as fast, float64 1.16 / 1.45 /
//    1.21x; 1.08-1.26x on 2 threads).
// Six stay faster than three for a W in L3 (0.74-0.84x with three), for shorter rows of W (5-6
// rows × 2 KiB rows: 0.81-0.91x), and for 16-bit dtypes (0.79-0.93x), whose dot kernels convert or
// pair up their loads: those keep dot_nb_for_rows.
template <typename Src>
constexpr int dot_stream_nb_for_rows(int budget, int rows) {
  const int nb = dot_nb_for_rows(budget, rows);
  if constexpr (sizeof(Src) < 4) return nb;
  if (rows == 1 && budget >= 24) return 8;
  return rows >= 4 && rows <= 6 ? std::min(3, nb) : nb;
}

// Rows of the single block that dots `rows` rows of X with such a stream of W (3 rows of W a block
// at 4-6 rows): 4 rows run as a block of 5, whose fifth row repeats the fourth and whose sums are
// dropped. Not a saving of work: the 5-row loop streams W faster, for reasons the machine's
// missing counters do not tell. Zen 4, 1 thread, W evicted before each call, processes or calls
// alternating both: float32 4 × 4096², 4 × 4096 × 11008 and 4 × 11008 × 4096 1.06-1.11x as fast,
// float64 4 × 4096² 1.06-1.11x; 2 threads 1.01-1.02x. 3 rows as 5 measured 0.97-1.08x, 2 rows
// 0.95-1.04x: those keep their own blocks.
template <typename Src>
constexpr int dot_stream_block_rows(int budget, int rows) {
  const int nb = dot_stream_nb_for_rows<Src>(budget, rows);
  return rows == 4 && nb == 3 && budget >= 5 * nb ? 5 : rows;
}

// y[j] = (the lanes of acc[j] summed) + bias[j] for j < nb, rounded to Src. Where V reduces a
// register's worth of accumulators at once (hsums, AVX2 and AVX-512: lane j ← acc[j]'s sum, a few
// shuffles for all), that replaces a reduction per output, the dot kernels' main cost at small K
// (batch 1 × 4096 outputs × K = 10: 0.8x torch's speed with one per output, 1.0x with hsums on Zen 3;
// 0.65x → 0.9x with AVX-512 on Zen 4, where K = 40 went 0.95x → 1.3x). The generic kernels
// reduce output by output.
template <typename V, typename Src, int NB>
void store_sums(const typename V::Reg (&acc)[NB], int nb, const typename V::T* bias, Src* y) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  if constexpr (requires { V::template hsums<1>(acc); }) {
    static_assert(NB <= 2 * W);
    // Up to W sums at a time, lane 0 at y[G]; float/double stored straight from the register
    // (staged through memory, a vector store read back by narrower loads stalled the forwarding).
    const auto group = [&]<int G, int N>() {
      const int count = std::min(nb - G, W);
      if (count <= 0) return;
      Reg r = V::template hsums<N>(acc + G);
      if constexpr (std::is_same_v<Src, T>) {
        if (bias) r = V::add(r, load_first_lanes<V>(bias + G, count));
        store_first_lanes<V>(y + G, r, count);
      } else {
        alignas(64) T sums[W];
        V::storeu(sums, r);
        for (int j = 0; j < count; ++j) y[G + j] = static_cast<Src>(bias ? sums[j] + bias[G + j] : sums[j]);
      }
    };
    group.template operator()<0, std::min(NB, W)>();
    if constexpr (NB > W) group.template operator()<W, NB - W>();
  } else {
    for (int j = 0; j < nb; ++j) {
      const T sum = V::hsum(acc[j]);
      y[j] = static_cast<Src>(bias ? sum + bias[j] : sum);
    }
  }
}

// One row of X against rows of W of at most P loads each (k ≤ P · values_per_load<V>(), the last
// load masked where shorter): a product register per row, a register's worth of rows reduced at
// once by store_sums. The blocked kernel below reads such rows through one step and its tail step,
// six at a time, with its chunk and prefetch logic around each block. Batch 1 × 4096 outputs (Zen 4,
// one process alternating): one load per row, float32 K = 9-16 2.4x as fast as the blocked kernel,
// K = 2-8 1.15-1.8x the packed loops; float64 K = 2-8 1.7-3x; bfloat16 pairs K = 3-32 1.1-6x; AVX2
// float32 K = 2-8 1.7-2.9x. Two loads per row, against the blocked kernel: float32 K = 17-32
// 2.3-2.6x, float64 K = 9-16 1.6-1.7x, bfloat16 pairs K = 33-64 2.3-2.6x. The sums are the blocked
// kernel's, bit for bit: each lane's products added in k order, then the lanes by hsums.
template <typename V, int P, typename Src>
void dot_short_rows(int64_t n, int64_t k, const Src* x, const Src* w, int64_t ldw, const typename V::T* bias, Src* y) {
  using Reg = typename V::Reg;
  constexpr int NB = V::width, L = values_per_load<V>();
  const int last = static_cast<int>(k - (P - 1) * L);  // values in a row's last load, 1 to L
  const auto load = [&](const Src* row, int i) {
    return i + 1 < P || last == L ? V::load_from(row + i * L) : load_tail<V>(row + i * L, last);
  };
  Reg xv[P];
#pragma GCC unroll 2
  for (int i = 0; i < P; ++i) xv[i] = load(x, i);
  for (int64_t j0 = 0; j0 < n; j0 += NB) {
    const int nb = static_cast<int>(std::min<int64_t>(NB, n - j0));
    Reg acc[NB];
#pragma GCC unroll 16
    for (int jj = 0; jj < NB; ++jj) {
      const Src* row = w + (j0 + std::min(jj, nb - 1)) * ldw;
      acc[jj] = V::fma(xv[0], load(row, 0), V::zero());
#pragma GCC unroll 2
      for (int i = 1; i < P; ++i) acc[jj] = V::fma(xv[i], load(row, i), acc[jj]);
    }
    store_sums<V>(acc, nb, bias ? bias + j0 : nullptr, y + j0);
  }
}

// HoldX: each vector of X is loaded into a register once for its NB FMAs, rather than as it pleases
// GCC, which folded the load into every FMA (NB loads of X per vector; an empty asm hides where
// the register came from). W in cache, one process alternating both (Zen 4): 7-8 rows × 512² to
// 4096 × 1024 1.15-1.41x as fast in float32 and float64, 3-6 rows even; W streaming from memory
// 0.68-0.80x. So only a single block of 7-8 rows holds X, and only where W is in cache.
// PadRows: a single block of MB > m rows (dot_stream_block_rows). A flag rather than every single
// block: clamping the rows of X in all of them changed GCC's register allocation in the 2-3 row
// loops (their W row pointers went to the stack), 3% slower there.
template <typename V, typename Src, int NB, int MB, int SingleRows = MB - 1, int SingleAcc = NB * MB,
          bool HoldX = false, bool PadRows = false>
void simd_dot_kernel(int64_t m, int64_t n, int64_t k, int64_t kc, bool w_streams, const Src* x, int64_t ldx,
                     const Src* w, int64_t ldw, const typename V::T* bias, Src* y, int64_t ldy) {
  // One row of X against rows of W of one or two loads, where V loads them masked (float/double,
  // bfloat16 pairs; other 16-bit values, staged through a buffer, ran at 0.6x) and sums a register
  // of them at once.
  if constexpr (requires(const Src* p) { V::template hsums<1>(nullptr); V::load_from_partial(p, 1); }) {
    if (m == 1 && k <= values_per_load<V>()) return dot_short_rows<V, 1>(n, k, x, w, ldw, bias, y);
    if (m == 1 && k <= 2 * values_per_load<V>()) return dot_short_rows<V, 2>(n, k, x, w, ldw, bias, y);
  }
  // Up to SingleRows rows of X: one block of just those rows (but dot_stream_block_rows), with as
  // many rows of W as SingleAcc accumulators allow. Repeating the last X row up to MB wastes FMAs,
  // and batch 1-3 is bound by W's stream, which more W rows read in parallel (more streams for the
  // prefetchers) make faster: 11-20% at batch 1-3 × 4096² (Zen 3). Where the registers hold more
  // accumulators than the MB×NB block (AVX-512: 24), one block of up to 8 rows, its X rows read from
  // L2, beat MB-row blocks that walk k in chunks and park their sums (below): 4-8 rows × 4096²
  // 1.05-1.3x as fast in float32, float64 and bfloat16 (Zen 4; 6 × 4 accumulators at 4 rows, 3 × 8
  // at 8).
  // The bits are the same: each output is still one accumulator's lanes summed in k order.
  if (m <= SingleRows) {
    with_rows<SingleRows + 1>(m, [&]<int R>() {
      constexpr int kNB = dot_nb_for_rows(SingleAcc, R), kStreamNB = dot_stream_nb_for_rows<Src>(SingleAcc, R);
      constexpr int kStreamRows = dot_stream_block_rows<Src>(SingleAcc, R);
      const bool long_rows = k * static_cast<int64_t>(sizeof(Src)) >= V::stream.dot_prefetch_bytes;
      if constexpr (R >= 7) {  // HoldX (above): the registers then hold X beside 24 sums and 3 rows of W
        if (!w_streams)
          return simd_dot_kernel<V, Src, kNB, R, 0, kNB * R, true>(m, n, k, kc, w_streams, x, ldx, w, ldw, bias, y,
                                                                   ldy);
      }
      if (kStreamNB != kNB && w_streams && long_rows)
        simd_dot_kernel<V, Src, kStreamNB, kStreamRows, 0, kStreamNB * kStreamRows, false, (kStreamRows > R)>(
            m, n, k, kc, w_streams, x, ldx, w, ldw, bias, y, ldy);
      else
        simd_dot_kernel<V, Src, kNB, R, 0>(m, n, k, kc, w_streams, x, ldx, w, ldw, bias, y, ldy);
    });
    return;
  }
  using Reg = typename V::Reg;
  constexpr int W = values_per_load<V>();  // k-steps per vector step
  constexpr int kMaxBlocks = (kDotChunkedMaxRows + MB - 1) / MB;
  // With several row blocks of X, k is walked in chunks of kc (a multiple of W): the NB rows of W
  // are read from memory by the first block and from L1 by the others, and each block's
  // accumulators wait in `parked` between chunks. Without chunks every block re-read W's rows from
  // L2 (batch 8-16 × 4096² ran 5-10% slower); X's rows still come from L2 for every block of W
  // rows, which is what bounds batch 16. Each accumulator still sums its lanes in k order, so the
  // result does not depend on kc.
  const int64_t k_full = k / W * W;
  const bool chunked = m > MB && m <= kDotChunkedMaxRows;
  const int64_t chunk = std::max<int64_t>(chunked ? kc / W * W : k_full, W);
  Reg parked[kMaxBlocks][MB][NB];
  for (int64_t j0 = 0; j0 < n; j0 += NB) {
    const int nb = static_cast<int>(std::min<int64_t>(NB, n - j0));
    // Rows past the edge re-read the last valid row; their sums are dropped.
    const Src* wr[NB];
#pragma GCC unroll 8
    for (int jj = 0; jj < NB; ++jj) wr[jj] = w + (j0 + std::min(jj, nb - 1)) * ldw;
    // p0 == 0 runs even when k_full == 0, so that the tail and the stores happen.
    for (int64_t p0 = 0; p0 == 0 || p0 < k_full; p0 += chunk) {
      const int64_t p1 = std::min(k_full, p0 + chunk);
      const bool first = p0 == 0, last = p1 == k_full;
      // The R rows of X from i0 (R = MB but for a last, shorter block of rows) against the NB rows
      // of W, over k in [p0, p1): a block of R rows runs R·NB FMAs per step, not MB·NB.
      int64_t i0 = 0, blk = 0;
      const auto rows_block = [&]<int R>() {
        // PadRows: rows past m re-read the last row of X, and their sums are dropped.
        const Src* xr[R];
#pragma GCC unroll 8
        for (int ii = 0; ii < R; ++ii) xr[ii] = x + (PadRows ? std::min(i0 + ii, m - 1) : i0 + ii) * ldx;

        Reg acc[R][NB];
#pragma GCC unroll 8
        for (int ii = 0; ii < R; ++ii)
#pragma GCC unroll 8
          for (int jj = 0; jj < NB; ++jj) acc[ii][jj] = first ? V::zero() : parked[blk][ii][jj];
        const auto step = [&](int64_t p, int count) {
          Reg wv[NB];
#pragma GCC unroll 8
          for (int jj = 0; jj < NB; ++jj)
            wv[jj] = count == W ? V::load_from(wr[jj] + p) : load_tail<V>(wr[jj] + p, count);
#pragma GCC unroll 8
          for (int ii = 0; ii < R; ++ii) {
            Reg xv = count == W ? V::load_from(xr[ii] + p) : load_tail<V>(xr[ii] + p, count);
            if constexpr (HoldX) asm("" : "+v"(xv));
#pragma GCC unroll 8
            for (int jj = 0; jj < NB; ++jj) acc[ii][jj] = V::fma(xv, wv[jj], acc[ii][jj]);
          }
        };
        // W streams from memory: each row is fetched ahead of use (V::stream), and within that
        // distance of its end, the same row of the next block (NB rows further on) instead, whose
        // start would otherwise be read before any fetch reached it: batch 1-16 × 4096² 5-15%
        // faster, 1 × 16384 × 1024 (4 KiB rows) 22% (Zen 4, one process alternating both).
        constexpr int64_t kAhead = V::stream.dot_prefetch_bytes / sizeof(Src);
        const int64_t wrap_from = k - kAhead, wrapped = kAhead + NB * ldw - k;
        for (int64_t p = p0; p < p1; p += W) {
          const int64_t ahead = p >= wrap_from ? wrapped : kAhead;
#pragma GCC unroll 8
          for (int jj = 0; jj < NB; ++jj) __builtin_prefetch(wr[jj] + p + ahead, 0, V::stream.locality);
          step(p, W);
        }
        if (!last) {
#pragma GCC unroll 8
          for (int ii = 0; ii < R; ++ii)
#pragma GCC unroll 8
            for (int jj = 0; jj < NB; ++jj) parked[blk][ii][jj] = acc[ii][jj];
          return;
        }
        if (k_full < k) step(k_full, static_cast<int>(k - k_full));

        for (int ii = 0; ii < R && (!PadRows || i0 + ii < m); ++ii)
          store_sums<V>(acc[ii], nb, bias ? bias + j0 : nullptr, y + (i0 + ii) * ldy + j0);
      };
      if constexpr (PadRows) {
        rows_block.template operator()<MB>();
      } else {
        for (; i0 + MB <= m; i0 += MB, ++blk) rows_block.template operator()<MB>();
        with_rows<MB>(m - i0, rows_block);
      }
    }
  }
}

}  // namespace linear_ext::cpu
