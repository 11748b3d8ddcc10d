// Typed dispatcher handles of the linear_ext ops (schemas in linear_ext.cpp), for C++ code that
// calls the ops through the dispatcher: autocast and autograd kernels re-enter them below their
// own dispatch key.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>
#include <tuple>

namespace linear_ext::op_handles {

inline const auto& linear_forward() {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("linear_ext::linear_forward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&)>();
  return op;
}

inline const auto& linear_backward_input() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("linear_ext::linear_backward_input", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op;
}

inline const auto& linear_backward_weight() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("linear_ext::linear_backward_weight", "")
                             .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, bool)>();
  return op;
}

}  // namespace linear_ext::op_handles
