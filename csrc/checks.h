// Argument checks shared by every device's host wrappers: each failure names the shapes,
// dtypes or devices involved. Python's fake kernels (linear_ext/ops.py) mirror these messages.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace linear_ext {

// "torch.float32", as Python prints a dtype (c10 alone would print "Float").
inline std::string dtype_name(at::ScalarType dtype) {
  return "torch." + std::string(c10::getDtypeNames(dtype).first);
}

inline void check_operand(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.dim() == 2, op, ": ", name, " must be 2-D, got shape ", t.sizes());
  const auto dtype = t.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf, op,
                   ": ", name, " has dtype ", dtype_name(dtype), "; supported: float32, float64, bfloat16, float16");
}

inline void check_same_dtype_device(const char* op, const char* name_a, const at::Tensor& a, const char* name_b,
                                    const at::Tensor& b) {
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), op, ": ", name_a, " (", dtype_name(a.scalar_type()), ") and ",
                   name_b, " (", dtype_name(b.scalar_type()), ") must have the same dtype");
  TORCH_CHECK(a.device() == b.device(), op, ": ", name_a, " is on ", a.device(), " but ", name_b, " is on ",
              b.device());
}

inline void check_forward_args(const at::Tensor& input, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "linear_forward";
  check_operand(op, "input", input);
  check_operand(op, "weight", weight);
  check_same_dtype_device(op, "input", input, "weight", weight);
  TORCH_CHECK(input.size(1) == weight.size(1), op, ": input of shape ", input.sizes(), " has ", input.size(1),
              " features but weight of shape ", weight.sizes(), " expects in_features=", weight.size(1));
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), op, ": bias must have shape [",
                weight.size(0), "] (out_features of weight ", weight.sizes(), "), got ", bias->sizes());
    check_same_dtype_device(op, "input", input, "bias", *bias);
  }
}

inline void check_backward_input_args(const at::Tensor& grad_out, const at::Tensor& weight) {
  constexpr const char* op = "linear_backward_input";
  check_operand(op, "grad_out", grad_out);
  check_operand(op, "weight", weight);
  check_same_dtype_device(op, "grad_out", grad_out, "weight", weight);
  TORCH_CHECK(grad_out.size(1) == weight.size(0), op, ": grad_out of shape ", grad_out.sizes(), " has ",
              grad_out.size(1), " features but weight of shape ", weight.sizes(), " has out_features=",
              weight.size(0));
}

inline void check_backward_weight_args(const at::Tensor& grad_out, const at::Tensor& input) {
  constexpr const char* op = "linear_backward_weight";
  check_operand(op, "grad_out", grad_out);
  check_operand(op, "input", input);
  check_same_dtype_device(op, "grad_out", grad_out, "input", input);
  TORCH_CHECK(grad_out.size(0) == input.size(0), op, ": grad_out of shape ", grad_out.sizes(), " and input of shape ",
              input.sizes(), " must have the same number of rows (batch)");
}

}  // namespace linear_ext
