"""linear_ext.Linear as a drop-in for nn.Linear."""

import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import linear_ext
from conftest import DEVICES


def test_is_an_nn_linear_with_the_same_init_and_repr():
    torch.manual_seed(3)
    ref = nn.Linear(20, 7)
    torch.manual_seed(3)
    ours = linear_ext.Linear(20, 7)
    assert isinstance(ours, nn.Linear)
    assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)
    assert ours.weight.shape == (7, 20)
    assert ours.extra_repr() == ref.extra_repr()
    assert repr(ours) == "Linear(in_features=20, out_features=7, bias=True)"


def test_no_bias():
    ours = linear_ext.Linear(4, 3, bias=False)
    assert ours.bias is None and list(ours.state_dict()) == ["weight"]
    x = torch.randn(2, 4)
    torch.testing.assert_close(ours(x), F.linear(x, ours.weight))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_device_and_dtype_kwargs(dtype, device):
    ours = linear_ext.Linear(6, 2, device=device, dtype=dtype)
    assert ours.weight.dtype == dtype and ours.weight.device.type == device
    x = torch.randn(3, 6, device=device, dtype=dtype)
    assert ours(x).dtype == dtype


def test_meta_init_then_reset_parameters():
    ours = linear_ext.Linear(10, 4, device="meta")
    assert ours.weight.is_meta
    assert ours(torch.randn(3, 10, device="meta")).shape == (3, 4)
    ours.to_empty(device="cpu")
    torch.manual_seed(1)
    ours.reset_parameters()
    torch.manual_seed(1)
    ref = nn.Linear(10, 4)
    assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)


def test_state_dict_round_trip_both_ways():
    ref, ours = nn.Linear(9, 5), linear_ext.Linear(9, 5)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 9)
    torch.testing.assert_close(ours(x), ref(x))
    back = nn.Linear(9, 5)
    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    back.load_state_dict(torch.load(buffer))
    torch.testing.assert_close(back(x), ours(x))


def test_wrong_state_dict_shapes_error_like_nn_linear():
    ours = linear_ext.Linear(9, 5)
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        ours.load_state_dict(nn.Linear(9, 6).state_dict())


@pytest.mark.parametrize("device", DEVICES)
def test_nd_input_and_grads_in_parameter_layout(device):
    ours = linear_ext.Linear(8, 3, device=device)
    x = torch.randn(2, 5, 8, device=device, requires_grad=True)
    y = ours(x)
    assert y.shape == (2, 5, 3)
    y.sum().backward()
    for p in ours.parameters():
        assert p.grad.shape == p.shape and p.grad.is_contiguous() and p.grad.stride() == p.stride()
    torch.testing.assert_close(y, F.linear(x, ours.weight, ours.bias))


def test_unsupported_device_falls_back_with_one_warning(monkeypatch):
    """Simulated by taking 'cpu' off the supported list: the layer then defers to F.linear."""
    monkeypatch.setattr(linear_ext.modules, "_KERNEL_DEVICE_TYPES", frozenset({"meta"}))
    monkeypatch.setattr(linear_ext.modules, "_warned_inputs", set())
    ours = linear_ext.Linear(4, 2)
    x = torch.randn(3, 4)
    with pytest.warns(UserWarning, match="no kernels for device type 'cpu'"):
        y = ours(x)
    torch.testing.assert_close(y, F.linear(x, ours.weight, ours.bias))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(x)


def test_nested_input_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(linear_ext.modules, "_warned_inputs", set())
    ours = linear_ext.Linear(3, 5)
    x = torch.nested.nested_tensor([torch.randn(2, 3), torch.randn(4, 3)], layout=torch.jagged)
    with pytest.warns(UserWarning, match="no kernels for nested tensors"):
        y = ours(x)
    ref = F.linear(x, ours.weight, ours.bias)
    for a, b in zip(y.unbind(), ref.unbind()):
        torch.testing.assert_close(a, b)
