// cuda::gemm: picks a kernel family, tile and split-K count per problem, then launches it.
//
// Families (one file each):
//   mma   gemm_mma_kernel.cuh   tensor cores, sm_80+: float16 / bfloat16, and float when TF32 is
//                               allowed (torch.backends.cuda.matmul.allow_tf32)
//   simt  gemm_simt.cu          CUDA cores: float (TF32 off), double, and 16-bit types on GPUs
//                               without the mma kernels
// A Hopper wgmma + TMA family would slot in as a third Family, tried before kMma for 16-bit
// operands on sm_90 with 16-byte aligned k-contiguous rows and M above the kSmallM range.
//
// Configuration table (choose_plan; "split below" = split K only while the output has fewer tiles
// than this share of the SMs):
//   family  tile     when                              blocks/SM  min k-tiles  max     split
//                                                      resident   per split    splits  below
//   mma     kDecode  M ≤ 16, A and B k-contiguous      3          4            32      50%
//   mma     kSmallM  M ≤ 16, other layouts             3          4            32      100%
//   mma     kHuge    ≥ 3 waves of 128×256 tiles        1          8            16      100%
//   mma     kLarge   otherwise                         2          8            16      100%
//   simt    kSmall   float, M ≤ 32                     5          32           32      100%
//   simt    kLarge   otherwise (float / double / 16-bit) 2 / 3 / 1  64         16      100%
// Split-K: K is split floor(wave / tiles) ways, wave = resident blocks/SM × SMs (capped by the
// columns above), so that the blocks of a split problem fill one wave without a tail and the
// decode shapes stream their weights from every SM. kDecode's narrow tiles give the decode shapes
// (N in the thousands) enough blocks unsplit, which saves the reduce kernel's launch. The workspace
// is capped at 2^25 partial elements. Splits depend only on the shape and the GPU's SM count, so
// results are bitwise reproducible on a given GPU model.
// (kHuge and kLarge hold 1 and 2 blocks per SM: kHuge is taken only where wave quantization costs
// little, and it falls back to kLarge on GPUs with less than 145 KiB of shared memory per block.)
// Overrides for tests and experiments (read per call): LINEAR_EXT_CUDA_KERNEL=simt forces the
// CUDA-core family; LINEAR_EXT_CUDA_TILE=huge|large|small_m|decode forces the MMA tile (decode only
// for k-contiguous A and B, else small_m); LINEAR_EXT_CUDA_SPLIT_K=n forces n splits (clamped to
// the number of k-tiles).
#include <c10/core/Allocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>

#include "cuda/gemm.cuh"
#include "cuda/gemm_mma.cuh"
#include "cuda/gemm_simt.cuh"
#include "cuda/splitk_reduce.cuh"
#include "cuda/torch_settings.h"

namespace linear_ext::cuda {
namespace {

struct DeviceInfo {
  int cc_major = 0;
  int sms = 1;
  int smem_optin = 0;  // max dynamic shared memory per block after opt-in, bytes
  bool mma = false;    // sm_80+ and the mma kernels were compiled for it
};

const DeviceInfo& current_device_info() {
  constexpr int kMaxDevices = 64;
  static DeviceInfo infos[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  TORCH_CHECK(device >= 0 && device < kMaxDevices, "linear_ext: CUDA device index ", device, " is not supported");
  std::call_once(once[device], [device] {
    DeviceInfo& info = infos[device];
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.cc_major, cudaDevAttrComputeCapabilityMajor, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, device));
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&info.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    info.mma = info.cc_major >= 8 && mma_kernels_compiled();
  });
  return infos[device];
}

enum class Family { kSimt, kMma };

struct SplitRule {
  int blocks_per_sm;  // blocks of this kernel resident per SM: one wave = blocks_per_sm · SMs
  int min_k_tiles_per_split;
  int max_splits;
  int split_below_pct;  // split only while tiles < split_below_pct% of the SMs
};

struct Plan {
  Family family = Family::kSimt;
  SimtTile simt_tile = SimtTile::kLarge;
  MmaTile mma_tile = MmaTile::kLarge;
  MmaLayout mma_layout = MmaLayout::kKK;
  TileShape shape{};
  SplitRule rule{};
};

constexpr int64_t kMaxPartialElements = int64_t{1} << 25;

bool force_simt() {
  const char* v = std::getenv("LINEAR_EXT_CUDA_KERNEL");
  return v != nullptr && std::strcmp(v, "simt") == 0;
}

// The MMA tile named by LINEAR_EXT_CUDA_TILE, or `fallback`.
MmaTile forced_mma_tile(MmaTile fallback) {
  const char* v = std::getenv("LINEAR_EXT_CUDA_TILE");
  if (v == nullptr) return fallback;
  if (std::strcmp(v, "huge") == 0) return MmaTile::kHuge;
  if (std::strcmp(v, "large") == 0) return MmaTile::kLarge;
  if (std::strcmp(v, "small_m") == 0) return MmaTile::kSmallM;
  if (std::strcmp(v, "decode") == 0) return MmaTile::kDecode;
  return fallback;
}

int forced_splits() {
  const char* v = std::getenv("LINEAR_EXT_CUDA_SPLIT_K");
  return v != nullptr ? std::max(0, std::atoi(v)) : 0;
}

template <typename T>
Plan choose_plan(const GemmProblem<T>& p, const DeviceInfo& dev) {
  const int64_t M = p.m();
  Plan plan;
  bool mma = dev.mma && !force_simt();
  if constexpr (std::is_same_v<T, double>) {
    mma = false;
  } else if constexpr (std::is_same_v<T, float>) {
    mma = mma && tf32_allowed();
  }
  if constexpr (!std::is_same_v<T, double>) {
    if (mma) {
      const MatrixLayout& a = p.a.layout;
      const MatrixLayout& b = p.b.layout;
      const bool k_contiguous = a.cs == 1 && b.rs == 1;
      MmaTile tile = MmaTile::kLarge;
      if (M <= 16) {
        tile = k_contiguous ? MmaTile::kDecode : MmaTile::kSmallM;
      } else {
        const TileShape huge = mma_tile_shape<T>(MmaTile::kHuge);
        const int64_t huge_tiles = ((M + huge.bm - 1) / huge.bm) * ((p.n() + huge.bn - 1) / huge.bn);
        if (huge_tiles >= 3 * static_cast<int64_t>(dev.sms)) tile = MmaTile::kHuge;
      }
      tile = forced_mma_tile(tile);
      if (tile == MmaTile::kDecode && !k_contiguous) tile = MmaTile::kSmallM;
      const auto fits = [&](MmaTile t) { return dev.smem_optin >= mma_smem_bytes<T>(t) + 1024; };  // + static scratch
      if (tile == MmaTile::kHuge && !fits(tile)) tile = MmaTile::kLarge;
      if (fits(tile)) {
        plan.family = Family::kMma;
        plan.mma_tile = tile;
        plan.shape = mma_tile_shape<T>(tile);
        plan.rule = tile == MmaTile::kDecode   ? SplitRule{3, 4, 32, 50}
                    : tile == MmaTile::kSmallM ? SplitRule{3, 4, 32, 100}
                    : tile == MmaTile::kHuge   ? SplitRule{1, 8, 16, 100}
                                               : SplitRule{2, 8, 16, 100};
        return plan;
      }
    }
  }
  {
    plan.simt_tile = std::is_same_v<T, float> && M <= 32 ? SimtTile::kSmall : SimtTile::kLarge;
    plan.shape = simt_tile_shape<T>(plan.simt_tile);
    plan.rule = plan.simt_tile == SimtTile::kSmall ? SplitRule{5, 32, 32, 100}
                : std::is_same_v<T, float>         ? SplitRule{2, 64, 16, 100}
                : std::is_same_v<T, double>        ? SplitRule{3, 64, 16, 100}
                                                   : SplitRule{1, 64, 16, 100};
  }
  return plan;
}

// Operand flags. MMA: the shared-memory layout follows each operand's unit-stride dimension
// where the tile has a kernel for it (mma_supports); otherwise the operand is staged k-major
// through element loads (m-contiguous A with k-contiguous B, m-contiguous A for kSmallM; kDecode
// is chosen only for k-contiguous operands). SIMT: threads walk the unit-stride (or
// smaller-stride) dimension.
template <typename T>
void set_operand_flags(Plan& plan, GemmArgs<T>& args) {
  const GemmProblem<T>& p = args.p;
  const MatrixLayout& a = p.a.layout;
  const MatrixLayout& b = p.b.layout;
  const int64_t M = p.m(), N = p.n(), K = p.k();
  if (plan.family == Family::kMma) {
    const bool a_k = a.cs == 1 || a.rs != 1;
    const bool b_k = b.rs == 1 || b.cs != 1;
    if (!a_k && !b_k && mma_supports(plan.mma_tile, MmaLayout::kMN)) {
      plan.mma_layout = MmaLayout::kMN;
      args.a_vec = vector_ok(p.a.base, a.rs, a.cs, K);
    } else {
      plan.mma_layout = b_k ? MmaLayout::kKK : MmaLayout::kKN;
      args.a_vec = vector_ok(p.a.base, a.cs, a.rs, M);  // false unless A really is k-contiguous
    }
    args.b_vec = b_k ? vector_ok(p.b.base, b.rs, b.cs, N) : vector_ok(p.b.base, b.cs, b.rs, K);
    args.a_kcontig = plan.mma_layout != MmaLayout::kMN;
    args.b_kcontig = b_k;
  } else {
    args.a_kcontig = a.cs == 1 ? true : a.rs == 1 ? false : a.cs <= a.rs;
    args.b_kcontig = b.rs == 1 ? true : b.cs == 1 ? false : b.rs <= b.cs;
    args.a_vec = args.a_kcontig ? vector_ok(p.a.base, a.cs, a.rs, M) : vector_ok(p.a.base, a.rs, a.cs, K);
    args.b_vec = args.b_kcontig ? vector_ok(p.b.base, b.rs, b.cs, N) : vector_ok(p.b.base, b.cs, b.rs, K);
  }
}

// Number of K splits (≥ 1) such that every split gets at least one k-tile.
int choose_splits(const Plan& plan, int64_t M, int64_t N, int64_t K, int sms, int64_t& k_per_split) {
  const int64_t bk = plan.shape.bk;
  const int64_t k_tiles = (K + bk - 1) / bk;
  const int64_t tiles = ((M + plan.shape.bm - 1) / plan.shape.bm) * std::max<int64_t>(1, (N + plan.shape.bn - 1) / plan.shape.bn);
  int64_t splits = 1;
  if (const int forced = forced_splits(); forced > 0) {
    splits = std::min<int64_t>(forced, std::max<int64_t>(k_tiles, 1));
  } else {
    const int64_t wave = static_cast<int64_t>(plan.rule.blocks_per_sm) * sms;
    if (tiles * 100 < static_cast<int64_t>(plan.rule.split_below_pct) * sms) splits = wave / tiles;
    splits = std::min<int64_t>({splits, plan.rule.max_splits, k_tiles / plan.rule.min_k_tiles_per_split});
    if (M * N > 0) splits = std::min<int64_t>(splits, kMaxPartialElements / (M * N));
    splits = std::max<int64_t>(splits, 1);
  }
  if (splits <= 1) {
    k_per_split = K;
    return 1;
  }
  const int64_t tiles_per_split = (k_tiles + splits - 1) / splits;
  k_per_split = tiles_per_split * bk;
  return static_cast<int>((k_tiles + tiles_per_split - 1) / tiles_per_split);
}

template <typename T>
void launch_plan(const Plan& plan, const GemmArgs<T>& args, int splits, cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, double>) {
    if (plan.family == Family::kMma) return launch_gemm_mma<T>(plan.mma_tile, plan.mma_layout, args, splits, stream);
  }
  launch_gemm_simt<T>(plan.simt_tile, args, splits, stream);
}

}  // namespace

template <typename T>
void gemm(const GemmProblem<T>& problem, cudaStream_t stream) {
  const int64_t M = problem.m(), N = problem.n(), K = problem.k();
  if (M == 0 || (N == 0 && problem.row_sums == nullptr)) return;
  const DeviceInfo& dev = current_device_info();
  Plan plan = choose_plan(problem, dev);
  GemmArgs<T> args{problem, false, false, true, true, K, nullptr, nullptr};
  set_operand_flags(plan, args);
  const int splits = choose_splits(plan, M, N, K, dev.sms, args.k_per_split);
  if (splits == 1) return launch_plan(plan, args, 1, stream);

  // Split-K: fp32/fp64 partials in a workspace from torch's caching allocator (stream-ordered,
  // so freeing it after the launches is safe; private pools under CUDA graph capture).
  using acc = acc_t<T>;
  const int64_t partial_elems = splits * M * N;
  const int64_t row_sum_elems = problem.row_sums != nullptr ? splits * M : 0;
  c10::DataPtr workspace =
      c10::cuda::CUDACachingAllocator::get()->allocate((partial_elems + row_sum_elems) * sizeof(acc));
  const auto current = c10::cuda::getCurrentCUDAStream();
  if (current.stream() != stream)
    c10::cuda::CUDACachingAllocator::recordStream(workspace, c10::cuda::getStreamFromExternal(stream, current.device_index()));
  args.partial = static_cast<acc*>(workspace.get());
  args.partial_row_sums = problem.row_sums != nullptr ? args.partial + partial_elems : nullptr;
  launch_plan(plan, args, splits, stream);
  launch_splitk_reduce<T>(problem, args.partial, args.partial_row_sums, splits, stream);
}

template void gemm<float>(const GemmProblem<float>&, cudaStream_t);
template void gemm<double>(const GemmProblem<double>&, cudaStream_t);
template void gemm<c10::BFloat16>(const GemmProblem<c10::BFloat16>&, cudaStream_t);
template void gemm<c10::Half>(const GemmProblem<c10::Half>&, cudaStream_t);

}  // namespace linear_ext::cuda
