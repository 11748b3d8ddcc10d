// The three ops as one GEMM each, shared by every device: check the arguments, allocate the
// outputs, describe the GEMM over strided views (no transposed copies) and hand it to the device's
// GEMM, a callable taking a GemmProblem<scalar_t>.
//
//   forward          Y  (M,N) = X (M,K) · Wᵀ        A = X,   B = Wᵀ (W's strides swapped), + bias
//   backward_input   dX (M,K) = dY (M,N) · W (N,K)  A = dY,  B = W
//   backward_weight  dW (N,K) = dYᵀ · X (M,K)       A = dYᵀ, B = X,  db = row sums of A = Σ_m dY
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <optional>
#include <tuple>

#include "checks.h"
#include "gemm_problem.h"

namespace linear_ext {

template <typename T>
MatrixRef<T> matrix_ref(const at::Tensor& t) {
  return {t.const_data_ptr<T>(), {t.size(0), t.size(1), t.stride(0), t.stride(1)}};
}

template <typename RunGemm>
at::Tensor linear_forward_impl(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const RunGemm& run_gemm) {
  check_forward_args(input, weight, bias);
  auto out = at::empty({input.size(0), weight.size(0)}, input.options());
  // Kernels read the bias as N contiguous values; a strided bias is compacted (N elements).
  const auto bias_contig = bias.has_value() ? std::optional<at::Tensor>(bias->contiguous()) : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "linear_forward", [&] {
    run_gemm(GemmProblem<scalar_t>{matrix_ref<scalar_t>(input), matrix_ref<scalar_t>(weight).transposed(),
                                   out.mutable_data_ptr<scalar_t>(), out.size(1),
                                   bias_contig ? bias_contig->const_data_ptr<scalar_t>() : nullptr, nullptr});
  });
  return out;
}

template <typename RunGemm>
at::Tensor linear_backward_input_impl(const at::Tensor& grad_out, const at::Tensor& weight,
                                      const RunGemm& run_gemm) {
  check_backward_input_args(grad_out, weight);
  auto grad_input = at::empty({grad_out.size(0), weight.size(1)}, grad_out.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(), "linear_backward_input", [&] {
    run_gemm(GemmProblem<scalar_t>{matrix_ref<scalar_t>(grad_out), matrix_ref<scalar_t>(weight),
                                   grad_input.mutable_data_ptr<scalar_t>(), grad_input.size(1), nullptr, nullptr});
  });
  return grad_input;
}

template <typename RunGemm>
std::tuple<at::Tensor, at::Tensor> linear_backward_weight_impl(const at::Tensor& grad_out, const at::Tensor& input,
                                                               bool bias_grad, const RunGemm& run_gemm) {
  check_backward_weight_args(grad_out, input);
  auto grad_weight = at::empty({grad_out.size(1), input.size(1)}, grad_out.options());
  auto grad_bias = at::empty({bias_grad ? grad_out.size(1) : 0}, grad_out.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(), "linear_backward_weight", [&] {
    run_gemm(GemmProblem<scalar_t>{matrix_ref<scalar_t>(grad_out).transposed(), matrix_ref<scalar_t>(input),
                                   grad_weight.mutable_data_ptr<scalar_t>(), grad_weight.size(1), nullptr,
                                   bias_grad ? grad_bias.mutable_data_ptr<scalar_t>() : nullptr});
  });
  return {grad_weight, grad_bias};
}

}  // namespace linear_ext
