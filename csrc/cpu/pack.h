// Packing: copies a block of a strided operand into the contiguous, k-major sliver layout the
// micro-kernels read (microkernel.h), converting bfloat16/float16 to float on the way. This is
// where the three GEMM layouts differ: a transposed operand just has its strides swapped
// (gemm_problem.h), and each routine has a unit-stride fast path for either orientation.
#pragma once

#include <algorithm>
#include <cstdint>

#include "gemm_problem.h"

namespace linear_ext::cpu {

// Packs rows [i0, i0+mc) × columns [p0, p0+kc) of A into MR-row slivers:
//   dst[s·MR·kc + p·MR + i] = A(i0 + s·MR + i, p0 + p), zero for rows past mc.
// If row_sums is given, row_sums[r] += Σ_p A(i0 + r, p0 + p) for r < mc, summed in p order
// (the bias grad comes from this while A = dYᵀ is packed anyway).
template <typename T, typename acc_t>
void pack_a(const MatrixRef<T>& a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, acc_t* dst,
            acc_t* row_sums) {
  const int64_t rs = a.layout.rs, cs = a.layout.cs;
  for (int64_t s0 = 0; s0 < mc; s0 += mr, dst += mr * kc) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, mc - s0));
    const T* src = a.base + (i0 + s0) * rs + p0 * cs;
    if (rows < mr) std::fill(dst, dst + mr * kc, acc_t(0));
    if (rs == 1) {  // columns are contiguous: copy MR values per k
      for (int64_t p = 0; p < kc; ++p)
        for (int i = 0; i < rows; ++i) dst[p * mr + i] = static_cast<acc_t>(src[p * cs + i]);
    } else {  // rows are contiguous (cs == 1) or arbitrary: walk each row along k
      for (int i = 0; i < rows; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * mr + i] = static_cast<acc_t>(src[i * rs + p * cs]);
    }
    if (row_sums) {
      for (int i = 0; i < rows; ++i) {
        acc_t sum = 0;
        for (int64_t p = 0; p < kc; ++p) sum += dst[p * mr + i];
        row_sums[s0 + i] += sum;
      }
    }
  }
}

// Packs rows [p0, p0+kc) × column slivers [s_begin, s_end) of the columns [j0, j0+nc) of B into
// NR-column slivers:
//   dst[s·NR·kc + p·NR + j] = B(p0 + p, j0 + s·NR + j), zero for columns past nc.
// Slivers are independent, so threads can pack disjoint ranges of one panel.
template <typename T, typename acc_t>
void pack_b(const MatrixRef<T>& b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int nr, int64_t s_begin,
            int64_t s_end, acc_t* dst) {
  const int64_t rs = b.layout.rs, cs = b.layout.cs;
  for (int64_t s = s_begin; s < s_end; ++s) {
    acc_t* out = dst + s * nr * kc;
    const int cols = static_cast<int>(std::min<int64_t>(nr, nc - s * nr));
    const T* src = b.base + p0 * rs + (j0 + s * nr) * cs;
    if (cols < nr) std::fill(out, out + nr * kc, acc_t(0));
    if (cs == 1) {  // rows are contiguous: copy NR values per k
      for (int64_t p = 0; p < kc; ++p)
        for (int j = 0; j < cols; ++j) out[p * nr + j] = static_cast<acc_t>(src[p * rs + j]);
    } else {  // columns are contiguous (rs == 1, e.g. Wᵀ) or arbitrary: walk each column along k
      for (int j = 0; j < cols; ++j)
        for (int64_t p = 0; p < kc; ++p) out[p * nr + j] = static_cast<acc_t>(src[p * rs + j * cs]);
    }
  }
}

}  // namespace linear_ext::cpu
