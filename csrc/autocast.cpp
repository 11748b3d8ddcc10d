// Autocast for the linear_ext ops, the way torch treats its own matmuls ("lower precision" ops):
// inside torch.autocast, floating inputs other than float64 are cast to the device's autocast
// dtype (casts of parameters are cached for the region), then the op runs with autocast off.
// The casts are dispatched before autograd records anything, so gradients flow back through
// them and reach float32 master weights in float32, as with nn.Linear.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "op_handles.h"

namespace linear_ext {
namespace {

template <c10::DeviceType device>
struct Autocast {
  static at::ScalarType dtype() { return at::autocast::get_autocast_dtype(device); }

  template <typename Arg>
  static auto cast(const Arg& arg) {
    return at::autocast::cached_cast(dtype(), arg, device);
  }

  static at::Tensor linear_forward(const at::Tensor& input, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(device));
    return op_handles::linear_forward().call(cast(input), cast(weight), cast(bias));
  }

  static at::Tensor linear_backward_input(const at::Tensor& grad_out, const at::Tensor& weight) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(device));
    return op_handles::linear_backward_input().call(cast(grad_out), cast(weight));
  }

  static std::tuple<at::Tensor, at::Tensor> linear_backward_weight(const at::Tensor& grad_out, const at::Tensor& input,
                                                                   bool bias_grad) {
    const c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(device));
    return op_handles::linear_backward_weight().call(cast(grad_out), cast(input), bias_grad);
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(linear_ext, AutocastCPU, m) {
  using A = Autocast<c10::DeviceType::CPU>;
  m.impl("linear_forward", &A::linear_forward);
  m.impl("linear_backward_input", &A::linear_backward_input);
  m.impl("linear_backward_weight", &A::linear_backward_weight);
}

TORCH_LIBRARY_IMPL(linear_ext, AutocastCUDA, m) {
  using A = Autocast<c10::DeviceType::CUDA>;
  m.impl("linear_forward", &A::linear_forward);
  m.impl("linear_backward_input", &A::linear_backward_input);
  m.impl("linear_backward_weight", &A::linear_backward_weight);
}

}  // namespace linear_ext
