"""Linear: a drop-in nn.Linear whose forward and backward run on linear_ext's kernels."""

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import functional
from ._library import WITH_CUDA

# Device types with linear_ext kernels; "meta" runs the fake kernels (shapes only).
_KERNEL_DEVICE_TYPES = frozenset({"cpu", "meta"} | ({"cuda"} if WITH_CUDA else set()))
_warned_device_types: set[str] = set()


class Linear(nn.Linear):
    """Same parameters (weight (out_features, in_features), bias), initialisation, state_dict and repr
    as nn.Linear, and an instance of it. On a device without linear_ext kernels it falls back to
    torch.nn.functional.linear, warning once per device type."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        device_type = input.device.type
        if device_type in _KERNEL_DEVICE_TYPES:
            return functional.linear(input, self.weight, self.bias)
        if device_type not in _warned_device_types:
            _warned_device_types.add(device_type)
            warnings.warn(
                f"linear_ext has no kernels for device type '{device_type}'; Linear falls back to "
                "torch.nn.functional.linear there",
                stacklevel=2,
            )
        return F.linear(input, self.weight, self.bias)
