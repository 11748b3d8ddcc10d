"""Gradients: gradcheck/gradgradcheck in float64, only the requested grads computed, N-D inputs."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import linear_ext
from conftest import DEVICES
from linear_ext import LinearFunction, functional


def f64(*shape, device, requires_grad=True):
    return torch.randn(*shape, dtype=torch.float64, device=device, requires_grad=requires_grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("input_shape", [(5,), (4, 5), (2, 3, 5), (2, 1, 3, 5)])
def test_gradcheck_and_gradgradcheck(input_shape, with_bias, device):
    x, w = f64(*input_shape, device=device), f64(3, 5, device=device)
    b = f64(3, device=device) if with_bias else None
    inputs = (x, w, b) if with_bias else (x, w)
    assert torch.autograd.gradcheck(functional.linear, inputs)
    assert torch.autograd.gradgradcheck(functional.linear, inputs)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_on_views(device):
    """Transposed and offset operands differentiate correctly too."""
    x = f64(7, 4, device=device, requires_grad=False).t().requires_grad_()  # (4, 7), column-major
    w = f64(3, 9, device=device, requires_grad=False)[:, 1:8].requires_grad_()  # offset, strided rows
    b = f64(6, device=device, requires_grad=False)[::2].requires_grad_()
    assert torch.autograd.gradcheck(LinearFunction.apply, (x, w, b))
    assert torch.autograd.gradgradcheck(LinearFunction.apply, (x, w, b))


@pytest.mark.parametrize("device", DEVICES)
def test_direct_op_calls_are_differentiable(device):
    x, w, b, dy = f64(4, 5, device=device), f64(3, 5, device=device), f64(3, device=device), f64(4, 3, device=device)
    assert torch.autograd.gradcheck(torch.ops.linear_ext.linear_forward, (x, w, b))
    assert torch.autograd.gradcheck(torch.ops.linear_ext.linear_backward_input, (dy, w))
    assert torch.autograd.gradcheck(lambda dy, x: torch.ops.linear_ext.linear_backward_weight(dy, x, True), (dy, x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grads_match_nn_linear(dtype, device):
    """The full layer step on a 3-D input matches torch's, in float32 and bfloat16."""
    x = torch.randn(4, 33, 70, dtype=dtype, device=device)
    ref = torch.nn.Linear(70, 45, dtype=dtype, device=device)
    ours = linear_ext.Linear(70, 45, dtype=dtype, device=device)
    ours.load_state_dict(ref.state_dict())
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn(4, 33, 45, dtype=dtype, device=device)
    ref(x_ref).backward(grad)
    ours(x_ours).backward(grad)
    tol = dict(atol=2e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=0.2, rtol=2e-2)
    for a, b in [(x_ours.grad, x_ref.grad), (ours.weight.grad, ref.weight.grad), (ours.bias.grad, ref.bias.grad)]:
        torch.testing.assert_close(a, b, **tol)


class OpRecorder(TorchDispatchMode):
    """Records which linear_ext ops run."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "linear_ext":
            self.calls.append((func._opname, args[2] if func._opname == "linear_backward_weight" else None))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "x_grad,w_grad,b_grad,expected",
    [
        (True, True, True, [("linear_backward_input", None), ("linear_backward_weight", True)]),
        (True, False, False, [("linear_backward_input", None)]),
        (False, True, False, [("linear_backward_weight", False)]),
        (False, True, True, [("linear_backward_weight", True)]),
        (False, False, True, [("linear_backward_weight", True)]),  # bias grad alone: the fused sum over 0 columns
    ],
)
def test_backward_computes_only_requested_grads(x_grad, w_grad, b_grad, expected):
    x = torch.randn(6, 5, requires_grad=x_grad)
    w = torch.randn(3, 5, requires_grad=w_grad)
    b = torch.randn(3, requires_grad=b_grad)
    y = functional.linear(x, w, b)
    with OpRecorder() as recorder:
        y.sum().backward()
    assert sorted(recorder.calls) == sorted(expected)
    dy = torch.ones(6, 3)
    if b_grad:
        torch.testing.assert_close(b.grad, dy.sum(0))
    if w_grad:
        torch.testing.assert_close(w.grad, dy.t() @ x.detach())
    if x_grad:
        torch.testing.assert_close(x.grad, dy @ w.detach())


@pytest.mark.parametrize("linear", [LinearFunction.apply, functional.linear], ids=["LinearFunction", "op"])
@pytest.mark.parametrize("x_grad,w_grad", [(True, False), (False, True), (True, True)])
def test_only_needed_tensors_are_saved(linear, x_grad, w_grad):
    """Saving X only for dW and W only for dX keeps activations alive only when needed."""
    x, w = torch.randn(6, 5, requires_grad=x_grad), torch.randn(3, 5, requires_grad=w_grad)
    saved = []

    def pack(t):
        saved.append(t.data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        linear(x, w, None)
    expected = ([w.data_ptr()] if x_grad else []) + ([x.data_ptr()] if w_grad else [])
    assert sorted(saved) == sorted(expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(7,), (0, 7), (2, 0, 7), (3, 4, 7), (2, 3, 4, 7)])
def test_functional_nd_matches_f_linear(shape, device):
    x = torch.randn(*shape, device=device)
    w, b = torch.randn(5, 7, device=device), torch.randn(5, device=device)
    out = functional.linear(x, w, b)
    assert out.shape == F.linear(x, w, b).shape
    torch.testing.assert_close(out, F.linear(x, w, b), atol=1e-5, rtol=1e-5)


def test_functional_flattens_without_copy_when_possible():
    x = torch.randn(2, 3, 7)
    captured = {}

    class Capture(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.linear_ext.linear_forward.default:
                captured["input"] = args[0]
            return func(*args, **(kwargs or {}))

    with Capture():
        functional.linear(x, torch.randn(5, 7))
    assert captured["input"].data_ptr() == x.data_ptr() and captured["input"].shape == (6, 7)


def test_in_features_zero_gives_bias():
    x, w, b = torch.randn(4, 0, requires_grad=True), torch.randn(3, 0, requires_grad=True), torch.randn(3, requires_grad=True)
    y = functional.linear(x, w, b)
    torch.testing.assert_close(y, b.detach().expand(4, 3))
    y.sum().backward()
    assert x.grad.shape == (4, 0) and w.grad.shape == (3, 0)
    torch.testing.assert_close(b.grad, torch.full((3,), 4.0))


@pytest.mark.parametrize("shape", [(6, 7), (2, 3, 7)])
def test_output_is_not_a_view(shape):
    """Like F.linear/matmul, the output owns its result: in-place ops on it keep autograd hooks
    registered on the layer output (FSDP relies on them)."""
    out = functional.linear(torch.randn(*shape), torch.randn(5, 7), torch.randn(5))
    assert not out._is_view()


# The autograd kernels skip torch::autograd::Function when no graph is to be recorded; these check
# that the decision follows every operand.
OP_CALLS = {
    "forward": (lambda x, w, b: linear_ext.ops.linear_forward(x, w, b), [(4, 5), (3, 5), (3,)]),
    "backward_input": (lambda dy, w: linear_ext.ops.linear_backward_input(dy, w), [(4, 3), (3, 5)]),
    "backward_weight": (lambda dy, x: linear_ext.ops.linear_backward_weight(dy, x, True)[0], [(4, 3), (4, 5)]),
}


@pytest.mark.parametrize("op", OP_CALLS)
def test_any_operand_requiring_grad_records_a_graph(op):
    call, shapes = OP_CALLS[op]
    for i in range(len(shapes)):
        args = [torch.randn(*s, dtype=torch.float64, requires_grad=j == i) for j, s in enumerate(shapes)]
        out = call(*args)
        assert out.requires_grad and out.grad_fn is not None, f"operand {i}"
        out.sum().backward()
        assert args[i].grad is not None and args[i].grad.shape == args[i].shape
        with torch.no_grad():
            assert not call(*args).requires_grad
    assert not call(*[torch.randn(*s) for s in shapes]).requires_grad


@pytest.mark.parametrize("op", OP_CALLS)
def test_forward_mode_ad_is_refused_not_dropped(op):
    """A tangent on any operand raises (the C++ Functions have no jvp) rather than being lost."""
    import torch.autograd.forward_ad as fwAD

    call, shapes = OP_CALLS[op]
    for i in range(len(shapes)):
        with fwAD.dual_level():
            args = [torch.randn(*s) for s in shapes]
            args[i] = fwAD.make_dual(args[i], torch.randn_like(args[i]))
            with pytest.raises(RuntimeError, match="jvp is not implemented"):
                call(*args)
