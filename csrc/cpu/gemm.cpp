// Goto/BLIS GEMM driver: the blocking loops shared by every layout and ISA (loop names as in BLIS).
//
//   jc: NC-column panels of B and C
//     pc: KC-deep rank updates; the KC×NC panel of B is packed once (threads split its slivers)
//       ic: MC-row blocks of A and C, in parallel (split further by columns when blocks are few);
//           each thread packs its own MC×KC block of A
//         jr: NR-column slivers of the panel (a B sliver stays in L1)
//           ir: MR-row slivers of the block → one micro-kernel call per MR×NR tile
//
// C accumulates across pc steps in acc_t: in C itself when T == acc_t, otherwise in a float
// workspace, so that 16-bit outputs are rounded once, in the last pc step, together with the bias.
// The blocking depends only on the shape and the CPU, and every C element and row sum is computed
// by one thread in a fixed order, so results are bitwise identical for any thread count.
#include "cpu/gemm.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <type_traits>

#include "cpu/block_sizes.h"
#include "cpu/kernels/microkernel.h"
#include "cpu/pack.h"
#include "cpu/scratch.h"

namespace linear_ext::cpu {
namespace {

// Below this many multiply-adds a GEMM stays on the calling thread: a fork/join costs more.
constexpr double kMinParallelMacs = 64.0 * 64.0 * 64.0;
// Largest MR×NR over all micro-kernels (12×32), for the on-stack tile of 16-bit outputs.
constexpr int kMaxTileElems = 12 * 32;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The calling thread owns the B panel, C workspace and bias/row-sum vectors (workers only read or
// write disjoint parts of them inside one call); each worker owns its packed A block.
thread_local ScratchBuffer tls_packed_b;
thread_local ScratchBuffer tls_c_accum;
thread_local ScratchBuffer tls_bias;
thread_local ScratchBuffer tls_row_sums;
thread_local ScratchBuffer tls_packed_a;

}  // namespace

template <typename T>
void gemm(const GemmProblem<T>& problem) {
  using acc_t = at::opmath_type<T>;
  constexpr bool kAccumulateInC = std::is_same_v<T, acc_t>;

  const MicroKernel<acc_t>& uk = cpu_kernels().get<acc_t>();
  const int mr = uk.mr, nr = uk.nr;
  TORCH_INTERNAL_ASSERT(mr * nr <= kMaxTileElems);
  const BlockSizes bs = block_sizes(mr, nr, sizeof(acc_t));
  const MatrixRef<T>& A = problem.a;
  const int64_t M = problem.m(), K = problem.k(), N = problem.n();
  if (M == 0) return;

  acc_t* row_sums = problem.row_sums ? tls_row_sums.get<acc_t>(M) : nullptr;
  if (row_sums) std::fill(row_sums, row_sums + M, acc_t(0));
  const acc_t* bias = nullptr;
  if (problem.bias) {
    if constexpr (kAccumulateInC) {
      bias = problem.bias;
    } else {
      acc_t* converted = tls_bias.get<acc_t>(N);
      for (int64_t j = 0; j < N; ++j) converted[j] = static_cast<acc_t>(problem.bias[j]);
      bias = converted;
    }
  }

  // Row blocks of at most MC rows, equal in size (rounded up to MR) so that threads get equal work.
  const int64_t m_blocks = std::max<int64_t>(1, ceil_div(M, bs.mc));
  const int64_t mc = ceil_div(ceil_div(M, m_blocks), mr) * mr;
  const int64_t kc_max = std::min(bs.kc, K);
  acc_t* packed_b = tls_packed_b.get<acc_t>(kc_max * ceil_div(std::min(bs.nc, N), nr) * nr);
  acc_t* c_accum = (!kAccumulateInC && K > bs.kc) ? tls_c_accum.get<acc_t>(M * N) : nullptr;

  const int64_t threads = at::get_num_threads();
  const bool parallel = static_cast<double>(M) * N * std::max<int64_t>(K, 1) >= kMinParallelMacs;
  const int64_t serial_grain = INT64_MAX;

  if (N == 0 && row_sums) {
    // Nothing to multiply, but the row sums are still wanted: pack A for them alone, in the same
    // blocks and order as the full GEMM would.
    acc_t* packed_a = tls_packed_a.get<acc_t>(mc * kc_max);
    for (int64_t pc = 0; pc < K; pc += bs.kc)
      for (int64_t i0 = 0; i0 < M; i0 += mc)
        pack_a(A, i0, std::min(mc, M - i0), pc, std::min(bs.kc, K - pc), mr, packed_a, row_sums + i0);
  }

  for (int64_t jc = 0; jc < N; jc += bs.nc) {
    const int64_t nc = std::min(bs.nc, N - jc);
    const int64_t n_slivers = ceil_div(nc, nr);
    // Column chunks (whole slivers) give every thread work when there are fewer row blocks than
    // about two per thread; each chunk's thread packs the row block's A itself.
    int64_t chunk_slivers = n_slivers;
    if (parallel) chunk_slivers = ceil_div(n_slivers, std::clamp<int64_t>(ceil_div(2 * threads, m_blocks), 1, n_slivers));
    const int64_t n_chunks = ceil_div(n_slivers, chunk_slivers);

    // K == 0 still takes one (empty) step, so that C receives the bias or zeros.
    for (int64_t pc = 0; pc == 0 || pc < K; pc += bs.kc) {
      const int64_t kc = std::min(bs.kc, K - pc);
      const bool first = pc == 0, last = pc + bs.kc >= K;

      at::parallel_for(0, n_slivers, parallel ? 1 : serial_grain, [&](int64_t s_begin, int64_t s_end) {
        pack_b(problem.b, pc, kc, jc, nc, nr, s_begin, s_end, packed_b);
      });

      at::parallel_for(0, m_blocks * n_chunks, parallel ? 1 : serial_grain, [&](int64_t t_begin, int64_t t_end) {
        acc_t* packed_a = tls_packed_a.get<acc_t>(mc * kc);
        int64_t packed_block = -1;
        for (int64_t t = t_begin; t < t_end; ++t) {
          const int64_t block = t / n_chunks, chunk = t % n_chunks;
          const int64_t i0 = block * mc;
          if (i0 >= M) continue;  // rounding mc up to MR can leave the last block empty
          const int64_t rows = std::min(mc, M - i0);
          if (block != packed_block) {
            // Row sums are added by the one task that owns (block, chunk 0) of the first panel.
            acc_t* sums = (row_sums && jc == 0 && chunk == 0) ? row_sums + i0 : nullptr;
            pack_a(A, i0, rows, pc, kc, mr, packed_a, sums);
            packed_block = block;
          }
          const int64_t s_end = std::min(n_slivers, (chunk + 1) * chunk_slivers);
          for (int64_t s = chunk * chunk_slivers; s < s_end; ++s) {
            const acc_t* b_sliver = packed_b + s * nr * kc;
            const int64_t col = jc + s * nr;
            const int n = static_cast<int>(std::min<int64_t>(nr, nc - s * nr));
            const acc_t* tile_bias = (last && bias) ? bias + col : nullptr;
            for (int64_t ir = 0; ir < rows; ir += mr) {
              const acc_t* a_sliver = packed_a + ir * kc;
              const int64_t row = i0 + ir;
              const int m = static_cast<int>(std::min<int64_t>(mr, rows - ir));
              if constexpr (kAccumulateInC) {
                T* c = problem.c + row * problem.ldc + col;
                uk.run(kc, a_sliver, b_sliver, first ? nullptr : c, problem.ldc, c, problem.ldc, tile_bias, m, n);
              } else if (!last) {
                acc_t* c = c_accum + row * N + col;
                uk.run(kc, a_sliver, b_sliver, first ? nullptr : c, N, c, N, nullptr, m, n);
              } else {
                acc_t tile[kMaxTileElems];
                const acc_t* c_in = first ? nullptr : c_accum + row * N + col;
                uk.run(kc, a_sliver, b_sliver, c_in, N, tile, nr, tile_bias, m, n);
                T* c = problem.c + row * problem.ldc + col;
                for (int i = 0; i < m; ++i)
                  for (int j = 0; j < n; ++j) c[i * problem.ldc + j] = static_cast<T>(tile[i * nr + j]);
              }
            }
          }
        }
      });
    }
  }

  if (problem.row_sums)
    for (int64_t i = 0; i < M; ++i) problem.row_sums[i] = static_cast<T>(row_sums[i]);
}

template void gemm<float>(const GemmProblem<float>&);
template void gemm<double>(const GemmProblem<double>&);
template void gemm<c10::BFloat16>(const GemmProblem<c10::BFloat16>&);
template void gemm<c10::Half>(const GemmProblem<c10::Half>&);

}  // namespace linear_ext::cpu
