// The tensor-core GEMM (gemm_mma_kernel.cuh) for float with TF32 allowed: m16n8k8.tf32, operands
// rounded to tf32 (cvt.rna) in registers, fp32 accumulate. Chosen only when
// torch.backends.cuda.matmul.allow_tf32 is True, as torch's own float matmuls are.
#include "cuda/gemm_mma_kernel.cuh"

namespace linear_ext::cuda {

template TileShape mma_tile_shape<float>(MmaTile);
template int mma_smem_bytes<float>(MmaTile);
template void launch_gemm_mma<float>(MmaTile, MmaLayout, const GemmArgs<float>&, int, cudaStream_t);

}  // namespace linear_ext::cuda
