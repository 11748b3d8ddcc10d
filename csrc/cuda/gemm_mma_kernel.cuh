// Tensor-core GEMM (sm_80+): C (M×N) = A (M×K) · B (K×N) [+ bias] [, row sums of A], fp32 accumulate.
//   float16 / bfloat16: mma.sync.m16n8k16, fragments by ldmatrix (.trans for m/n-contiguous tiles)
//   float (TF32 allowed): mma.sync.m16n8k8.tf32, fragments by ldmatrix from k-contiguous tiles or
//                         by 32-bit loads from m/n-contiguous ones, rounded to tf32 (cvt.rna)
//
// Tiling (parameters in MmaConfig below):
//   block   BM×BN of C, THREADS = 32·(BM/WM)·(BN/WN); K in BK-deep steps, BK = 128 bytes of T
//           (256 for kDecode: fewer, larger copies in flight per block)
//   warp    WM×WN = (WM/16)×(WN/8) mma tiles of 16×8, fp32 accumulators in registers
//   k-step  KSTEP = 32 bytes of T (16 halves / 8 floats) per mma: two 16-byte chunks
// Pipeline: STAGES shared-memory buffers filled by cp.async 16-byte copies (zero-filled past the
// matrix edges through the copy's src-size) STAGES-1 k-steps ahead; one __syncthreads per k-step.
// When an operand's unit-stride dimension does not match its shared-memory layout, or its
// pointer / leading dimension is not 16-byte aligned, the same tile is filled by element loads
// (any strides) and 16-byte shared stores instead, in the same pipeline slot.
// Shared memory: a tile is `rows` rows of C = row_elems·sizeof(T)/16 16-byte chunks (C a multiple
// of 8); logical chunk c of row r is stored at chunk c ^ swz(r), swz(r) = ((r&3)<<1) | ((r>>2)&1).
// swz is a bijection on 0..7 over any 8 consecutive rows, so the 8 row addresses of an ldmatrix
// (rows r0..r0+7, one chunk) hit 8 different 16-byte bank groups; and for the TF32 element loads
// (rows r0+t, t<4, elements e0+g, g<8, e0 a multiple of 8) the 32 lanes hit 32 different banks.
// Row sums (bias grad): blocks of tile column 0 add up their A tiles from shared memory,
// THREADS/BM threads per row over fixed k slices, combined in a fixed order at the end.
// Split-K and the epilogue as in gemm_common.cuh.
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <atomic>
#include <climits>
#include <type_traits>

#include "cuda/gemm_mma.cuh"
#include "cuda/ptx.cuh"

namespace linear_ext::cuda {
namespace mma_detail {

template <typename T, int BM_, int BN_, int WM_, int WN_, int STAGES_, int K_ROW_BYTES = 128>
struct MmaConfig {
  static constexpr int EB = sizeof(T);      // bytes per element
  static constexpr int VEC = 16 / EB;       // elements per 16-byte chunk
  static constexpr int BK = K_ROW_BYTES / EB;  // k-contiguous rows of K_ROW_BYTES (8 or 16 chunks)
  static constexpr int KSTEP = 2 * VEC;     // k per mma instruction
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int MT = WM / 16, NT = WN / 8;  // mma tiles per warp
  static constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN;
  static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  static constexpr int A_BYTES = BM * BK * EB, B_BYTES = BN * BK * EB;
  static constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
  static constexpr int SMEM_BYTES = STAGES * STAGE_BYTES;
  static constexpr int ROW_SUM_PARTS = THREADS / BM;

  static_assert(EB == 2 || EB == 4, "MMA kernels take 16-bit (m16n8k16) or 32-bit TF32 (m16n8k8) elements");
  static_assert(BM % WM == 0 && BN % WN == 0, "the block tile (BM×BN) must be a whole number of warp tiles (WM×WN)");
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles are 16-row mma tiles and pairs of 8-column mma tiles");
  static_assert(STAGES >= 2, "the cp.async pipeline needs at least 2 stages");
  static_assert(THREADS % BM == 0 && BK % ROW_SUM_PARTS == 0,
                "row sums: THREADS must be a multiple of BM and BK divisible by THREADS/BM");
};

template <typename T, MmaTile TILE>
struct MmaConfigFor;
template <typename T>
struct MmaConfigFor<T, MmaTile::kHuge> : MmaConfig<T, 128, 256, 64, 64, 3> {};
template <typename T>
struct MmaConfigFor<T, MmaTile::kLarge> : MmaConfig<T, 128, 128, 64, 64, 3> {};
template <typename T>
struct MmaConfigFor<T, MmaTile::kSmallM> : MmaConfig<T, 16, 128, 16, 32, 4> {};
template <typename T>
struct MmaConfigFor<T, MmaTile::kDecode> : MmaConfig<T, 16, 32, 16, 16, 6, 256> {};

__device__ __forceinline__ int swz(int r) { return ((r & 3) << 1) | ((r >> 2) & 1); }

// A shared-memory tile of ROWS rows × CHUNKS 16-byte chunks, swizzled as described above.
template <int ROWS, int CHUNKS>
struct SwizzledTile {
  static_assert(CHUNKS % 8 == 0, "swizzled shared-memory rows must be a multiple of 8 chunks (128 bytes)");
  static constexpr int BYTES = ROWS * CHUNKS * 16;
  __device__ __forceinline__ static int chunk_offset(int r, int c) { return (r * CHUNKS + (c ^ swz(r))) * 16; }
};

// Fills one operand tile of shared memory. The operand is seen as (outer, inner): shared row r is
// outer index o0 + r and element j of the row is inner index i0 + j; global element (o, i) is at
// base[o·so + i·si], valid for o < o_end and i < i_end, zero elsewhere.
template <typename T, int ROWS, int ROW_ELEMS, int THREADS>
struct TileLoader {
  static constexpr int VEC = 16 / sizeof(T);
  static constexpr int CHUNKS = ROW_ELEMS / VEC;
  using Tile = SwizzledTile<ROWS, CHUNKS>;
  static constexpr int PER_THREAD = ROWS * CHUNKS / THREADS;
  static constexpr int ROW_STEP = THREADS / CHUNKS;
  static_assert(ROW_ELEMS % VEC == 0, "shared rows hold whole 16-byte chunks");
  static_assert((ROWS * CHUNKS) % THREADS == 0, "every thread copies the same number of chunks of a tile");
  static_assert(THREADS % CHUNKS == 0, "THREADS must be a multiple of the chunks per shared row");

  const T* base;
  int64_t so, si, o_end, i_end;
  bool vec;  // si == 1 and every chunk start is 16-byte aligned (vector_ok)

  // Vector path. THREADS is a multiple of CHUNKS, so all of a thread's chunks sit in one chunk
  // column c, ROW_STEP rows apart: one source pointer, one bounds check along the row.
  __device__ __forceinline__ void load(char* tile, int64_t o0, int64_t i0) const {
    if (!vec) return load_elements(tile, o0, i0);
    const int row0 = static_cast<int>(threadIdx.x) / CHUNKS, c = static_cast<int>(threadIdx.x) % CHUNKS;
    const int64_t gi = i0 + static_cast<int64_t>(c) * VEC;
    const int64_t left = i_end - gi;
    const int valid_bytes = (left <= 0 ? 0 : left >= VEC ? VEC : static_cast<int>(left)) * static_cast<int>(sizeof(T));
    const T* src = base + (o0 + row0) * so + gi;
#pragma unroll
    for (int q = 0; q < PER_THREAD; ++q) {
      const int r = row0 + q * ROW_STEP;
      char* dst = tile + Tile::chunk_offset(r, c);
      if (valid_bytes > 0 && o0 + r < o_end)
        ptx::cp_async_16(ptx::smem_addr(dst), src + static_cast<int64_t>(q) * ROW_STEP * so, valid_bytes);
      else
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  }

  // The element-load path (unaligned or not unit-stride): out of line, so that its many
  // addresses do not take registers from the main loop of the kernels that never use it.
  __device__ __noinline__ void load_elements(char* tile, int64_t o0, int64_t i0) const {
    for (int q = 0; q < PER_THREAD; ++q) {
      const int e = static_cast<int>(threadIdx.x) + q * THREADS;
      const int r = e / CHUNKS, c = e % CHUNKS;
      const int64_t go = o0 + r, gi = i0 + static_cast<int64_t>(c) * VEC;
      uint4 raw = make_uint4(0, 0, 0, 0);
      T* vals = reinterpret_cast<T*>(&raw);
      if (go < o_end) {
#pragma unroll
        for (int v = 0; v < VEC; ++v)
          if (gi + v < i_end) vals[v] = base[go * so + (gi + v) * si];
      }
      *reinterpret_cast<uint4*>(tile + Tile::chunk_offset(r, c)) = raw;
    }
  }
};

// A 32-bit element (TF32 path) of a swizzled tile: row r, element j of the row.
template <class Tile>
__device__ __forceinline__ uint32_t load_u32(const char* tile, int r, int j) {
  return *reinterpret_cast<const uint32_t*>(tile + Tile::chunk_offset(r, j / 4) + (j % 4) * 4);
}

// Stores C(m, n) and C(m, n+1) (those inside N): to the split-K workspace as fp32, or with the
// bias added and rounded to T, as one 4- or 8-byte store when the address allows it.
template <typename T>
__device__ __forceinline__ void store_pair(const GemmArgs<T>& args, int64_t split, int64_t m, int64_t n, float v0,
                                           float v1) {
  const GemmProblem<T>& p = args.p;
  const int64_t N = p.n();
  if (n >= N) return;
  const bool both = n + 1 < N;
  if (args.partial != nullptr) {
    float* out = args.partial + (split * p.m() + m) * N + n;
    if (both && reinterpret_cast<uintptr_t>(out) % 8 == 0) {
      *reinterpret_cast<float2*>(out) = make_float2(v0, v1);
    } else {
      out[0] = v0;
      if (both) out[1] = v1;
    }
    return;
  }
  if (p.bias != nullptr) {
    v0 += static_cast<float>(p.bias[n]);
    if (both) v1 += static_cast<float>(p.bias[n + 1]);
  }
  T* out = p.c + m * p.ldc + n;
  if (both && reinterpret_cast<uintptr_t>(out) % (2 * sizeof(T)) == 0) {
    if constexpr (sizeof(T) == 2) {
      const uint32_t lo = static_cast<T>(v0).x, hi = static_cast<T>(v1).x;
      *reinterpret_cast<uint32_t*>(out) = lo | (hi << 16);
    } else {
      *reinterpret_cast<float2*>(out) = make_float2(v0, v1);
    }
    return;
  }
  out[0] = static_cast<T>(v0);
  if (both) out[1] = static_cast<T>(v1);
}

template <typename T, class Cfg, bool A_KMAJOR, bool B_KMAJOR>
__global__ void __launch_bounds__(Cfg::THREADS) gemm_mma_kernel(const GemmArgs<T> args) {
#if LINEAR_EXT_SM80
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, WM = Cfg::WM, WN = Cfg::WN, VEC = Cfg::VEC;
  constexpr int MT = Cfg::MT, NT = Cfg::NT, STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  constexpr int KSTEP = Cfg::KSTEP, PARTS = Cfg::ROW_SUM_PARTS;
  constexpr bool TF32 = std::is_same_v<T, float>;
  // A tile: [BM rows][BK] (k-major) or [BK rows][BM]; B tile: [BN rows][BK] or [BK rows][BN].
  using ALoader = TileLoader<T, A_KMAJOR ? BM : BK, A_KMAJOR ? BK : BM, THREADS>;
  using BLoader = TileLoader<T, B_KMAJOR ? BN : BK, B_KMAJOR ? BK : BN, THREADS>;
  using ATile = typename ALoader::Tile;
  using BTile = typename BLoader::Tile;
  static_assert(ATile::BYTES == Cfg::A_BYTES && BTile::BYTES == Cfg::B_BYTES, "tile byte counts disagree");

  extern __shared__ __align__(128) char smem[];
  __shared__ float row_sum_parts[PARTS][BM];

  const GemmProblem<T>& p = args.p;
  const int64_t M = p.m(), N = p.n(), K = p.k();
  const int64_t tiles_m = (M + BM - 1) / BM, tiles_n = N > 0 ? (N + BN - 1) / BN : 1;
  const TileCoord tile = tile_of_block<8>(blockIdx.x, tiles_m, tiles_n);
  const int64_t m0 = tile.tm * BM, n0 = tile.tn * BN;
  const int64_t split = blockIdx.y;
  const int64_t k_begin = split * args.k_per_split;
  const int64_t k_end = k_begin + args.k_per_split < K ? k_begin + args.k_per_split : K;
  const int64_t k_tiles = k_end > k_begin ? (k_end - k_begin + BK - 1) / BK : 0;

  // A(m, k) = a.base[m·rs + k·cs]; B(k, n) = b.base[k·rs + n·cs].
  const auto& al = p.a.layout;
  const auto& bl = p.b.layout;
  const ALoader a_ld = A_KMAJOR ? ALoader{p.a.base, al.rs, al.cs, M, k_end, args.a_vec}
                                : ALoader{p.a.base, al.cs, al.rs, k_end, M, args.a_vec};
  const BLoader b_ld = B_KMAJOR ? BLoader{p.b.base, bl.cs, bl.rs, N, k_end, args.b_vec}
                                : BLoader{p.b.base, bl.rs, bl.cs, k_end, N, args.b_vec};
  auto load_stage = [&](int stage, int64_t k0) {
    char* a_tile = smem + stage * Cfg::STAGE_BYTES;
    char* b_tile = a_tile + Cfg::A_BYTES;
    if (A_KMAJOR) a_ld.load(a_tile, m0, k0); else a_ld.load(a_tile, k0, m0);
    if (B_KMAJOR) b_ld.load(b_tile, n0, k0); else b_ld.load(b_tile, k0, n0);
  };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / Cfg::WARPS_N, wn = warp % Cfg::WARPS_N;
  const int lq = lane >> 3, lr = lane & 7;  // ldmatrix: matrix index, row within it
  const int g = lane >> 2, t = lane & 3;    // mma fragments: group row, thread in group

  const bool sum_rows = p.row_sums != nullptr && tile.tn == 0;
  const int rs_row = threadIdx.x % BM, rs_part = threadIdx.x / BM;
  float row_sum = 0.f;

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, k_begin + static_cast<int64_t>(s) * BK);
    ptx::cp_async_commit();
  }

  int read_stage = 0, write_stage = STAGES - 1;
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    // Tile kt has landed (this thread's copies), then for everyone; and every warp is done with
    // the stage computed in step kt-1, which is the one refilled now.
    ptx::cp_async_wait<STAGES - 2>();
    __syncthreads();
    if (kt + STAGES - 1 < k_tiles) load_stage(write_stage, k_begin + (kt + STAGES - 1) * BK);
    ptx::cp_async_commit();

    const char* a_tile = smem + read_stage * Cfg::STAGE_BYTES;
    const char* b_tile = a_tile + Cfg::A_BYTES;
    const uint32_t a_base = ptx::smem_addr(a_tile), b_base = ptx::smem_addr(b_tile);

    if (sum_rows) {
      for (int k = rs_part * (BK / PARTS); k < (rs_part + 1) * (BK / PARTS); ++k) {
        const int r = A_KMAJOR ? rs_row : k, j = A_KMAJOR ? k : rs_row;
        row_sum += static_cast<float>(
            *reinterpret_cast<const T*>(a_tile + ATile::chunk_offset(r, j / VEC) + (j % VEC) * sizeof(T)));
      }
    }

#pragma unroll
    for (int ks = 0; ks < BK / KSTEP; ++ks) {
      uint32_t af[MT][4], bf[NT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int m = wm * WM + mt * 16;  // first row of this mma tile within the block tile
        if constexpr (A_KMAJOR) {
          // Matrices: (rows m..m+7 | m+8..m+15) × (chunk 2ks | 2ks+1) → a0a1, a2a3, a4a5, a6a7 (tf32: a0..a3).
          ptx::ldmatrix_x4(af[mt], a_base + ATile::chunk_offset(m + lr + (lq & 1) * 8, ks * 2 + (lq >> 1)));
        } else if constexpr (!TF32) {
          // Rows are k: matrices (k 0-7 | 8-15 of the step) × (m chunk m/8 | m/8+1), transposed.
          ptx::ldmatrix_x4_trans(af[mt], a_base + ATile::chunk_offset(ks * KSTEP + lr + (lq >> 1) * 8,
                                                                      m / VEC + (lq & 1)));
        } else {
          const int k = ks * KSTEP + t;  // a0 = A(g, t), a1 = A(g+8, t), a2 = A(g, t+4), a3 = A(g+8, t+4)
          af[mt][0] = load_u32<ATile>(a_tile, k, m + g);
          af[mt][1] = load_u32<ATile>(a_tile, k, m + g + 8);
          af[mt][2] = load_u32<ATile>(a_tile, k + 4, m + g);
          af[mt][3] = load_u32<ATile>(a_tile, k + 4, m + g + 8);
        }
      }
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        const int n = wn * WN + nt * 8;  // first column of this pair of mma tiles
        uint32_t r[4];
        if constexpr (B_KMAJOR) {
          // Matrices: (rows n..n+7 | n+8..n+15) × (chunk 2ks | 2ks+1) → b[nt][0], b[nt][1], b[nt+1][0], b[nt+1][1].
          ptx::ldmatrix_x4(r, b_base + BTile::chunk_offset(n + lr + (lq >> 1) * 8, ks * 2 + (lq & 1)));
        } else if constexpr (!TF32) {
          // Rows are k: matrices (k 0-7 | 8-15) × (n chunk n/8 | n/8+1), transposed.
          ptx::ldmatrix_x4_trans(r, b_base + BTile::chunk_offset(ks * KSTEP + lr + (lq & 1) * 8, n / VEC + (lq >> 1)));
        } else {
          const int k = ks * KSTEP + t;  // b0 = B(t, g), b1 = B(t+4, g)
          r[0] = load_u32<BTile>(b_tile, k, n + g);
          r[1] = load_u32<BTile>(b_tile, k + 4, n + g);
          r[2] = load_u32<BTile>(b_tile, k, n + 8 + g);
          r[3] = load_u32<BTile>(b_tile, k + 4, n + 8 + g);
        }
        bf[nt][0] = r[0], bf[nt][1] = r[1], bf[nt + 1][0] = r[2], bf[nt + 1][1] = r[3];
      }
      if constexpr (TF32) {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int v = 0; v < 4; ++v) af[mt][v] = ptx::to_tf32(af[mt][v]);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int v = 0; v < 2; ++v) bf[nt][v] = ptx::to_tf32(bf[nt][v]);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          if constexpr (TF32)
            ptx::mma_m16n8k8_tf32(acc[mt][nt], af[mt], bf[nt]);
          else
            ptx::mma_m16n8k16<std::is_same_v<T, c10::BFloat16>>(acc[mt][nt], af[mt], bf[nt]);
        }
    }
    read_stage = read_stage + 1 == STAGES ? 0 : read_stage + 1;
    write_stage = write_stage + 1 == STAGES ? 0 : write_stage + 1;
  }
  ptx::cp_async_wait<0>();

  // Epilogue: accumulator v of mma tile (mt, nt) is C(m + g + 8·(v/2), n + 2t + v%2).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t m = m0 + wm * WM + mt * 16 + g + 8 * h;
        const int64_t n = n0 + wn * WN + nt * 8 + 2 * t;
        if (m < M) store_pair(args, split, m, n, acc[mt][nt][2 * h], acc[mt][nt][2 * h + 1]);
      }

  if (sum_rows) {  // block-uniform, so the barrier below is reached by all threads or none
    row_sum_parts[rs_part][rs_row] = row_sum;
    __syncthreads();
    const int64_t m = m0 + rs_row;
    if (rs_part == 0 && m < M) {
      float total = 0.f;
#pragma unroll
      for (int q = 0; q < PARTS; ++q) total += row_sum_parts[q][rs_row];
      if (args.partial != nullptr)
        args.partial_row_sums[split * M + m] = total;
      else
        p.row_sums[m] = static_cast<T>(total);
    }
  }
#endif
}

// Raises the kernel's dynamic shared-memory limit once per device (it is a per-function,
// per-device attribute), then launches grid (tiles, splits).
template <typename T, class Cfg, bool A_KMAJOR, bool B_KMAJOR>
void launch(const GemmArgs<T>& args, int splits, cudaStream_t stream) {
  const auto kernel = gemm_mma_kernel<T, Cfg, A_KMAJOR, B_KMAJOR>;
  static std::atomic<uint64_t> configured{0};
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit == 0 || !(configured.load(std::memory_order_relaxed) & bit)) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::SMEM_BYTES));
    configured.fetch_or(bit, std::memory_order_relaxed);
  }
  const int64_t M = args.p.m(), N = args.p.n();
  const int64_t tiles = ((M + Cfg::BM - 1) / Cfg::BM) * (N > 0 ? (N + Cfg::BN - 1) / Cfg::BN : 1);
  TORCH_CHECK(tiles <= INT_MAX, "linear_ext CUDA GEMM: ", M, "x", N, " output needs ", tiles,
              " tiles; at most ", INT_MAX, " are supported");
  TORCH_CHECK(splits >= 1 && splits <= 65535, "linear_ext CUDA GEMM: invalid split-K count ", splits);
  TORCH_INTERNAL_ASSERT(args.k_per_split % Cfg::BK == 0 || splits == 1);
  kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(splits)), Cfg::THREADS, Cfg::SMEM_BYTES,
           stream>>>(args);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace mma_detail

namespace mma_detail {
template <class Cfg>
constexpr TileShape shape_of() {
  return {Cfg::BM, Cfg::BN, Cfg::BK};
}
}  // namespace mma_detail

template <typename T>
TileShape mma_tile_shape(MmaTile tile) {
  using namespace mma_detail;
  switch (tile) {
    case MmaTile::kHuge: return shape_of<MmaConfigFor<T, MmaTile::kHuge>>();
    case MmaTile::kSmallM: return shape_of<MmaConfigFor<T, MmaTile::kSmallM>>();
    case MmaTile::kDecode: return shape_of<MmaConfigFor<T, MmaTile::kDecode>>();
    default: return shape_of<MmaConfigFor<T, MmaTile::kLarge>>();
  }
}

template <typename T>
int mma_smem_bytes(MmaTile tile) {
  using namespace mma_detail;
  switch (tile) {
    case MmaTile::kHuge: return MmaConfigFor<T, MmaTile::kHuge>::SMEM_BYTES;
    case MmaTile::kSmallM: return MmaConfigFor<T, MmaTile::kSmallM>::SMEM_BYTES;
    case MmaTile::kDecode: return MmaConfigFor<T, MmaTile::kDecode>::SMEM_BYTES;
    default: return MmaConfigFor<T, MmaTile::kLarge>::SMEM_BYTES;
  }
}

// The instantiated (tile, layout) pairs, as mma_supports lists them.
template <typename T>
void launch_gemm_mma(MmaTile tile, MmaLayout layout, const GemmArgs<T>& args, int splits, cudaStream_t stream) {
  using namespace mma_detail;
  TORCH_INTERNAL_ASSERT(mma_supports(tile, layout));
  using Huge = MmaConfigFor<T, MmaTile::kHuge>;
  using Large = MmaConfigFor<T, MmaTile::kLarge>;
  using Small = MmaConfigFor<T, MmaTile::kSmallM>;
  if (tile == MmaTile::kDecode) return launch<T, MmaConfigFor<T, MmaTile::kDecode>, true, true>(args, splits, stream);
  if (tile == MmaTile::kSmallM) {
    if (layout == MmaLayout::kKK) return launch<T, Small, true, true>(args, splits, stream);
    return launch<T, Small, true, false>(args, splits, stream);
  }
  if (tile == MmaTile::kHuge) {
    switch (layout) {
      case MmaLayout::kKK: return launch<T, Huge, true, true>(args, splits, stream);
      case MmaLayout::kKN: return launch<T, Huge, true, false>(args, splits, stream);
      case MmaLayout::kMN: return launch<T, Huge, false, false>(args, splits, stream);
    }
  }
  switch (layout) {
    case MmaLayout::kKK: return launch<T, Large, true, true>(args, splits, stream);
    case MmaLayout::kKN: return launch<T, Large, true, false>(args, splits, stream);
    case MmaLayout::kMN: return launch<T, Large, false, false>(args, splits, stream);
  }
}

}  // namespace linear_ext::cuda
