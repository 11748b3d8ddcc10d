"""torch.autocast: our layer computes and returns the autocast dtype, like nn.Linear, and gradients
reach float32 parameters in float32."""

import pytest
import torch
from torch import nn

import linear_ext
from conftest import DEVICES

# CPU autocast runs bfloat16 (and float16 where torch allows it); CUDA both.
CASES = [("cpu", torch.bfloat16), ("cpu", torch.float16), ("cuda", torch.float16), ("cuda", torch.bfloat16)]


def device_param(device, dtype):
    marks = [m for p in DEVICES if not isinstance(p, str) and p.values[0] == device for m in p.marks]
    return pytest.param(device, dtype, marks=marks, id=f"{device}-{str(dtype).split('.')[-1]}")


@pytest.mark.parametrize("device,dtype", [device_param(d, t) for d, t in CASES])
@pytest.mark.parametrize("with_bias", [True, False])
def test_autocast_matches_nn_linear(device, dtype, with_bias):
    ref = nn.Linear(40, 24, bias=with_bias, device=device)
    ours = linear_ext.Linear(40, 24, bias=with_bias, device=device)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7, 40, device=device)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()

    with torch.autocast(device_type=device, dtype=dtype):
        y_ref, y_ours = ref(x_ref), ours(x_ours)
    assert y_ours.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y_ours, y_ref, atol=5e-2, rtol=2e-2)

    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_ours.backward(grad)
    assert x_ours.grad.dtype == x_ref.grad.dtype == torch.float32
    for p_ours, p_ref in zip(ours.parameters(), ref.parameters()):
        assert p_ours.grad.dtype == p_ref.grad.dtype == torch.float32
        torch.testing.assert_close(p_ours.grad, p_ref.grad, atol=0.1, rtol=2e-2)


def test_autocast_leaves_float64_alone():
    layer = linear_ext.Linear(8, 4, dtype=torch.float64)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert layer(torch.randn(2, 8, dtype=torch.float64)).dtype == torch.float64


def test_autocast_casts_mixed_inputs_and_is_off_outside():
    w = torch.randn(4, 8)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert linear_ext.functional.linear(x, w).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="must have the same dtype"):
        linear_ext.functional.linear(x, w)


def test_autocast_under_compile():
    torch._dynamo.reset()
    model = nn.Sequential(linear_ext.Linear(16, 16), nn.ReLU(), linear_ext.Linear(16, 4))
    x = torch.randn(5, 16)

    def run(m):
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            return m(x)

    eager = run(model)
    compiled = run(torch.compile(model, fullgraph=True))
    assert compiled.dtype == eager.dtype == torch.bfloat16
    torch.testing.assert_close(compiled, eager, atol=2e-2, rtol=2e-2)


def test_linear_function_under_autocast():
    """LinearFunction replays the forward's autocast state in backward: grads arrive in float32."""
    x = torch.randn(6, 8, requires_grad=True)
    w = torch.randn(4, 8, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        y = linear_ext.LinearFunction.apply(x, w, b)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == torch.float32
    torch.testing.assert_close(w.grad, torch.ones(6, 4).t() @ x.detach(), atol=0.1, rtol=2e-2)
    torch.testing.assert_close(b.grad, torch.full((4,), 6.0))
