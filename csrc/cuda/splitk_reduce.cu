// Split-K reduction: C (M×N, ldc) = Σ_{z<splits} partial[z] (M×N, row-major) + bias (N), and
// row_sums (M) = Σ_z partial_row_sums[z] (M), in acc_t, summed in increasing z — deterministic,
// no atomics. One thread per output element (grid-stride), consecutive threads on consecutive n
// so that the partial reads and the C writes are coalesced. Memory-bound: splits·M·N reads.
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "cuda/splitk_reduce.cuh"

namespace linear_ext::cuda {
namespace {

constexpr int THREADS = 256;

template <typename T>
__global__ void __launch_bounds__(THREADS)
    splitk_reduce_kernel(const GemmProblem<T> p, const acc_t<T>* partial, const acc_t<T>* partial_row_sums,
                         int splits) {
  using acc = acc_t<T>;
  const int64_t M = p.m(), N = p.n(), mn = M * N;
  const int64_t total = mn + (p.row_sums != nullptr ? M : 0);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * THREADS;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * THREADS + threadIdx.x; idx < total; idx += stride) {
    if (idx < mn) {
      acc s = 0;
      for (int z = 0; z < splits; ++z) s += partial[z * mn + idx];
      const int64_t m = idx / N, n = idx - m * N;
      if (p.bias != nullptr) s += static_cast<acc>(p.bias[n]);
      p.c[m * p.ldc + n] = static_cast<T>(s);
    } else {
      const int64_t m = idx - mn;
      acc s = 0;
      for (int z = 0; z < splits; ++z) s += partial_row_sums[z * M + m];
      p.row_sums[m] = static_cast<T>(s);
    }
  }
}

}  // namespace

template <typename T>
void launch_splitk_reduce(const GemmProblem<T>& p, const acc_t<T>* partial, const acc_t<T>* partial_row_sums,
                          int splits, cudaStream_t stream) {
  const int64_t total = p.m() * p.n() + (p.row_sums != nullptr ? p.m() : 0);
  if (total == 0) return;
  const int64_t blocks = std::min<int64_t>((total + THREADS - 1) / THREADS, 8192);
  splitk_reduce_kernel<T><<<static_cast<unsigned>(blocks), THREADS, 0, stream>>>(p, partial, partial_row_sums, splits);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void launch_splitk_reduce<float>(const GemmProblem<float>&, const float*, const float*, int, cudaStream_t);
template void launch_splitk_reduce<double>(const GemmProblem<double>&, const double*, const double*, int,
                                           cudaStream_t);
template void launch_splitk_reduce<c10::Half>(const GemmProblem<c10::Half>&, const float*, const float*, int,
                                              cudaStream_t);
template void launch_splitk_reduce<c10::BFloat16>(const GemmProblem<c10::BFloat16>&, const float*, const float*, int,
                                                  cudaStream_t);

}  // namespace linear_ext::cuda
