// Split-K epilogue (splitk_reduce.cu): the fixed-order reduction of the GEMM kernels' partials.
#pragma once

#include "cuda/gemm_common.cuh"

namespace linear_ext::cuda {

// C = Σ_z partial[z] + bias and row_sums = Σ_z partial_row_sums[z], summed in z order (the same
// bits on every run), rounded to T once. partial is [splits][M][N], partial_row_sums [splits][M].
template <typename T>
void launch_splitk_reduce(const GemmProblem<T>& p, const acc_t<T>* partial, const acc_t<T>* partial_row_sums,
                          int splits, cudaStream_t stream);

}  // namespace linear_ext::cuda
