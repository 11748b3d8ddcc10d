"""LinearFunction: Y = X·Wᵀ + b as a Python torch.autograd.Function over the linear_ext ops.

The ops are differentiable by themselves (their autograd is registered in C++, csrc/autograd.cpp,
where a layer call costs no Python autograd node), and functional.linear and Linear use them that
way. LinearFunction is for code built around torch.autograd.Function. It applies the same
formulas, given dY (M, N) for X (M, K), W (N, K), b (N,):
  dX = dY·W               the "intermediate" grad, flowing on to earlier layers
  dW = dYᵀ·X, db = Σ dY   the "receiver" grads, landing in the parameters
each computed only when ctx.needs_input_grad asks for it; the backward ops are differentiable in
turn, so double backward works.

Autocast: its forward runs the op under the caller's autocast state (the op casts to the autocast
dtype), so its backward re-enters that state, as torch.amp.custom_bwd does: the backward ops then
see one dtype, and autograd casts the grads back to the inputs' dtypes.
"""

import torch

from . import ops


class LinearFunction(torch.autograd.Function):
    """Y = input·weightᵀ + bias for a 2-D input (M, K) and weight (N, K), with our kernels both ways."""

    @staticmethod
    def forward(input, weight, bias):
        return ops.linear_forward(input, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias = inputs
        ctx.has_bias = bias is not None
        ctx.device_type = output.device.type
        autocast = torch.amp.is_autocast_available(ctx.device_type) and torch.is_autocast_enabled(ctx.device_type)
        ctx.autocast_dtype = torch.get_autocast_dtype(ctx.device_type) if autocast else None
        ctx.save_for_backward(
            input if ctx.needs_input_grad[1] else None,
            weight if ctx.needs_input_grad[0] else None,
        )

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.autocast_dtype is None:
            return _linear_grads(ctx, grad_out)
        with torch.autocast(ctx.device_type, dtype=ctx.autocast_dtype):
            return _linear_grads(ctx, grad_out)


def _linear_grads(ctx, grad_out):
    input, weight = ctx.saved_tensors
    need_input, need_weight, need_bias = ctx.needs_input_grad
    need_bias = need_bias and ctx.has_bias
    grad_input = grad_weight = grad_bias = None
    if need_input:
        grad_input = ops.linear_backward_input(grad_out, weight)
    if need_weight:
        grad_weight, grad_bias = ops.linear_backward_weight(grad_out, input, need_bias)
    elif need_bias:
        _, grad_bias = ops.linear_backward_weight(grad_out, grad_out.new_empty((grad_out.shape[0], 0)), True)
    return grad_input, grad_weight, grad_bias if need_bias else None
