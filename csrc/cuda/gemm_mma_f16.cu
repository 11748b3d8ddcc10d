// The tensor-core GEMM (gemm_mma_kernel.cuh) for float16 and bfloat16: m16n8k16, fp32 accumulate.
#include "cuda/gemm_mma_kernel.cuh"

namespace linear_ext::cuda {

bool mma_kernels_compiled() {
  static std::atomic<uint64_t> known{0}, compiled{0};
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = device < 64 ? uint64_t{1} << device : 0;
  if (bit != 0 && (known.load(std::memory_order_acquire) & bit)) return compiled.load(std::memory_order_relaxed) & bit;
  // ptxVersion is the virtual architecture the loaded code was compiled from (a build for 7.5+PTX
  // JIT-compiled for an sm_90 GPU reports 75, and its MMA kernels are empty).
  cudaFuncAttributes attr{};
  C10_CUDA_CHECK(cudaFuncGetAttributes(
      &attr, mma_detail::gemm_mma_kernel<c10::Half, mma_detail::MmaConfigFor<c10::Half, MmaTile::kLarge>, true, true>));
  const bool ok = attr.ptxVersion >= 80;
  if (ok) compiled.fetch_or(bit, std::memory_order_relaxed);
  known.fetch_or(bit, std::memory_order_release);
  return ok;
}

#define LINEAR_EXT_INSTANTIATE_MMA(T)                      \
  template TileShape mma_tile_shape<T>(MmaTile);           \
  template int mma_smem_bytes<T>(MmaTile);                 \
  template void launch_gemm_mma<T>(MmaTile, MmaLayout, const GemmArgs<T>&, int, cudaStream_t);
LINEAR_EXT_INSTANTIATE_MMA(c10::Half)
LINEAR_EXT_INSTANTIATE_MMA(c10::BFloat16)
#undef LINEAR_EXT_INSTANTIATE_MMA

}  // namespace linear_ext::cuda
