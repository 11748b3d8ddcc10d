"""Autograd for the linear_ext ops, written only in terms of the ops themselves.

Forward Y = X·Wᵀ + b, with X (M, K), W (N, K), b (N,). Backward, given dY (M, N):
  dX = dY·W               the "intermediate" grad, flowing on to earlier layers
  dW = dYᵀ·X, db = Σ dY   the "receiver" grads, landing in the parameters
Each is computed only when ctx.needs_input_grad asks for it.

The backward ops are differentiable too (their grads are again our three ops), so double backward
works as it does for nn.Linear. LinearFunction's formula is also registered as the forward op's
autograd, so torch.ops.linear_ext.linear_forward is differentiable by itself; functional.linear
calls the op that way, where torch.autocast's casts (dispatched before autograd) compose with it
exactly as with torch's own matmuls.

Autocast and LinearFunction: its forward runs the op under the caller's autocast state (the op
casts to the autocast dtype), so its backward re-enters that state, as torch.amp.custom_bwd does:
the backward ops then see one dtype, and autograd casts the grads back to the inputs' dtypes.
"""

import torch

from . import ops


def _setup_forward(ctx, inputs, output):
    input, weight, bias = inputs
    ctx.has_bias = bias is not None
    ctx.device_type = output.device.type
    autocast = torch.amp.is_autocast_available(ctx.device_type) and torch.is_autocast_enabled(ctx.device_type)
    ctx.autocast_dtype = torch.get_autocast_dtype(ctx.device_type) if autocast else None
    # Save only what the requested grads read: dX needs W, dW needs X.
    ctx.save_for_backward(
        input if ctx.needs_input_grad[1] else None,
        weight if ctx.needs_input_grad[0] else None,
    )


def _backward_forward(ctx, grad_out):
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
        # The bias grad alone: the weight-grad op over zero input columns does only the fused sum.
        _, grad_bias = ops.linear_backward_weight(grad_out, grad_out.new_empty((grad_out.shape[0], 0)), True)
    return grad_input, grad_weight, grad_bias if need_bias else None


class LinearFunction(torch.autograd.Function):
    """Y = input·weightᵀ + bias for a 2-D input (M, K) and weight (N, K), with our kernels both ways."""

    @staticmethod
    def forward(input, weight, bias):
        return ops.linear_forward(input, weight, bias)

    setup_context = staticmethod(_setup_forward)
    backward = staticmethod(_backward_forward)


def _setup_backward_input(ctx, inputs, output):
    grad_out, weight = inputs
    ctx.save_for_backward(grad_out, weight)


def _backward_backward_input(ctx, grad_grad_input):
    # dX = dY·W  ⇒  ∂/∂dY = G·Wᵀ (the forward op), ∂/∂W = dYᵀ·G (the weight-grad op).
    grad_out, weight = ctx.saved_tensors
    grad_grad_out = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_grad_out = ops.linear_forward(grad_grad_input, weight, None)
    if ctx.needs_input_grad[1]:
        grad_weight, _ = ops.linear_backward_weight(grad_out, grad_grad_input, False)
    return grad_grad_out, grad_weight


def _setup_backward_weight(ctx, inputs, output):
    grad_out, input, bias_grad = inputs
    ctx.bias_grad = bias_grad
    ctx.save_for_backward(grad_out, input)


def _backward_backward_weight(ctx, grad_grad_weight, grad_grad_bias):
    # dW = dYᵀ·X, db = Σ dY  ⇒  ∂/∂dY = X·Gwᵀ + Gb (the forward op), ∂/∂X = dY·Gw (the input-grad op).
    grad_out, input = ctx.saved_tensors
    grad_grad_out = grad_input = None
    if ctx.needs_input_grad[0]:
        grad_grad_out = ops.linear_forward(input, grad_grad_weight, grad_grad_bias if ctx.bias_grad else None)
    if ctx.needs_input_grad[1]:
        grad_input = ops.linear_backward_input(grad_out, grad_grad_weight)
    return grad_grad_out, grad_input, None


torch.library.register_autograd("linear_ext::linear_forward", _backward_forward, setup_context=_setup_forward)
torch.library.register_autograd(
    "linear_ext::linear_backward_input", _backward_backward_input, setup_context=_setup_backward_input
)
torch.library.register_autograd(
    "linear_ext::linear_backward_weight", _backward_backward_weight, setup_context=_setup_backward_weight
)
