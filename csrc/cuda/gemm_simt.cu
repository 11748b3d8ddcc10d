// CUDA-core GEMM: C (M×N) = A (M×K) · B (K×N) [+ bias] [, row sums of A], fp32 / fp64 FMA.
//
// Shapes and layouts: A and B are any strided views (gemm_problem.h); per operand the host says
// which of its two dimensions is unit-stride (kcontig) and whether 16-byte loads are aligned
// (vec). Both are block-uniform branches, so one instantiation serves every layout.
//
// Tiling (parameters in SimtConfig below; the float 128×128 tile is held to 128 registers so that
// two 256-thread blocks share an SM):
//   block   BM×BN of C, THREADS = 32·(BM/WM)·(BN/WN), marching over K in BK-deep steps
//   warp    WM×WN of the block tile
//   thread  TM×TN accumulators, in VS×VS sub-blocks (VS = 16 bytes of acc_t) spread over the warp
//           tile: thread (lm, ln) of the warp's LM×LN lane grid owns rows i·LM·VS + lm·VS + [0, VS)
//           and columns j·LN·VS + ln·VS + [0, VS). Its shared-memory reads are 16-byte vectors:
//           per k the lanes of a warp read LN (B) and LM (A) distinct vectors, each broadcast —
//           conflict-free.
// Shared memory holds both tiles k-major, As[k][m] and Bs[k][n] in acc_t, double-buffered: the
// next tile's global loads (16-byte vectors along the unit-stride dimension, or element loads
// when unaligned / at the edges) are in flight in registers while the current tile is multiplied,
// then stored to the other buffer; one __syncthreads per k-step. Rows are padded by VS elements,
// which keeps 16-byte alignment and makes the transposing stores of k-contiguous operands
// conflict-free for float (lanes writing k and k+4 of the same m land 16 banks apart).
// Row sums (bias grad): blocks of tile column 0 add up their A tiles from shared memory,
// THREADS/BM threads per row each over a fixed k slice, combined in a fixed order at the end.
// Split-K: block row z = blockIdx.y takes its own K range and writes acc_t partials
// (gemm_common.h); otherwise the epilogue adds the bias and rounds to T once.
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <climits>
#include <type_traits>

#include "cuda/gemm_simt.cuh"

namespace linear_ext::cuda {
namespace {

template <typename T, int BM_, int BN_, int BK_, int WM_, int WN_, int TM_, int TN_, int MIN_BLOCKS_ = 1>
struct SimtConfig {
  using acc = acc_t<T>;
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WM = WM_, WN = WN_, TM = TM_, TN = TN_;
  static constexpr int MIN_BLOCKS = MIN_BLOCKS_;  // __launch_bounds__ residency target (caps registers)
  static constexpr int VS = 16 / sizeof(acc);  // acc_t elements per 16-byte shared-memory vector
  static constexpr int VG = 16 / sizeof(T);    // T elements per 16-byte global vector
  static constexpr int LM = WM / TM, LN = WN / TN;
  static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
  static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  static constexpr int PAD = VS;
  static constexpr int ROW_SUM_PARTS = THREADS / BM;

  static_assert(BM % WM == 0 && BN % WN == 0, "the block tile (BM×BN) must be a whole number of warp tiles (WM×WN)");
  static_assert(WM % TM == 0 && WN % TN == 0 && LM * LN == 32,
                "a warp tile must be 32 thread tiles: (WM/TM)·(WN/TN) == 32");
  static_assert(TM % VS == 0 && TN % VS == 0, "thread tiles are made of VS×VS sub-blocks (16-byte smem vectors)");
  static_assert(BK % VG == 0 && BM % VG == 0 && BN % VG == 0, "tiles must hold whole 16-byte global vectors");
  static_assert((BM * BK / VG) % THREADS == 0 && (BN * BK / VG) % THREADS == 0,
                "every thread must load the same number of vectors of each tile");
  static_assert(THREADS % BM == 0 && BK % ROW_SUM_PARTS == 0,
                "row sums: THREADS must be a multiple of BM and BK divisible by THREADS/BM");
};

template <typename T, SimtTile TILE>
struct SimtConfigFor;
template <>
struct SimtConfigFor<float, SimtTile::kLarge> : SimtConfig<float, 128, 128, 8, 32, 64, 8, 8, 2> {};
template <>
struct SimtConfigFor<float, SimtTile::kSmall> : SimtConfig<float, 32, 128, 8, 32, 64, 8, 8> {};
template <>
struct SimtConfigFor<double, SimtTile::kLarge> : SimtConfig<double, 64, 64, 8, 32, 32, 8, 4> {};
template <>
struct SimtConfigFor<c10::Half, SimtTile::kLarge> : SimtConfig<c10::Half, 128, 128, 16, 32, 64, 8, 8> {};
template <>
struct SimtConfigFor<c10::BFloat16, SimtTile::kLarge> : SimtConfig<c10::BFloat16, 128, 128, 16, 32, 64, 8, 8> {};

template <typename T>
constexpr bool has_small_tile() {
  return std::is_same_v<T, float>;
}

// 16 bytes of acc_t between registers and shared memory (the address is 16-byte aligned).
template <typename A>
__device__ __forceinline__ void load16(const A* src, A* dst) {
  if constexpr (std::is_same_v<A, float>) {
    const float4 v = *reinterpret_cast<const float4*>(src);
    dst[0] = v.x, dst[1] = v.y, dst[2] = v.z, dst[3] = v.w;
  } else {
    const double2 v = *reinterpret_cast<const double2*>(src);
    dst[0] = v.x, dst[1] = v.y;
  }
}
template <typename A>
__device__ __forceinline__ void store16(A* dst, const A* src) {
  if constexpr (std::is_same_v<A, float>) {
    *reinterpret_cast<float4*>(dst) = make_float4(src[0], src[1], src[2], src[3]);
  } else {
    *reinterpret_cast<double2*>(dst) = make_double2(src[0], src[1]);
  }
}

// One operand viewed as (k, x), x = m for A and n for B: element (k, x) at base[k·sk + x·sx],
// valid for k < k_end, x < x_end. A thread stages PER_THREAD vectors of VG elements per tile,
// running along k when kcontig (tile[k + v][x], a transposing store) and along x otherwise.
template <typename T, int BX, int BK, int THREADS, int PAD>
struct SimtOperandLoader {
  using acc = acc_t<T>;
  static constexpr int VG = 16 / sizeof(T);
  static constexpr int VS = 16 / sizeof(acc);
  static constexpr int PER_THREAD = BX * BK / VG / THREADS;

  const T* base;
  int64_t sk, sx, k_end, x_end;
  bool vec, kcontig;
  acc regs[PER_THREAD][VG];

  // Tile coordinates of the first element of this thread's vector i.
  __device__ __forceinline__ void coords(int i, int& k, int& x) const {
    const int e = static_cast<int>(threadIdx.x) + i * THREADS;
    if (kcontig) {
      x = e / (BK / VG);
      k = (e % (BK / VG)) * VG;
    } else {
      k = e / (BX / VG);
      x = (e % (BX / VG)) * VG;
    }
  }

  __device__ __forceinline__ void load(int64_t k0, int64_t x0) {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) {
      int k, x;
      coords(i, k, x);
      const int64_t gk = k0 + k, gx = x0 + x;
      const bool full = kcontig ? (gx < x_end && gk + VG <= k_end) : (gk < k_end && gx + VG <= x_end);
      if (vec && full) {
        // Aligned: gk (kcontig) or gx is a multiple of VG, base and the other stride are 16-byte multiples.
        const uint4 raw = __ldg(reinterpret_cast<const uint4*>(base + gk * sk + gx * sx));
        const T* vals = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int v = 0; v < VG; ++v) regs[i][v] = static_cast<acc>(vals[v]);
      } else {
#pragma unroll
        for (int v = 0; v < VG; ++v) {
          const int64_t ek = kcontig ? gk + v : gk, ex = kcontig ? gx : gx + v;
          regs[i][v] = (ek < k_end && ex < x_end) ? static_cast<acc>(base[ek * sk + ex * sx]) : acc(0);
        }
      }
    }
  }

  __device__ __forceinline__ void store(acc (*tile)[BX + PAD]) const {
#pragma unroll
    for (int i = 0; i < PER_THREAD; ++i) {
      int k, x;
      coords(i, k, x);
      if (kcontig) {
#pragma unroll
        for (int v = 0; v < VG; ++v) tile[k + v][x] = regs[i][v];
      } else {
#pragma unroll
        for (int v = 0; v < VG; v += VS) store16(&tile[k][x + v], &regs[i][v]);
      }
    }
  }
};

template <typename T, class Cfg>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS) gemm_simt_kernel(const GemmArgs<T> args) {
  using acc = acc_t<T>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN, VS = Cfg::VS;
  constexpr int WM = Cfg::WM, WN = Cfg::WN, LM = Cfg::LM, LN = Cfg::LN, PAD = Cfg::PAD;
  constexpr int THREADS = Cfg::THREADS, PARTS = Cfg::ROW_SUM_PARTS;

  __shared__ __align__(16) acc As[2][BK][BM + PAD];
  __shared__ __align__(16) acc Bs[2][BK][BN + PAD];
  __shared__ acc row_sum_parts[PARTS][BM];

  const GemmProblem<T>& p = args.p;
  const int64_t M = p.m(), N = p.n(), K = p.k();
  const int64_t tiles_m = (M + BM - 1) / BM, tiles_n = N > 0 ? (N + BN - 1) / BN : 1;
  const TileCoord tile = tile_of_block<8>(blockIdx.x, tiles_m, tiles_n);
  const int64_t m0 = tile.tm * BM, n0 = tile.tn * BN;
  const int64_t split = blockIdx.y;
  const int64_t k_begin = split * args.k_per_split;
  const int64_t k_end = k_begin + args.k_per_split < K ? k_begin + args.k_per_split : K;
  const int64_t k_tiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;

  // A viewed as (k, m): A(m, k) = base[m·rs + k·cs].
  SimtOperandLoader<T, BM, BK, THREADS, PAD> a_ld{p.a.base, p.a.layout.cs, p.a.layout.rs, k_end, M,
                                                   args.a_vec, args.a_kcontig};
  SimtOperandLoader<T, BN, BK, THREADS, PAD> b_ld{p.b.base, p.b.layout.rs, p.b.layout.cs, k_end, N,
                                                   args.b_vec, args.b_kcontig};

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  const int lm = lane / LN, ln = lane % LN;
  // Row (column) of the block tile held in accumulator row ii (column jj) of this thread.
  auto row_of = [&](int ii) { return wm * WM + (ii / VS) * (LM * VS) + lm * VS + ii % VS; };
  auto col_of = [&](int jj) { return wn * WN + (jj / VS) * (LN * VS) + ln * VS + jj % VS; };

  const bool sum_rows = p.row_sums != nullptr && tile.tn == 0;
  const int rs_row = threadIdx.x % BM, rs_part = threadIdx.x / BM;
  acc row_sum = 0;

  acc c[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) c[i][j] = 0;

  if (k_tiles > 0) {
    a_ld.load(k_begin, m0);
    b_ld.load(k_begin, n0);
    a_ld.store(As[0]);
    b_ld.store(Bs[0]);
    __syncthreads();
  }
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int buf = static_cast<int>(kt & 1);
    const bool has_next = kt + 1 < k_tiles;
    if (has_next) {
      a_ld.load(k_begin + (kt + 1) * BK, m0);
      b_ld.load(k_begin + (kt + 1) * BK, n0);
    }
    if (sum_rows) {
#pragma unroll
      for (int k = rs_part * (BK / PARTS); k < (rs_part + 1) * (BK / PARTS); ++k) row_sum += As[buf][k][rs_row];
    }
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      acc a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i += VS) load16(&As[buf][k][row_of(i)], &a[i]);
#pragma unroll
      for (int j = 0; j < TN; j += VS) load16(&Bs[buf][k][col_of(j)], &b[j]);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) c[i][j] = fma(a[i], b[j], c[i][j]);
    }
    if (has_next) {
      // The other buffer was last read in step kt-1, which every thread finished before the
      // __syncthreads that closed it.
      a_ld.store(As[buf ^ 1]);
      b_ld.store(Bs[buf ^ 1]);
    }
    __syncthreads();
  }

  if (args.partial != nullptr) {
    acc* out = args.partial + split * M * N;
    const bool vec_out = N % VS == 0;  // workspace base is 16-byte aligned (caching allocator)
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int64_t m = m0 + row_of(i);
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < TN; j += VS) {
        const int64_t n = n0 + col_of(j);
        if (vec_out && n + VS <= N) {
          store16(out + m * N + n, &c[i][j]);
        } else {
#pragma unroll
          for (int u = 0; u < VS; ++u)
            if (n + u < N) out[m * N + n + u] = c[i][j + u];
        }
      }
    }
  } else {
    const bool vec_out = std::is_same_v<T, acc> && reinterpret_cast<uintptr_t>(p.c) % 16 == 0 &&
                         (p.ldc * static_cast<int64_t>(sizeof(T))) % 16 == 0;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int64_t m = m0 + row_of(i);
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < TN; j += VS) {
        const int64_t n = n0 + col_of(j);
        acc v[VS];
#pragma unroll
        for (int u = 0; u < VS; ++u)
          v[u] = c[i][j + u] + ((p.bias != nullptr && n + u < N) ? static_cast<acc>(p.bias[n + u]) : acc(0));
        if constexpr (std::is_same_v<T, acc>) {
          if (vec_out && n + VS <= N) {
            store16(p.c + m * p.ldc + n, v);
            continue;
          }
        }
#pragma unroll
        for (int u = 0; u < VS; ++u)
          if (n + u < N) p.c[m * p.ldc + n + u] = static_cast<T>(v[u]);
      }
    }
  }

  if (sum_rows) {  // block-uniform, so the barrier below is reached by all threads or none
    row_sum_parts[rs_part][rs_row] = row_sum;
    __syncthreads();
    const int64_t m = m0 + rs_row;
    if (rs_part == 0 && m < M) {
      acc total = 0;
#pragma unroll
      for (int q = 0; q < PARTS; ++q) total += row_sum_parts[q][rs_row];
      if (args.partial != nullptr)
        args.partial_row_sums[split * M + m] = total;
      else
        p.row_sums[m] = static_cast<T>(total);
    }
  }
}

template <typename T, class Cfg>
void launch(const GemmArgs<T>& args, int splits, cudaStream_t stream) {
  const int64_t M = args.p.m(), N = args.p.n();
  const int64_t tiles = ((M + Cfg::BM - 1) / Cfg::BM) * (N > 0 ? (N + Cfg::BN - 1) / Cfg::BN : 1);
  TORCH_CHECK(tiles <= INT_MAX, "linear_ext CUDA GEMM: ", M, "x", N, " output needs ", tiles,
              " tiles; at most ", INT_MAX, " are supported");
  TORCH_CHECK(splits >= 1 && splits <= 65535, "linear_ext CUDA GEMM: invalid split-K count ", splits);
  TORCH_INTERNAL_ASSERT(args.k_per_split % Cfg::BK == 0 || splits == 1);
  gemm_simt_kernel<T, Cfg><<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(splits)), Cfg::THREADS, 0,
                             stream>>>(args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

template <typename T>
TileShape simt_tile_shape(SimtTile tile) {
  if constexpr (has_small_tile<T>()) {
    if (tile == SimtTile::kSmall) {
      using C = SimtConfigFor<T, SimtTile::kSmall>;
      return {C::BM, C::BN, C::BK};
    }
  }
  using C = SimtConfigFor<T, SimtTile::kLarge>;
  return {C::BM, C::BN, C::BK};
}

template <typename T>
void launch_gemm_simt(SimtTile tile, const GemmArgs<T>& args, int splits, cudaStream_t stream) {
  if constexpr (has_small_tile<T>()) {
    if (tile == SimtTile::kSmall) return launch<T, SimtConfigFor<T, SimtTile::kSmall>>(args, splits, stream);
  }
  launch<T, SimtConfigFor<T, SimtTile::kLarge>>(args, splits, stream);
}

#define LINEAR_EXT_INSTANTIATE_SIMT(T)                     \
  template TileShape simt_tile_shape<T>(SimtTile);         \
  template void launch_gemm_simt<T>(SimtTile, const GemmArgs<T>&, int, cudaStream_t);
LINEAR_EXT_INSTANTIATE_SIMT(float)
LINEAR_EXT_INSTANTIATE_SIMT(double)
LINEAR_EXT_INSTANTIATE_SIMT(c10::Half)
LINEAR_EXT_INSTANTIATE_SIMT(c10::BFloat16)
#undef LINEAR_EXT_INSTANTIATE_SIMT

}  // namespace linear_ext::cuda
