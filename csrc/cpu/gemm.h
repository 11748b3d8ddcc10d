// The CPU GEMM behind all three ops (Goto/BLIS blocking, gemm.cpp).
#pragma once

#include "gemm_problem.h"

namespace linear_ext::cpu {

// Accumulates in float for float/bfloat16/float16 and in double for double; C and row_sums are
// rounded to T once. Deterministic: the same bits for any thread count.
template <typename T>
void gemm(const GemmProblem<T>& problem);

}  // namespace linear_ext::cpu
