// The CPU GEMM driver: the blocking loops shared by every layout and ISA (loop names as in BLIS).
//
// Threads: C is cut into a grid of tm × tn blocks, one per thread, each computed independently by
// the serial loops below with its own packing buffers: one fork/join per GEMM and nothing shared
// but read-only inputs. A block packs the rows of A and the columns of B it needs, so splitting N
// repeats A's packing in every column block and splitting M repeats B's; the grid is chosen to
// repeat the least packing (plan_grid).
//
// Serial loops over one block of C (block sizes: block_sizes.h):
//   ic: MC-row panels of A
//     pc: KC-deep rank updates; the MC×KC panel of A is packed (row sums added here, when wanted)
//       jc: NC-column blocks; the KC×NC block of B is packed (it stays in L2)
//         ir: MR-row slivers (an A sliver stays in L1 and is broadcast from)
//           jr: NR-column slivers, streamed from L2 → one micro-kernel call per MR×NR tile of C
// K is cut into equal KC steps. A row-major float/double B is not packed in a pass of its own: the
// first ir pass's micro-kernel calls read its rows in place and store them to the packed block as
// they go, so that its loads overlap FMAs. An edge sliver narrower than NR runs a narrower
// instance of the micro-kernel.
// C accumulates across pc steps in acc_t: in C itself when T == acc_t, otherwise in a float
// workspace, so that 16-bit outputs are rounded once, in the last pc step, together with the bias.
//
// Skinny problems (at most kSkinnyRows rows of A) are memory-bound: each B element is used about
// once, so nothing is gained by packing a whole B block. The forward layout (A and B both
// contiguous along k) then runs the dot-product kernels, as it does with few rows and a B that
// stays in cache when K is deep enough (DotMinDepth in kernels.h).
// A row-major B (the input grad dY·W) runs the row-streaming kernels, B's rows passing once in
// address order: always at kRowStreamMaxRows rows of A or fewer, and up to kSkinnyRows when B is
// too large to stay in L3 (streams_b; a smaller B runs the packed loops, from L3). Such a B is
// summed in two halves of its rows, one per thread on 2 threads (run_rowstream_halves). Other
// layouts with such a B take it in chunks of a few full rows (skinny_block_sizes) so that it
// streams row by row, reading float/double slivers in place or packing one sliver at a time into
// an L1-resident buffer.
// Between skinny and kInPlaceMaxRows rows of a row-major A (the input grad dY·W and the forward
// X·Wᵀ at training batch sizes), A is not packed: run_in_place reads it where it lies, and packs B
// one column panel at a time.
//
// Determinism: the blocking depends only on the shape and the CPU, every element of C and of the
// row sums is computed in a fixed order, by one thread (or as two halves, each by one thread), and
// workers run in the caller's flush-to-zero mode (float_mode.h): the same bits for any thread count.
#include "cpu/gemm.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cpu/block_sizes.h"
#include "cpu/float_mode.h"
#include "cpu/huge_pages.h"
#include "cpu/kernels/kernels.h"
#include "cpu/page_walks.h"
#include "cpu/scratch.h"

namespace linear_ext::cpu {
namespace {

// A thread is given at least this many multiply-adds (~3 µs of FMAs on one AVX2 core), which pays
// for a fork/join (~1-2 µs with the OpenMP pool's threads still spinning between ops) and its share
// of the repeated packing. On 2 threads, the MNIST 256→10 ops (327K multiply-adds) and a 64³ GEMM
// measured 25-45% faster than with a 4x larger minimum, which ran them on one thread.
constexpr double kMinMacsPerThread = 1 << 17;
// Up to this many rows of A the GEMM is a streaming (memory-bound) problem.
constexpr int64_t kSkinnyRows = 16;
// Up to this many rows, a row-major A is read in place rather than packed (run_in_place): at 32-128
// rows that measured 5-20% faster than the packed loops, at 200-256 rows no faster.
constexpr int64_t kInPlaceMaxRows = 128;
// Up to this many columns, a column-major B (the forward's Wᵀ) also takes run_in_place: in place
// measured 4-11% faster at 256-512 columns, even at 640-768, and 6% slower at 1000-3072, where the
// packed loops' reuse of an A sliver from L1 across a whole B block wins.
constexpr int64_t kInPlaceMaxColumnMajorN = 512;
// Largest MR×NR over all micro-kernels (8×48), for the on-stack tile of 16-bit outputs.
constexpr int kMaxTileElems = 8 * 48;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
// How many row panels of at most mc rows a block of `rows` rows is cut into; B is packed once per panel.
int64_t row_panels(int64_t rows, int64_t mc) { return ceil_div(rows, mc); }

// The calling thread owns the C workspace and the bias/row-sum vectors (blocks write disjoint
// parts of them); each thread owns its packing buffers.
thread_local ScratchBuffer tls_c_accum;
thread_local ScratchBuffer tls_bias;
thread_local ScratchBuffer tls_row_sums;
thread_local ScratchBuffer tls_packed_a;
thread_local ScratchBuffer tls_packed_b;
thread_local ScratchBuffer tls_rowstream_acc;
thread_local ScratchBuffer tls_rowstream_halves;
thread_local ScratchBuffer tls_dot_x;

// What every block of one GEMM shares.
template <typename T>
struct Plan {
  using acc_t = at::opmath_type<T>;
  const GemmProblem<T>& problem;
  MicroKernel<acc_t> uk;
  PackFn<T, acc_t> pack;
  RoundFn<T, acc_t> round;  // 16-bit outputs: the float sums to T
  DotKernelFn<T, acc_t> dot;
  RowStreamFn<T, acc_t> rowstream;
  int k_per_step;  // k-steps of the GEMM per micro-kernel step: 2 for the bfloat16 pair kernels
  bool skinny;  // at most kSkinnyRows rows and streams_b: B is streamed, never packed as a block
  // A row-major float/double B (not skinny) is packed by the first row sliver's kernel calls,
  // sliver by sliver (PackingMicroKernelFn); only a narrow edge sliver is packed beforehand.
  bool pack_b_in_kernel;
  BlockSizes bs;
  const acc_t* bias;  // N values, or null
  acc_t* row_sums;    // M values, or null
  acc_t* c_accum;     // M×N workspace for 16-bit outputs spanning several pc steps, or null
};

// Packs rows [i0, i0+mc) × columns [p0, p0+kc) of A into MR-row slivers (dst[s·MR·kc + p·MR + i]),
// adding each packed row's values to row_sums[i - i0] in k order when row_sums is given.
template <typename T, typename acc_t>
void pack_a(PackFn<T, acc_t> pack, const MatrixRef<T>& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr,
            acc_t* dst, acc_t* row_sums) {
  pack(a.base + i0 * a.layout.rs + p0 * a.layout.cs, a.layout.rs, a.layout.cs, mc, mr, kc, dst, row_sums);
}

// Packs columns [j0, j0+n) × rows [p0, p0+kc) of B into NR-column slivers (dst[s·NR·kc + p·NR + j]).
template <typename T, typename acc_t>
void pack_b(PackFn<T, acc_t> pack, const MatrixRef<T>& b, int64_t p0, int64_t kc, int64_t j0, int64_t n, int nr,
            acc_t* dst) {
  pack(b.base + p0 * b.layout.rs + j0 * b.layout.cs, b.layout.cs, b.layout.rs, n, nr, kc, dst, nullptr);
}

// C[i0:i1, j0:j1] with the serial Goto loops; adds row sums of A's rows [i0, i1) if add_row_sums.
template <typename T>
void run_block(const Plan<T>& plan, int64_t i0, int64_t i1, int64_t j0, int64_t j1, bool add_row_sums) {
  using acc_t = at::opmath_type<T>;
  constexpr bool kAccumulateInC = std::is_same_v<T, acc_t>;
  const GemmProblem<T>& pr = plan.problem;
  const MatrixRef<T>& A = pr.a;
  const MatrixRef<T>& B = pr.b;
  const int mr = plan.uk.mr, nr = plan.uk.nr;
  const int64_t K = pr.k(), N = pr.n();
  const int64_t kc_max = std::min(plan.bs.kc, K);
  acc_t* row_sums = add_row_sums ? plan.row_sums : nullptr;

  // Row panels of at most MC rows, equal in size (rounded up to MR): no small leftover panel.
  const int64_t mc = round_up(ceil_div(i1 - i0, row_panels(i1 - i0, plan.bs.mc)), mr);
  acc_t* packed_a = tls_packed_a.get<acc_t>(mc * kc_max);

  const bool skinny = plan.skinny;
  // Skinny float/double problems read full B slivers in place when B's rows are contiguous.
  const bool b_in_place = skinny && kAccumulateInC && B.layout.cs == 1;
  const bool pack_b_in_kernel = plan.pack_b_in_kernel;
  const int64_t nc_max = std::min(plan.bs.nc, j1 - j0);
  acc_t* packed_b = tls_packed_b.get<acc_t>(kc_max * (skinny ? nr : round_up(nc_max, nr)));

  for (int64_t ic = i0; ic < i1; ic += mc) {
    const int64_t rows = std::min(mc, i1 - ic);
    // K == 0 still takes one (empty) step, so that C receives the bias or zeros.
    for (int64_t pc = 0; pc == 0 || pc < K; pc += plan.bs.kc) {
      const int64_t kc = std::min(plan.bs.kc, K - pc);
      const int64_t k_steps = ceil_div(kc, plan.k_per_step);  // the slivers' depth and the kernels' steps
      const bool first = pc == 0, last = pc + plan.bs.kc >= K;
      pack_a(plan.pack, A, ic, rows, pc, kc, mr, packed_a, row_sums ? row_sums + ic : nullptr);

      for (int64_t jc = j0; jc < j1; jc += plan.bs.nc) {
        const int64_t nc = std::min(plan.bs.nc, j1 - jc);
        if (pack_b_in_kernel) {
          const int64_t full = nc / nr * nr;
          if (full < nc) pack_b(plan.pack, B, pc, kc, jc + full, nc - full, nr, packed_b + full * k_steps);
        } else if (!skinny) {
          pack_b(plan.pack, B, pc, kc, jc, nc, nr, packed_b);
        }

        for (int64_t ir = 0; ir < rows; ir += mr) {
          const acc_t* a_sliver = packed_a + ir * k_steps;
          const int64_t row = ic + ir;
          const int m = static_cast<int>(std::min<int64_t>(mr, rows - ir));
          for (int64_t jr = 0; jr < nc; jr += nr) {
            const int64_t col = jc + jr;
            const int n = static_cast<int>(std::min<int64_t>(nr, nc - jr));
            const acc_t* b_sliver = packed_b + jr * k_steps;
            int64_t ldb = nr;
            if (skinny) {
              if (b_in_place && n == nr) {
                b_sliver = reinterpret_cast<const acc_t*>(B.base + pc * B.layout.rs + col);
                ldb = B.layout.rs;
              } else {
                b_sliver = packed_b;
                pack_b(plan.pack, B, pc, kc, col, n, nr, packed_b);
              }
            }
            const acc_t* tile_bias = (last && plan.bias) ? plan.bias + col : nullptr;
            const MicroKernelFn<acc_t> run = plan.uk.for_tile(m, n);
            if constexpr (kAccumulateInC) {
              T* c = pr.c + row * pr.ldc + col;
              if (pack_b_in_kernel && ir == 0 && n == nr) {
                plan.uk.run_packing_b(k_steps, a_sliver, B.base + pc * B.layout.rs + col, B.layout.rs,
                                      packed_b + jr * k_steps, first ? nullptr : c, pr.ldc, c, pr.ldc, tile_bias, m, n);
              } else {
                run(k_steps, a_sliver, b_sliver, ldb, first ? nullptr : c, pr.ldc, c, pr.ldc, tile_bias, m, n);
              }
            } else if (!last) {
              acc_t* c = plan.c_accum + row * N + col;
              run(k_steps, a_sliver, b_sliver, ldb, first ? nullptr : c, N, c, N, nullptr, m, n);
            } else {
              acc_t tile[kMaxTileElems];
              const acc_t* c_in = first ? nullptr : plan.c_accum + row * N + col;
              run(k_steps, a_sliver, b_sliver, ldb, c_in, N, tile, nr, tile_bias, m, n);
              T* c = pr.c + row * pr.ldc + col;
              plan.round(tile, nr, m, n, c, pr.ldc);
            }
          }
        }
      }
    }
  }
}

// The tm × tn grid of blocks (one per thread) that repeats the least packing:
// a thread packs (M/tm)·K of A, and K·(N/tn) of B once for each of its MC-row panels. So a 2048³
// forward on 2 threads splits rows (each thread packs B once) rather than columns (each packs all
// of A, and its half of B twice): 1-3% faster, as are 4096³ and the FFN 768→3072 forward.
// B packed by the kernels (pack_b_in_kernel) costs a quarter as much per element: its loads and
// stores overlap the first row sliver's FMAs (that tile runs ~1.7x a plain one), where A's packing
// is a pass of its own. So a square input grad or weight grad splits rows and repeats B's packing
// (2 threads, 1024³ and 2048³: 0-4% faster than splitting columns, never slower). Columns are split
// in vector widths, not in NR: a block may then end in a narrow panel, and the blocks get equal
// work (at 2 threads, whole 48-column panels split 512 columns 288 + 224 and measured 4-7% slower).
// A tie goes to the split with more row blocks: a 768³ or 1024³ forward on 2 threads, where both
// splits pack as much, measured 1.5% faster splitting rows (each thread writes whole rows of C).
struct Grid {
  int64_t rows, cols;  // per block (multiples of MR / of the vector width)
  int64_t tm, tn;
};

Grid plan_grid(int64_t M, int64_t N, int64_t K, int mr, int vec, int64_t mc, bool b_packed_in_kernel) {
  const double b_weight = b_packed_in_kernel ? 0.25 : 1.0;
  const double macs = static_cast<double>(M) * N * std::max<int64_t>(K, 1);
  const int64_t threads = std::clamp<int64_t>(static_cast<int64_t>(macs / kMinMacsPerThread), 1, at::get_num_threads());
  int64_t best_tm = 1, best_tn = 1;
  double best_cost = std::numeric_limits<double>::infinity();
  for (int64_t tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    const int64_t tn = threads / tm;
    if (tm > ceil_div(M, mr) || tn > ceil_div(std::max<int64_t>(N, 1), vec)) continue;
    const double b_packings = static_cast<double>(row_panels(ceil_div(M, tm), mc));
    const double cost = static_cast<double>(M) / tm + b_weight * b_packings * static_cast<double>(N) / tn;
    if (cost <= best_cost) best_cost = cost, best_tm = tm, best_tn = tn;
  }
  Grid g;
  g.rows = round_up(ceil_div(M, best_tm), mr);
  g.cols = round_up(ceil_div(std::max<int64_t>(N, 1), best_tn), vec);
  g.tm = ceil_div(M, g.rows);
  g.tn = ceil_div(std::max<int64_t>(N, 1), g.cols);
  return g;
}

// Runs fn(j0, j1) over ranges of C's N columns on the threads, each in the caller's float mode,
// or on the calling thread alone when the problem is too small to pay for a fork/join.
template <typename Fn>
void parallel_over_columns(int64_t M, int64_t N, int64_t K, int64_t grain, const Fn& fn) {
  const double macs = static_cast<double>(M) * N * std::max<int64_t>(K, 1);
  const FloatMode mode = FloatMode::current();
  at::parallel_for(0, N, macs < 2 * kMinMacsPerThread ? N : grain, [&](int64_t j0, int64_t j1) {
    const FloatModeScope scope(mode);
    fn(j0, j1);
  });
}

// Skinny forward: dot products over contiguous rows of X and W.
// A few rows of X that lie within 768 bytes of W, mod 4 KiB, are first copied to scratch half a
// page from W: at 6-8 rows × 4096², X within about 512 bytes of W ran 1.25-1.5x slower (Zen 4,
// 1 thread, one process timing W at every offset in turn; a padded row stride for X did not help),
// and copied as here, every offset measured within 5% of the fastest. The copy is at most 16 rows
// of X against all of W's, and the kernels read the same values: the sums' bits do not change.
template <typename T>
void run_dot(const Plan<T>& plan) {
  const GemmProblem<T>& pr = plan.problem;
  const auto dot = plan.dot;
  const int64_t kc = dot_kc(sizeof(T));
  const T* x = pr.a.base;
  int64_t ldx = pr.a.layout.rs;
  if (pr.m() <= kSkinnyRows && pr.k() > 0 && ScratchBuffer::near_mod_page(x, pr.b.base, 768)) {
    T* placed = tls_dot_x.get_half_a_page_from<T>(pr.b.base, pr.m() * pr.k());
    for (int64_t i = 0; i < pr.m(); ++i) std::memcpy(placed + i * pr.k(), x + i * ldx, pr.k() * sizeof(T));
    x = placed;
    ldx = pr.k();
  }
  // A W streaming from memory into at least one multiply-add per byte of it (float32 from 4 rows of
  // X, float64 from 8) is run a chunk of rows at a time, the pages of the next chunk touched first
  // (page_walks.h): 4-16 rows × 4096² 1.01-1.07x as fast, or 1.12x where the same run without
  // touching was slow, 6 × 4096 × 11008 1.13x (float32, 1 thread, one process alternating both);
  // 0.98-1.04x on 2 threads. With fewer multiply-adds the stream hides the walks, and touching
  // measured 0.91-0.97x (float32 1-3 rows, float64 1-4; 16-bit dtypes, which convert, 0.95-0.98x).
  const int64_t w_row_bytes = pr.k() * static_cast<int64_t>(sizeof(T));
  const int64_t w_stride_bytes = pr.b.layout.cs * static_cast<int64_t>(sizeof(T));
  const bool walk_pages = plan.skinny && sizeof(T) >= 4 && pr.m() >= static_cast<int64_t>(sizeof(T));
  const int64_t chunk =
      walk_pages ? page_walk_chunk_rows(kPageWalkChunkBytes, w_stride_bytes) : std::max<int64_t>(pr.n(), 1);
  parallel_over_columns(pr.m(), pr.n(), pr.k(), 64, [&](int64_t j0, int64_t j1) {
    // The pages of the chunk of W's rows from c0 on (up to the thread's last row).
    const auto touch_chunk = [&](int64_t c0) {
      if (walk_pages && c0 < j1)
        touch_pages(pr.b.base + c0 * pr.b.layout.cs, std::min(j1, c0 + chunk) - c0, w_row_bytes, w_stride_bytes);
    };
    touch_chunk(j0);
    for (int64_t c0 = j0; c0 < j1; c0 += chunk) {
      const int64_t c1 = std::min(j1, c0 + chunk);
      touch_chunk(c1);
      dot(pr.m(), c1 - c0, pr.k(), kc, plan.skinny, x, ldx, pr.b.base + c0 * pr.b.layout.cs, pr.b.layout.cs,
          plan.bias ? plan.bias + c0 : nullptr, pr.c + c0, pr.ldc);
    }
  });
}

// The row-streaming kernel over rows [p0, p1) of B (and the matching columns of A) and columns
// [j0, j1): C's columns get the sums (+ bias), or with store false nothing is stored and the sums
// stay in the returned acc, rows rowstream_acc_stride(j1 - j0) apart (the calling thread's scratch).
// acc lies half a page from B's row: the sweeps store each vector of acc a few hundred bytes behind
// the B vectors they load, and with the two within about 512 bytes of each other (mod 4 KiB), 6-16
// rows × 4096² ran 1.2-1.6x slower (Zen 4, 1 and 2 threads, float32 and float64; one process timing
// every offset in turn). At 1-5 rows, and for widths that are not a multiple of a page, no offset
// measured more than 10% from the fastest.
template <typename T>
at::opmath_type<T>* stream_rows(const Plan<T>& plan, int64_t p0, int64_t p1, int64_t j0, int64_t j1, bool store) {
  using acc_t = at::opmath_type<T>;
  const GemmProblem<T>& pr = plan.problem;
  const T* b = pr.b.base + p0 * pr.b.layout.rs + j0 * pr.b.layout.cs;
  acc_t* acc = tls_rowstream_acc.get_half_a_page_from<acc_t>(b, pr.m() * rowstream_acc_stride<acc_t>(j1 - j0));
  plan.rowstream(pr.m(), j1 - j0, p1 - p0, plan.skinny, pr.a.base + p0 * pr.a.layout.cs, pr.a.layout.rs,
                 pr.a.layout.cs, b, pr.b.layout.rs, store && plan.bias ? plan.bias + j0 : nullptr,
                 store ? pr.c + j0 : nullptr, pr.ldc, acc);
  return acc;
}

// Fewest rows with row-major B: B's rows stream through once. A thread's columns are at least half
// the grain (128), more than the kernel's narrow outputs (at most four vectors, 64 floats), which
// sum in another order: so each output's order is the same on any number of threads.
template <typename T>
void run_rowstream(const Plan<T>& plan) {
  const GemmProblem<T>& pr = plan.problem;
  parallel_over_columns(pr.m(), pr.n(), pr.k(), 256,
                        [&](int64_t j0, int64_t j1) { stream_rows(plan, 0, pr.k(), j0, j1, true); });
}

// A B that streams from memory is summed in two halves of its rows, each on its own, and the output
// is half 0's sums + half 1's (+ bias), rounded once: on 2 threads each thread then streams one half,
// a contiguous range of B. Split by columns instead, each thread read a piece of every row (8 KiB
// of a 16 KiB row of 4096² floats), its streams restarting on a new page at the end of each piece:
// on 1 thread such pieces read 5-17% slower per byte than whole rows (1-8 rows of dY). On 2 threads
// the halves measured, against the column split (Zen 4, 1-16 rows × 4096², one process alternating
// both, ~20 runs each; in some minutes memory reads ~52 GB/s, each thread at about one thread's
// rate, in others ~34), as medians per row count:
//   float32   at ~52 GB/s 1.06-1.16x (1-6 rows: from 73-93% of a pure read of W to 85-103%), at ~34 1.00-1.03x;
//   float64   (4096 × 2048) 1.06-1.14x, and 1.00-1.03x;
//   bfloat16  1.03-1.56x, and 1.04-1.13x (with the pair kernel's sweeps of 2 pairs of that time).
// On 1 thread 0.99-1.01x (the halves' sums are copied out and added: a pass over 3·M·N values).
// The halves depend on the shape only, so the bits do not depend on the thread count. With more
// threads each half's columns are split too, in units of 128 columns (the last unit also takes the
// rest): every kernel call has at least 128 columns, beyond the narrow outputs, which sum in another
// order, or else all of them.
// Only where the halves' sums (2·M·N acc_t, written once and read once) are at most 1/16 of B's bytes.
template <typename T>
bool rowstream_in_halves(const Plan<T>& plan) {
  using acc_t = at::opmath_type<T>;
  const int64_t sums_bytes = 2 * plan.problem.m() * static_cast<int64_t>(sizeof(acc_t));
  return plan.skinny && 16 * sums_bytes <= plan.problem.k() * static_cast<int64_t>(sizeof(T));
}

template <typename T>
void run_rowstream_halves(const Plan<T>& plan) {
  using acc_t = at::opmath_type<T>;
  const GemmProblem<T>& pr = plan.problem;
  const int64_t M = pr.m(), N = pr.n(), K = pr.k();
  const int64_t k_half = K / 2;
  constexpr int64_t kUnit = 128;
  const int64_t units = std::max<int64_t>(1, N / kUnit);  // per half
  acc_t* sums = tls_rowstream_halves.get<acc_t>(2 * M * N);  // [half][i][j]
  const FloatMode mode = FloatMode::current();
  // B streams, so it holds millions of values: enough work for every thread.
  at::parallel_for(0, 2 * units, 1, [&](int64_t u0, int64_t u1) {
    const FloatModeScope scope(mode);
    for (int64_t half = 0; half < 2; ++half) {
      const int64_t first = std::max(u0, half * units) - half * units;
      const int64_t last = std::min(u1, (half + 1) * units) - half * units;
      if (first >= last) continue;
      const int64_t j0 = first * kUnit, j1 = last == units ? N : last * kUnit;
      const acc_t* acc = stream_rows(plan, half == 0 ? 0 : k_half, half == 0 ? k_half : K, j0, j1, false);
      const int64_t acc_ld = rowstream_acc_stride<acc_t>(j1 - j0);
      for (int64_t i = 0; i < M; ++i)
        std::memcpy(sums + (half * M + i) * N + j0, acc + i * acc_ld, (j1 - j0) * sizeof(acc_t));
    }
  });
  for (int64_t i = 0; i < M; ++i) {
    acc_t* s0 = sums + i * N;
    const acc_t* s1 = sums + (M + i) * N;
    for (int64_t j = 0; j < N; ++j) {
      const acc_t sum = s0[j] + s1[j];
      const acc_t out = plan.bias ? sum + plan.bias[j] : sum;
      if constexpr (std::is_same_v<T, acc_t>) pr.c[i * pr.ldc + j] = out;
      else s0[j] = out;
    }
  }
  if constexpr (!std::is_same_v<T, acc_t>) plan.round(sums, N, M, N, pr.c, pr.ldc);
}

// Few rows of a row-major float/double A (the input grad dY·W and the forward X·Wᵀ at training
// batch sizes): packing A would be repaid by only a few row slivers, so A is read in place, the
// micro-kernel broadcasting from MR of its rows. B is packed one NR-column panel at a time. A
// row-major B (dY·W) is packed by the first row sliver's kernel call, which reads the panel's rows
// in place and stores them contiguous as it goes (so that their loads overlap FMAs); the other row
// slivers read the packed panel from L1/L2, clear of the L1 set conflicts and TLB misses of B's
// strided rows (read in place by every sliver, B measured up to 12% slower). A column-major B (the
// forward's Wᵀ), and an edge panel narrower than NR, are packed (zero-padded) beforehand by the
// packing routine. C is written column panel by column panel.
template <typename T>
void run_in_place(const Plan<T>& plan) {
  const GemmProblem<T>& pr = plan.problem;
  const MatrixRef<T>& A = pr.a;
  const MatrixRef<T>& B = pr.b;
  const int mr = plan.uk.mr, nr = plan.uk.nr;
  const int64_t M = pr.m(), K = pr.k(), N = pr.n();
  // Threads split C's columns in vector widths, as plan_grid does: a thread's last panel may be
  // narrower than NR.
  const int vec = plan.uk.vec;
  parallel_over_columns(M * vec, ceil_div(N, vec), K, 1, [&](int64_t v0, int64_t v1) {
    const int64_t j0 = v0 * vec, j1 = std::min(N, v1 * vec);
    T* panel = tls_packed_b.get<T>(std::min(plan.bs.kc, K) * nr);
    // The row-sliver loop below reads only locals of this lambda: the kernel calls are opaque, so
    // anything reached through its captures would be re-read (a chain of dependent loads) after
    // every call, which at K = 10 measured 4-5% of the op.
    const int64_t lda = A.layout.rs, ldc = pr.ldc, rows = M;
    const int step = mr, ldp = nr, last_rows = static_cast<int>((rows - 1) % step + 1);
    // K == 0 still takes one (empty) step, so that C receives the bias or zeros.
    for (int64_t pc = 0; pc == 0 || pc < K; pc += plan.bs.kc) {
      const int64_t kc = std::min(plan.bs.kc, K - pc);
      const bool first = pc == 0, last = pc + plan.bs.kc >= K;
      for (int64_t jr = j0; jr < j1; jr += nr) {
        const int n = static_cast<int>(std::min<int64_t>(nr, j1 - jr));
        const T* b = B.base + pc * B.layout.rs + jr;
        const bool pack_in_kernel = n == nr && B.layout.cs == 1;
        if (!pack_in_kernel) pack_b(plan.pack, B, pc, kc, jr, n, nr, panel);
        const RowMajorAMicroKernelFn<T> run = plan.uk.row_major_a_for_tile(step, n);
        const RowMajorAMicroKernelFn<T> run_last = plan.uk.row_major_a_for_tile(last_rows, n);
        const T* tile_bias = (last && plan.bias) ? plan.bias + jr : nullptr;
        const T* a = A.base + pc;
        T* c = pr.c + jr;
        int64_t ir = 0;
        if (pack_in_kernel) {  // rows > kSkinnyRows ≥ MR: the first sliver is full
          plan.uk.row_major_a_packing_b(kc, a, lda, b, B.layout.rs, panel, first ? nullptr : c, ldc, c, ldc,
                                        tile_bias, step, n);
          ir = step;
        }
        for (; ir < rows; ir += step) {
          const int m = static_cast<int>(std::min<int64_t>(step, rows - ir));
          (m == step ? run : run_last)(kc, a + ir * lda, lda, panel, ldp, first ? nullptr : c + ir * ldc, ldc,
                                       c + ir * ldc, ldc, tile_bias, m, n);
        }
      }
    }
  });
}

// Whether run_in_place suits a float/double problem (16-bit operands must be converted, which
// packing does). A row-major B's rows must be shorter than a 4 KiB page: a panel of longer rows
// spans a page per k-step, whose reads miss the TLB (run_in_place measured 2-8% slower than the
// packed loops at 1024-4096 columns); a column-major B may have kInPlaceMaxColumnMajorN columns.
// A's rows must not be a multiple of 4 KiB apart, or a sliver's rows would all fall in the same
// few L1 sets.
template <typename T>
bool in_place_suits(const GemmProblem<T>& pr, const MicroKernel<T>& uk) {
  constexpr int64_t kPage = 4096;
  constexpr int64_t elem = sizeof(T);
  const bool b_suits = pr.b.layout.cs == 1 ? pr.b.layout.rs * elem < kPage
                                           : pr.b.layout.rs == 1 && pr.n() <= kInPlaceMaxColumnMajorN;
  return uk.row_major_a_packing_b && pr.m() > kSkinnyRows && pr.m() <= kInPlaceMaxRows && pr.n() > 0 && !pr.row_sums &&
         pr.a.layout.cs == 1 && pr.a.layout.rs * elem % kPage != 0 && b_suits;
}

}  // namespace

template <typename T>
void gemm(const GemmProblem<T>& problem) {
  using acc_t = at::opmath_type<T>;
  const int64_t M = problem.m(), K = problem.k(), N = problem.n();
  // Nothing to write (no rows, or no columns and no row sums); shapes may still be huge
  // through zero strides, so no loop may run over the other dimensions.
  if (M == 0 || (N == 0 && !problem.row_sums)) return;

  // A large C is usually fresh memory: have it faulted in as huge pages (huge_pages.h), at once
  // where C's rows are contiguous, so that the span is C's and written whole below.
  if (N > 0) {
    const size_t c_bytes = static_cast<size_t>((M - 1) * problem.ldc + N) * sizeof(T);
    if (c_bytes >= kHugePageAdviceMinBytes) advise_huge_pages(problem.c, c_bytes, M == 1 || problem.ldc == N);
  }

  const IsaKernels& isa = cpu_kernels();
  const auto& type_kernels = isa.for_type<T>();
  const MicroKernel<acc_t>* kernel = &isa.micro_kernel<acc_t>();
  PackFn<T, acc_t> pack = type_kernels.pack;
  DotKernelFn<T, acc_t> dot = type_kernels.dot;
  RowStreamFn<T, acc_t> rowstream = type_kernels.rowstream;
  const DotMinDepth* dot_min_depth = &type_kernels.dot_min_depth;
  int k_per_step = 1;
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    // A CPU with AVX512_BF16 multiplies bfloat16 pairs at twice the float32 FMA rate (kernels.h).
    if (const Bf16PairKernels* pairs = bf16_pair_kernels())
      kernel = &pairs->uk, pack = pairs->pack, dot = pairs->dot, rowstream = pairs->rowstream,
      dot_min_depth = &pairs->dot_min_depth, k_per_step = 2;
  }
  const MicroKernel<acc_t>& uk = *kernel;
  TORCH_INTERNAL_ASSERT(uk.mr * uk.nr <= kMaxTileElems);
  const bool skinny = M <= kSkinnyRows && streams_b(sizeof(acc_t), N, K);
  bool in_place = false;
  if constexpr (std::is_same_v<T, acc_t>) in_place = in_place_suits(problem, uk);
  const BlockSizes bs = skinny ? skinny_block_sizes(uk.mr, uk.nr, sizeof(acc_t), N, K)
                               : block_sizes(uk.mr, uk.nr, sizeof(acc_t), K, in_place);
  const bool pack_b_in_kernel = !skinny && std::is_same_v<T, acc_t> && problem.b.layout.cs == 1 && uk.run_packing_b;
  Plan<T> plan{problem, uk, pack, type_kernels.round, dot, rowstream, k_per_step, skinny, pack_b_in_kernel, bs, nullptr, nullptr, nullptr};

  if (problem.bias) {
    if constexpr (std::is_same_v<T, acc_t>) {
      plan.bias = problem.bias;
    } else {
      acc_t* converted = tls_bias.get<acc_t>(N);
      for (int64_t j = 0; j < N; ++j) converted[j] = static_cast<acc_t>(problem.bias[j]);
      plan.bias = converted;
    }
  }

  // Forward with few rows, or few columns (a micro-kernel sliver would be mostly padding): both
  // operands are contiguous along k (X rows, W rows = columns of Wᵀ), so dot products need no
  // packing. With few rows, only when W streams from memory or the dot products are long enough to
  // repay their reductions (DotMinDepth: kernels.h).
  static_assert(kSkinnyRows <= kDotChunkedMaxRows);
  const bool dot_layout = problem.a.layout.cs == 1 && problem.b.layout.rs == 1;
  const bool dot_rows = M <= kSkinnyRows && (skinny || K > dot_min_depth->min_k[M]);
  if ((dot_rows || N <= kSkinnyRows) && dot_layout && !problem.row_sums && N > 0) {
    run_dot(plan);
    return;
  }
  // Fewest rows with row-major B (the input grad at decode batch sizes). At 5-8 rows this measured
  // 10-45% faster than the packed loops even for a B that stays in cache (512²-2048²); at 9-16
  // rows only a B that streams from memory gains (16 × 4096²: 27% faster than the skinny loops),
  // the packed loops reusing a smaller one from L3 (16 × 1024²: 10% faster packed).
  const bool rowstream_rows = M <= kRowStreamMaxRows || skinny;
  if (rowstream_rows && !problem.row_sums && N > 0 && problem.b.layout.cs == 1) {
    if (rowstream_in_halves(plan)) run_rowstream_halves(plan);
    else run_rowstream(plan);
    return;
  }
  if constexpr (std::is_same_v<T, acc_t>) {
    if (in_place) {
      run_in_place(plan);
      return;
    }
  }

  if (problem.row_sums) {
    plan.row_sums = tls_row_sums.get<acc_t>(M);
    std::fill(plan.row_sums, plan.row_sums + M, acc_t(0));
  }
  if (!std::is_same_v<T, acc_t> && K > plan.bs.kc) plan.c_accum = tls_c_accum.get<acc_t>(M * N);

  const Grid grid = plan_grid(M, N, K, uk.mr, uk.vec, plan.bs.mc, plan.pack_b_in_kernel);
  const FloatMode mode = FloatMode::current();
  at::parallel_for(0, grid.tm * grid.tn, 1, [&](int64_t begin, int64_t end) {
    const FloatModeScope scope(mode);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bi = t / grid.tn, bj = t % grid.tn;
      const int64_t i0 = bi * grid.rows, j0 = bj * grid.cols;
      // Row sums come from the blocks of the first column; with N == 0 that block has no columns.
      run_block(plan, i0, std::min(M, i0 + grid.rows), std::min(N, j0), std::min(N, j0 + grid.cols), bj == 0);
    }
  });

  if (problem.row_sums)
    for (int64_t i = 0; i < M; ++i) problem.row_sums[i] = static_cast<T>(plan.row_sums[i]);
}

template void gemm<float>(const GemmProblem<float>&);
template void gemm<double>(const GemmProblem<double>&);
template void gemm<c10::BFloat16>(const GemmProblem<c10::BFloat16>&);
template void gemm<c10::Half>(const GemmProblem<c10::Half>&);

}  // namespace linear_ext::cpu
