// Autograd for the linear_ext ops, registered for the devices that have kernels (CPU, CUDA, meta). The formulas,
// for Y = X·Wᵀ + b with X (M,K), W (N,K), b (N,) and dY (M,N):
//   dX = dY·W               (linear_backward_input)
//   dW = dYᵀ·X, db = Σ dY   (linear_backward_weight, the bias grad summed in the same pass)
// Each grad is computed only when its input needs it, and only the operands those grads read are
// saved. The backward ops are differentiable in turn (their grads are again these three ops), so
// double backward works as for nn.Linear.
//
// Written in C++ rather than with torch.library.register_autograd: a Python autograd node costs
// tens of microseconds per layer call, as much as the GEMM of a small layer. torch.compile
// traces through these kernels into the ops and their fake kernels, like any C++ autograd op.
#include <ATen/ATen.h>
#include <ATen/FuncTorchTLS.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <initializer_list>
#include <optional>
#include <tuple>

#include "op_handles.h"

namespace linear_ext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The bias grad alone: the row sums of dY, from a weight-grad GEMM over zero input columns.
at::Tensor bias_grad_only(const at::Tensor& grad_out) {
  return std::get<1>(op_handles::linear_backward_weight().call(grad_out, grad_out.new_empty({grad_out.size(0), 0}), true));
}

// Calls an op below the autograd (and ADInplaceOrView) keys, i.e. its device kernel.
template <typename Op, typename... Args>
auto call_below_autograd(const Op& op, const Args&... args) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  return op.call(args...);
}

struct LinearForward : public torch::autograd::Function<LinearForward> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias) {
    const bool has_bias = bias.has_value() && bias->defined();
    ctx->saved_data["has_bias"] = has_bias;
    // dX reads W; dW reads X. (requires_grad, not needs_input_grad: forward also runs without a
    // graph, e.g. inside another backward, where there are no edges to ask about.)
    ctx->save_for_backward({weight.requires_grad() ? input : at::Tensor(), input.requires_grad() ? weight : at::Tensor()});
    return call_below_autograd(op_handles::linear_forward(), input, weight, bias);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& grad_out = grads[0];
    // Edges: 0 input, 1 weight, 2 bias (only when a bias was given).
    const bool need_bias = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    at::Tensor grad_input, grad_weight, grad_bias;
    if (ctx->needs_input_grad(0)) grad_input = op_handles::linear_backward_input().call(grad_out, saved[1]);
    if (ctx->needs_input_grad(1)) {
      std::tie(grad_weight, grad_bias) = op_handles::linear_backward_weight().call(grad_out, saved[0], need_bias);
    } else if (need_bias) {
      grad_bias = bias_grad_only(grad_out);
    }
    return {grad_input, grad_weight, need_bias ? grad_bias : at::Tensor()};
  }
};

// dX = dY·W: a bilinear map of (dY, W), so its grads are the other two ops.
struct LinearBackwardInput : public torch::autograd::Function<LinearBackwardInput> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_out, const at::Tensor& weight) {
    ctx->save_for_backward({weight.requires_grad() ? grad_out : at::Tensor(), grad_out.requires_grad() ? weight : at::Tensor()});
    return call_below_autograd(op_handles::linear_backward_input(), grad_out, weight);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& grad_grad_input = grads[0];
    at::Tensor grad_grad_out, grad_weight;
    if (ctx->needs_input_grad(0)) grad_grad_out = op_handles::linear_forward().call(grad_grad_input, saved[1], std::nullopt);
    if (ctx->needs_input_grad(1))
      grad_weight = std::get<0>(op_handles::linear_backward_weight().call(saved[0], grad_grad_input, false));
    return {grad_grad_out, grad_weight};
  }
};

// (dW, db) = (dYᵀ·X, Σ dY): linear in dY and in X.
struct LinearBackwardWeight : public torch::autograd::Function<LinearBackwardWeight> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& grad_out, const at::Tensor& input,
                               bool bias_grad) {
    ctx->saved_data["bias_grad"] = bias_grad;
    ctx->save_for_backward({input.requires_grad() ? grad_out : at::Tensor(), grad_out.requires_grad() ? input : at::Tensor()});
    const auto [grad_weight, grad_bias] =
        call_below_autograd(op_handles::linear_backward_weight(), grad_out, input, bias_grad);
    return {grad_weight, grad_bias};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& grad_grad_weight = grads[0];
    const std::optional<at::Tensor> grad_grad_bias =
        ctx->saved_data["bias_grad"].toBool() ? std::optional<at::Tensor>(grads[1]) : std::nullopt;
    at::Tensor grad_grad_out, grad_input;
    if (ctx->needs_input_grad(0))
      grad_grad_out = op_handles::linear_forward().call(saved[1], grad_grad_weight, grad_grad_bias);
    if (ctx->needs_input_grad(1)) grad_input = op_handles::linear_backward_input().call(saved[0], grad_grad_weight);
    return {grad_grad_out, grad_input, at::Tensor()};
  }
};

// Whether a call must go through Function::apply: it records a graph node (grad mode on and an
// input that requires grad), or must meet apply's errors for forward-mode AD and functorch
// transforms, which C++ Functions do not support. Otherwise the autograd kernels redispatch straight
// below autograd, as torch's generated kernels do: apply would still build a node and its context
// for nothing, ~1-2 µs per call (every backward op called inside a backward pass, and every op
// under no_grad), a tenth of a small layer's GEMM.
bool needs_function(std::initializer_list<const at::Tensor*> inputs) {
  if (at::functorch::functorchTLSAccessor()) return true;
  const bool grad_mode = at::GradMode::is_enabled();
  for (const at::Tensor* t : inputs)
    if (t->defined() && ((grad_mode && t->requires_grad()) || t->_fw_grad(/*level=*/0).defined())) return true;
  return false;
}

at::Tensor linear_forward_autograd(const at::Tensor& input, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias) {
  const at::Tensor no_bias;
  if (needs_function({&input, &weight, bias ? &*bias : &no_bias})) return LinearForward::apply(input, weight, bias);
  return call_below_autograd(op_handles::linear_forward(), input, weight, bias);
}

at::Tensor linear_backward_input_autograd(const at::Tensor& grad_out, const at::Tensor& weight) {
  if (needs_function({&grad_out, &weight})) return LinearBackwardInput::apply(grad_out, weight);
  return call_below_autograd(op_handles::linear_backward_input(), grad_out, weight);
}

std::tuple<at::Tensor, at::Tensor> linear_backward_weight_autograd(const at::Tensor& grad_out, const at::Tensor& input,
                                                                   bool bias_grad) {
  if (needs_function({&grad_out, &input})) {
    const variable_list out = LinearBackwardWeight::apply(grad_out, input, bias_grad);
    return {out[0], out[1]};
  }
  return call_below_autograd(op_handles::linear_backward_weight(), grad_out, input, bias_grad);
}

void register_autograd(torch::Library& m) {
  m.impl("linear_forward", &linear_forward_autograd);
  m.impl("linear_backward_input", &linear_backward_input_autograd);
  m.impl("linear_backward_weight", &linear_backward_weight_autograd);
}

}  // namespace

// Per device rather than for the Autograd alias, which also covers nested and sparse tensors: those
// have no kernels here, and should meet the dispatcher's "could not run" error, not this code.
TORCH_LIBRARY_IMPL(linear_ext, AutogradCPU, m) { register_autograd(m); }
TORCH_LIBRARY_IMPL(linear_ext, AutogradCUDA, m) { register_autograd(m); }
TORCH_LIBRARY_IMPL(linear_ext, AutogradMeta, m) { register_autograd(m); }

}  // namespace linear_ext
