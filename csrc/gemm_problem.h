// How every kernel, CPU or CUDA, sees its work: one GEMM over strided matrix views.
//
// A MatrixRef is a 2-D (rows, cols) view whose element (i, j) sits at base[i*rs + j*cs].
// Transposing swaps the roles of rows and cols without touching memory, which is how the three
// layouts (X·Wᵀ, dY·W, dYᵀ·X) are read without transposed copies. Strides may be anything torch
// allows: non-contiguous, zero (expanded), with storage offsets folded into base.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

namespace linear_ext {

struct MatrixLayout {
  int64_t rows, cols;
  int64_t rs, cs;  // element strides between consecutive rows / columns

  C10_HOST_DEVICE MatrixLayout transposed() const { return {cols, rows, cs, rs}; }
};

template <typename T>
struct MatrixRef {
  const T* base;
  MatrixLayout layout;

  C10_HOST_DEVICE MatrixRef transposed() const { return {base, layout.transposed()}; }
};

// C = A·B (+ bias), optionally with the row sums of A.
template <typename T>
struct GemmProblem {
  MatrixRef<T> a;  // M×K
  MatrixRef<T> b;  // K×N
  T* c;            // M×N output, row-major with leading dimension ldc
  int64_t ldc;
  const T* bias;  // N contiguous values added to every row of C, or null
  T* row_sums;    // M values: row_sums[i] = Σ_k A(i, k), or null (the bias grad when A = dYᵀ)

  C10_HOST_DEVICE int64_t m() const { return a.layout.rows; }
  C10_HOST_DEVICE int64_t k() const { return a.layout.cols; }
  C10_HOST_DEVICE int64_t n() const { return b.layout.cols; }
};

}  // namespace linear_ext
