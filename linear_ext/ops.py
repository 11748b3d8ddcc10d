"""Typed wrappers over the torch.ops.linear_ext ops, and their fake (meta) kernels.

The wrappers call the ops through the dispatcher either way. Plain tensors (exact types Tensor and
Parameter, no torch function mode, not under torch.compile) take _C's direct entries, which skip
torch.ops' boxed call (a few µs per call); everything else (tensor subclasses such as FakeTensor,
__torch_function__ overrides, Dynamo's tracing) goes through torch.ops, which handles them.

The fake kernels give torch.compile and meta tensors the output shapes without running a kernel;
their checks mirror csrc/checks.h so that tracing fails with the same messages as eager mode.
"""

import torch
from torch import Tensor

from ._library import _C  # loading it registers the ops

_SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_torch_function_mode_enabled = torch._C._is_torch_function_mode_enabled
_compiling = torch.compiler.is_compiling


def _plain(a, b) -> bool:
    """Whether a and b may take the direct entry (see the module docstring)."""
    return type(a) in _PLAIN and type(b) in _PLAIN and not _torch_function_mode_enabled() and not _compiling()


def linear_forward(input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(M, N) = input (M, K) · weight (N, K)ᵀ + bias (N,), the bias added in the GEMM's epilogue."""
    if _plain(input, weight) and (bias is None or type(bias) in _PLAIN):
        return _C.linear_forward(input, weight, bias)
    return torch.ops.linear_ext.linear_forward.default(input, weight, bias)


def linear_backward_input(grad_out: Tensor, weight: Tensor) -> Tensor:
    """(M, K) = grad_out (M, N) · weight (N, K)."""
    if _plain(grad_out, weight):
        return _C.linear_backward_input(grad_out, weight)
    return torch.ops.linear_ext.linear_backward_input.default(grad_out, weight)


def linear_backward_weight(grad_out: Tensor, input: Tensor, bias_grad: bool) -> tuple[Tensor, Tensor]:
    """(grad_out (M, N)ᵀ · input (M, K), Σ_m grad_out) = ((N, K), (N,)); the bias grad is shape (0,)
    unless bias_grad, and is summed while the GEMM reads grad_out."""
    if _plain(grad_out, input) and type(bias_grad) is bool:
        return _C.linear_backward_weight(grad_out, input, bias_grad)
    return torch.ops.linear_ext.linear_backward_weight.default(grad_out, input, bias_grad)


def _check_operand(op, name, t):
    torch._check(t.dim() == 2, lambda: f"{op}: {name} must be 2-D, got shape {list(t.shape)}")
    torch._check_type(
        t.dtype in _SUPPORTED_DTYPES,
        lambda: f"{op}: {name} has dtype {t.dtype}; supported: float32, float64, bfloat16, float16",
    )


def _check_same_dtype_device(op, name_a, a, name_b, b):
    torch._check_type(
        a.dtype == b.dtype, lambda: f"{op}: {name_a} ({a.dtype}) and {name_b} ({b.dtype}) must have the same dtype"
    )
    torch._check(a.device == b.device, lambda: f"{op}: {name_a} is on {a.device} but {name_b} is on {b.device}")


@torch.library.register_fake("linear_ext::linear_forward")
def _linear_forward_fake(input, weight, bias):
    op = "linear_forward"
    _check_operand(op, "input", input)
    _check_operand(op, "weight", weight)
    _check_same_dtype_device(op, "input", input, "weight", weight)
    torch._check(
        input.shape[1] == weight.shape[1],
        lambda: f"{op}: input of shape {list(input.shape)} has {input.shape[1]} features but weight of shape "
        f"{list(weight.shape)} expects in_features={weight.shape[1]}",
    )
    if bias is not None:
        torch._check(
            bias.dim() == 1 and bias.shape[0] == weight.shape[0],
            lambda: f"{op}: bias must have shape [{weight.shape[0]}] (out_features of weight {list(weight.shape)}), "
            f"got {list(bias.shape)}",
        )
        _check_same_dtype_device(op, "input", input, "bias", bias)
    return input.new_empty((input.shape[0], weight.shape[0]))


@torch.library.register_fake("linear_ext::linear_backward_input")
def _linear_backward_input_fake(grad_out, weight):
    op = "linear_backward_input"
    _check_operand(op, "grad_out", grad_out)
    _check_operand(op, "weight", weight)
    _check_same_dtype_device(op, "grad_out", grad_out, "weight", weight)
    torch._check(
        grad_out.shape[1] == weight.shape[0],
        lambda: f"{op}: grad_out of shape {list(grad_out.shape)} has {grad_out.shape[1]} features but weight of "
        f"shape {list(weight.shape)} has out_features={weight.shape[0]}",
    )
    return grad_out.new_empty((grad_out.shape[0], weight.shape[1]))


@torch.library.register_fake("linear_ext::linear_backward_weight")
def _linear_backward_weight_fake(grad_out, input, bias_grad):
    op = "linear_backward_weight"
    _check_operand(op, "grad_out", grad_out)
    _check_operand(op, "input", input)
    _check_same_dtype_device(op, "grad_out", grad_out, "input", input)
    torch._check(
        grad_out.shape[0] == input.shape[0],
        lambda: f"{op}: grad_out of shape {list(grad_out.shape)} and input of shape {list(input.shape)} must have "
        "the same number of rows (batch)",
    )
    grad_weight = grad_out.new_empty((grad_out.shape[1], input.shape[1]))
    grad_bias = grad_out.new_empty((grad_out.shape[1] if bias_grad else 0,))
    return grad_weight, grad_bias
