"""Linear: a drop-in nn.Linear whose forward and backward run on linear_ext's kernels."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import functional
from ._library import WITH_CUDA

# Device types with linear_ext kernels; "meta" runs the fake kernels (shapes only).
_KERNEL_DEVICE_TYPES = frozenset({"cpu", "meta"} | ({"cuda"} if WITH_CUDA else set()))
_warned_inputs: set[str] = set()


class Linear(nn.Linear):
    """Same parameters (weight (out_features, in_features), bias), initialisation, state_dict and repr
    as nn.Linear, and an instance of it. Where linear_ext has no kernels (another device type, nested
    tensors) it falls back to torch.nn.functional.linear, warning once per kind of input."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if isinstance(input, torch.Tensor):  # anything else: functional.linear raises a TypeError
            unsupported = "nested tensors" if input.is_nested else None
            if input.device.type not in _KERNEL_DEVICE_TYPES:
                unsupported = f"device type '{input.device.type}'"
            if unsupported:
                if unsupported not in _warned_inputs:
                    _warned_inputs.add(unsupported)
                    warnings.warn(
                        f"linear_ext has no kernels for {unsupported}; Linear falls back to "
                        "torch.nn.functional.linear there",
                        stacklevel=2,
                    )
                return F.linear(input, self.weight, self.bias)
        return functional.linear(input, self.weight, self.bias)
