// CPU registrations of the linear_ext ops: the shared op logic (linear_ops.h) over the CPU GEMM.
#include <torch/library.h>

#include "cpu/gemm.h"
#include "linear_ops.h"

namespace linear_ext {
namespace {

const auto cpu_gemm = [](const auto& problem) { cpu::gemm(problem); };

at::Tensor linear_forward_cpu(const at::Tensor& input, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias) {
  return linear_forward_impl(input, weight, bias, cpu_gemm);
}

at::Tensor linear_backward_input_cpu(const at::Tensor& grad_out, const at::Tensor& weight) {
  return linear_backward_input_impl(grad_out, weight, cpu_gemm);
}

std::tuple<at::Tensor, at::Tensor> linear_backward_weight_cpu(const at::Tensor& grad_out, const at::Tensor& input,
                                                              bool bias_grad) {
  return linear_backward_weight_impl(grad_out, input, bias_grad, cpu_gemm);
}

}  // namespace

TORCH_LIBRARY_IMPL(linear_ext, CPU, m) {
  m.impl("linear_forward", &linear_forward_cpu);
  m.impl("linear_backward_input", &linear_backward_input_cpu);
  m.impl("linear_backward_weight", &linear_backward_weight_cpu);
}

}  // namespace linear_ext
