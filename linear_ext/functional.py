"""linear(input, weight, bias=None): torch.nn.functional.linear's semantics on our kernels."""

import torch
from torch import Tensor

from . import ops


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = input·weightᵀ + bias for input (*, in_features), weight (out_features, in_features).

    Returns (*, out_features). The leading dimensions are flattened into one batch dimension,
    as a view whenever the input's strides allow it.
    """
    # Plain checks rather than torch._check: Dynamo cannot trace a message closure over tensors.
    for name, value in (("input", input), ("weight", weight), ("bias", bias)):
        if not isinstance(value, torch.Tensor) and not (name == "bias" and value is None):
            raise TypeError(f"linear: argument '{name}' must be a Tensor, got {type(value).__name__}")
    if input.is_nested:
        raise NotImplementedError(
            "linear: linear_ext does not support nested tensors; use torch.nn.functional.linear "
            "(linear_ext.Linear falls back to it by itself)"
        )
    if input.dim() == 0:
        raise RuntimeError("linear: input must have at least 1 dimension, got a 0-d tensor")
    if weight.dim() != 2:
        raise RuntimeError(f"linear: weight must be 2-D, got shape {list(weight.shape)}")
    if input.shape[-1] != weight.shape[1]:
        raise RuntimeError(
            f"linear: input of shape {list(input.shape)} has {input.shape[-1]} features but weight of shape "
            f"{list(weight.shape)} expects in_features={weight.shape[1]}"
        )
    batch_shape = input.shape[:-1]
    input_2d = input.unsqueeze(0) if input.dim() == 1 else input.flatten(0, -2)
    # The op itself is differentiable (its autograd is registered in C++, csrc/autograd.cpp), and
    # calling it through the dispatcher lets torch.autocast cast its inputs before autograd.
    output = ops.linear_forward(input_2d, weight, bias)
    if input.dim() == 2:
        return output
    # Not a view of the 2-D result (as torch.matmul does): an in-place op on a view output would
    # bypass hooks wrapping this layer's output (FSDP re-gathers weights through them).
    return torch.ops.aten._unsafe_view(output, (*batch_shape, weight.shape[0]))
