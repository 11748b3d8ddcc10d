// The CUDA GEMM behind all three ops.
#pragma once

#include <cuda_runtime.h>

#include "gemm_problem.h"

namespace linear_ext::cuda {

// Runs `problem` on `stream` (the pointers are device memory of the current device). Accumulates
// in float for float/bfloat16/float16 and in double for double; rounds C and row_sums once.
// Deterministic: row sums are reduced in a fixed order, without atomics.
template <typename T>
void gemm(const GemmProblem<T>& problem, cudaStream_t stream);

}  // namespace linear_ext::cuda
