// What every CUDA GEMM kernel family shares: the launch arguments, split-K bookkeeping, the
// block → output-tile mapping and the alignment predicate that licenses 16-byte vector loads.
//
// A launch computes C (M×N) = A (M×K) · B (K×N) [+ bias] [, row_sums = Σ_k A(i, k)] over the
// strided views of gemm_problem.h. With split-K (gridDim.y = splits > 1) block row z of the grid
// covers k ∈ [z·k_per_split, min(K, (z+1)·k_per_split)) and writes unrounded acc_t partials to a
// workspace, partial[z][m][n] (row-major, leading dimension N) and partial_row_sums[z][m]; the
// split-K reduce kernel (splitk_reduce.cu) then adds the splits in z order, adds the bias and
// rounds once. Without split-K the kernel's epilogue does that itself.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "gemm_problem.h"

namespace linear_ext::cuda {

// Accumulation type: double for double, float for float / bfloat16 / float16.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

template <typename T>
struct GemmArgs {
  GemmProblem<T> p;
  // 16-byte vector loads are allowed for A / B (vector_ok below); otherwise element loads.
  bool a_vec, b_vec;
  // A / B element (·, ·) is unit-stride along k (else along m / n): picks how threads walk a tile.
  bool a_kcontig, b_kcontig;
  int64_t k_per_split;            // a multiple of the kernel's BK; K when not split
  acc_t<T>* partial;              // split-K workspace [splits][M][N], or null: write C directly
  acc_t<T>* partial_row_sums;     // split-K workspace [splits][M] (only when p.row_sums)
};

// Grouped raster order: consecutive blocks walk down GROUP_M tile rows before moving right, so
// the A rows and B columns that neighbouring blocks read stay in L2 together.
struct TileCoord {
  int64_t tm, tn;
};
template <int GROUP_M>
__device__ __forceinline__ TileCoord tile_of_block(int64_t block, int64_t tiles_m, int64_t tiles_n) {
  const int64_t per_group = static_cast<int64_t>(GROUP_M) * tiles_n;
  const int64_t first_m = (block / per_group) * GROUP_M;
  const int64_t rows = tiles_m - first_m < GROUP_M ? tiles_m - first_m : GROUP_M;
  const int64_t in_group = block % per_group;
  return {first_m + in_group % rows, in_group / rows};
}

// True when every 16-byte chunk that a tile load can start (at an index along the unit-stride
// dimension that is a multiple of 16/sizeof(T)) is 16-byte aligned: base aligned and the other
// dimension's stride a multiple of 16 bytes (irrelevant when that dimension has one element).
template <typename T>
bool vector_ok(const T* base, int64_t contiguous_stride, int64_t other_stride, int64_t other_extent) {
  if (contiguous_stride != 1) return false;
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return false;
  return other_extent <= 1 || (other_stride * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

}  // namespace linear_ext::cuda
