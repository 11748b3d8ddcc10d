// The CUDA GEMM behind all three ops (gemm_dispatch.cu chooses and launches the kernels).
#pragma once

#include <cuda_runtime.h>

#include "gemm_problem.h"

namespace linear_ext::cuda {

// Runs `problem` on `stream` (the pointers are device memory of the current device; `stream` is
// normally that device's current stream, on which any split-K workspace is also allocated).
// Accumulates in float for float/bfloat16/float16 and in double for double; float operands are
// rounded to TF32 on the tensor cores when torch.backends.cuda.matmul.allow_tf32 is True.
// Rounds C and row_sums once. Deterministic on a given GPU model: row sums and split-K partials
// are reduced in a fixed order, without atomics. No allocation outside torch's caching allocator
// and no synchronization, so it can be captured in a CUDA graph.
template <typename T>
void gemm(const GemmProblem<T>& problem, cudaStream_t stream);

}  // namespace linear_ext::cuda
