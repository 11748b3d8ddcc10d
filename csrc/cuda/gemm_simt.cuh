// CUDA-core GEMM family (gemm_simt.cu): float and double, and the float16 / bfloat16 fallback for
// GPUs (or builds) without the sm_80 tensor-core kernels. Launch interface for the dispatcher.
#pragma once

#include "cuda/gemm_common.cuh"

namespace linear_ext::cuda {

struct TileShape {
  int bm, bn, bk;
};

enum class SimtTile {
  kLarge,  // 128×128 output tiles (64×64 for double): square and tall problems
  kSmall,  // 32×128 output tiles: few rows (M ≤ 32), usually split along K
};

// The block tile of `tile` for element type T (types without a kSmall configuration use kLarge).
template <typename T>
TileShape simt_tile_shape(SimtTile tile);

// Launches grid (tiles, splits) on `stream`; args.k_per_split must be a multiple of the tile's bk.
template <typename T>
void launch_gemm_simt(SimtTile tile, const GemmArgs<T>& args, int splits, cudaStream_t stream);

}  // namespace linear_ext::cuda
