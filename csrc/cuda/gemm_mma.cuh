// Tensor-core GEMM family (gemm_mma_kernel.cuh): mma.sync on sm_80+, float16 / bfloat16 with
// m16n8k16 and float as TF32 with m16n8k8. Launch interface for the dispatcher.
#pragma once

#include "cuda/gemm_common.cuh"
#include "cuda/gemm_simt.cuh"  // TileShape

namespace linear_ext::cuda {

enum class MmaTile {
  kHuge,    // 128×256 output tiles, 8 warps of 64×64, 3 stages: large problems (fewer L2 → SM bytes per flop)
  kLarge,   // 128×128 output tiles, 4 warps of 64×64, 3 stages
  kSmallM,  // 16×128 output tiles, 4 warps of 16×32, 4 stages: few rows (M ≤ 16), split along K
  kDecode,  // 16×32 output tiles, 2 warps of 16×16, 6 stages of 256-byte k-rows: M ≤ 16 with
            // k-contiguous A and B (forward decode): enough blocks to stream the weights without split-K
};

// How A and B sit in shared memory, which decides the ldmatrix flavour: K = k-contiguous rows
// (A as [m][k], B as [n][k]); M / N = m- or n-contiguous rows ([k][m], [k][n]). Global loads use
// cp.async when the operand's unit-stride dimension matches (GemmArgs::a_vec / b_vec), element
// loads otherwise, so every layout is served correctly by any of these.
enum class MmaLayout {
  kKK,  // forward:          A = X,   B = Wᵀ
  kKN,  // backward_input:   A = dY,  B = W
  kMN,  // backward_weight:  A = dYᵀ, B = X
};

// kSmallM / kDecode tiles are 16 rows of A: too narrow for m-contiguous shared-memory rows, and
// kDecode's 32 columns too narrow for n-contiguous ones.
constexpr bool mma_supports(MmaTile tile, MmaLayout layout) {
  return tile == MmaTile::kHuge || tile == MmaTile::kLarge || layout == MmaLayout::kKK ||
         (tile == MmaTile::kSmallM && layout == MmaLayout::kKN);
}

template <typename T>
TileShape mma_tile_shape(MmaTile tile);

// Dynamic shared memory one block of `tile` needs (the device must allow it per block).
template <typename T>
int mma_smem_bytes(MmaTile tile);

// Launches grid (tiles, splits) on `stream`; requires mma_supports(tile, layout) and a GPU for
// which the tensor-core kernels were compiled (mma_kernels_compiled).
template <typename T>
void launch_gemm_mma(MmaTile tile, MmaLayout layout, const GemmArgs<T>& args, int splits, cudaStream_t stream);

// Whether the current device runs sm_80+ code of these kernels (false when the build's PTX/SASS
// for this GPU is older, e.g. TORCH_CUDA_ARCH_LIST=7.5+PTX on an sm_90 GPU).
bool mma_kernels_compiled();

}  // namespace linear_ext::cuda
