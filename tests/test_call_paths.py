"""The two ways linear_ext/ops.py enters the dispatcher: _C's direct entries for plain tensors, and
torch.ops for everything else (tensor subclasses, torch function modes, torch.compile's tracing)."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from linear_ext import ops

BOXED = (torch.ops.linear_ext.linear_forward.default, torch.ops.linear_ext.linear_backward_input.default,
         torch.ops.linear_ext.linear_backward_weight.default)


class _Spy:
    """Stands in for linear_ext._C, recording which direct entries are called."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        fn = getattr(self.real, name)

        def call(*args):
            self.calls.append(name)
            return fn(*args)

        return call


@pytest.fixture
def spy(monkeypatch):
    s = _Spy(ops._C)
    monkeypatch.setattr(ops, "_C", s)
    return s


def operands():
    torch.manual_seed(0)
    return torch.randn(5, 7), torch.nn.Parameter(torch.randn(3, 7)), torch.randn(3), torch.randn(5, 3)


def run_ops(x, w, b, dy):
    return [ops.linear_forward(x, w, b), ops.linear_forward(x, w, None), ops.linear_backward_input(dy, w),
            *ops.linear_backward_weight(dy, x, True)]


def test_plain_tensors_and_parameters_take_the_direct_entries(spy):
    x, w, b, dy = operands()
    direct = run_ops(x, w, b, dy)
    assert spy.calls == ["linear_forward", "linear_forward", "linear_backward_input", "linear_backward_weight"]
    forward, backward_input, backward_weight = BOXED
    boxed = [forward(x, w, b), forward(x, w, None), backward_input(dy, w), *backward_weight(dy, x, True)]
    for a, e in zip(direct, boxed, strict=True):
        assert torch.equal(a, e)


def test_direct_entries_are_differentiable(spy):
    x, w, b, _ = operands()
    x.requires_grad_()
    ops.linear_forward(x, w, b).square().sum().backward()
    x_ref, w_ref = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    torch.nn.functional.linear(x_ref, w_ref, b).square().sum().backward()
    assert spy.calls[0] == "linear_forward"
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(w.grad, w_ref.grad)


def test_direct_entries_raise_the_ops_errors():
    x, w, _, dy = operands()
    with pytest.raises(RuntimeError, match=r"linear_backward_input: grad_out of shape \[5, 3\] has 3 features"):
        ops.linear_backward_input(dy, w.t())
    with pytest.raises(TypeError, match=r"input \(torch.float64\) and weight \(torch.float32\) must have the same"):
        ops.linear_forward(x.double(), w, None)
    with pytest.raises(TypeError, match="argument 1 must be a Tensor"):
        ops._C.linear_backward_input(dy, [1.0])
    with pytest.raises(TypeError, match="takes 3 arguments, got 2"):
        ops._C.linear_forward(x, w)


class Tracked(torch.Tensor):
    seen = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        cls.seen.append(func)
        return super().__torch_function__(func, types, args, kwargs or {})


def test_tensor_subclasses_go_through_torch_ops(spy):
    x, w, b, dy = operands()
    Tracked.seen.clear()
    results = run_ops(x.as_subclass(Tracked), w, b, dy.as_subclass(Tracked))
    assert spy.calls == []
    assert set(BOXED) <= set(Tracked.seen)
    assert all(type(r) is Tracked for r in results)
    torch.testing.assert_close(results[0].as_subclass(torch.Tensor), torch.nn.functional.linear(x, w, b))


class Recorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.append(func)
        return func(*args, **(kwargs or {}))


def test_torch_function_modes_see_the_ops(spy):
    x, w, b, dy = operands()
    with Recorder() as mode:
        run_ops(x, w, b, dy)
    assert spy.calls == []
    assert set(BOXED) <= set(mode.seen)
