// CUDA registrations of the linear_ext ops: the shared op logic (linear_ops.h) over the CUDA GEMM,
// launched on the current stream of the operands' device.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "cuda/gemm.cuh"
#include "linear_ops.h"

namespace linear_ext {
namespace {

// The GEMM on the current stream of `device`; the caller holds a guard for that device.
auto cuda_gemm(const at::Device& device) {
  return [stream = c10::cuda::getCurrentCUDAStream(device.index()).stream()](const auto& problem) {
    cuda::gemm(problem, stream);
  };
}

at::Tensor linear_forward_cuda(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias) {
  const c10::cuda::CUDAGuard guard(input.device());
  return linear_forward_impl(input, weight, bias, cuda_gemm(input.device()));
}

at::Tensor linear_backward_input_cuda(const at::Tensor& grad_out, const at::Tensor& weight) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  return linear_backward_input_impl(grad_out, weight, cuda_gemm(grad_out.device()));
}

std::tuple<at::Tensor, at::Tensor> linear_backward_weight_cuda(const at::Tensor& grad_out, const at::Tensor& input,
                                                               bool bias_grad) {
  const c10::cuda::CUDAGuard guard(grad_out.device());
  return linear_backward_weight_impl(grad_out, input, bias_grad, cuda_gemm(grad_out.device()));
}

}  // namespace

TORCH_LIBRARY_IMPL(linear_ext, CUDA, m) {
  m.impl("linear_forward", &linear_forward_cuda);
  m.impl("linear_backward_input", &linear_backward_input_cuda);
  m.impl("linear_backward_weight", &linear_backward_weight_cuda);
}

}  // namespace linear_ext
