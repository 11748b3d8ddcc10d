"""torch.library.opcheck on every op: schema, autograd registration, fake kernels, AOT dispatch."""

import pytest
import torch

from conftest import DEVICES, DTYPES

forward = torch.ops.linear_ext.linear_forward.default
backward_input = torch.ops.linear_ext.linear_backward_input.default
backward_weight = torch.ops.linear_ext.linear_backward_weight.default


def samples(device, dtype, requires_grad):
    def t(*shape):
        return torch.randn(*shape, device=device, dtype=dtype, requires_grad=requires_grad)

    yield forward, (t(5, 7), t(3, 7), t(3))
    yield forward, (t(5, 7), t(3, 7), None)
    yield forward, (t(0, 7), t(3, 7), t(3))
    yield forward, (t(7, 5).t(), t(3, 9)[:, 1:8], t(6)[::2])  # transposed, offset and strided views
    yield backward_input, (t(5, 3), t(3, 7))
    yield backward_weight, (t(5, 3), t(5, 7), True)
    yield backward_weight, (t(5, 3), t(5, 7), False)
    yield backward_weight, (t(5, 3), t(5, 0), True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(requires_grad, dtype, device):
    for op, args in samples(device, dtype, requires_grad):
        torch.library.opcheck(op, args)
