"""torch.compile(fullgraph=True) traces models built on linear_ext without graph breaks."""

import pytest
import torch
from torch import nn

import linear_ext
from conftest import DEVICES


def mlp(device):
    return nn.Sequential(
        linear_ext.Linear(20, 32, device=device), nn.ReLU(),
        linear_ext.Linear(32, 16, device=device), nn.ReLU(),
        linear_ext.Linear(16, 4, bias=False, device=device),
    )


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_mlp_matches_eager_forward_and_backward(device):
    torch._dynamo.reset()
    model = mlp(device)
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 8, 20, device=device)

    eager_out = model(x)
    eager_out.square().sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    compiled_out = compiled(x)
    compiled_out.square().sum().backward()
    torch.testing.assert_close(compiled_out, eager_out, atol=1e-5, rtol=1e-5)
    for p, g in zip(model.parameters(), eager_grads):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-5)


def test_compiled_graphs_call_our_ops():
    """After AOT autograd, the forward and backward graphs hold linear_ext ops, not aten.mm/addmm."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    torch._dynamo.reset()
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    model = mlp("cpu")
    compiled = torch.compile(model, fullgraph=True, backend=aot_autograd(fw_compiler=capture, bw_compiler=capture))
    compiled(torch.randn(3, 20)).sum().backward()
    assert len(graphs) == 2
    for gm in graphs:
        targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
        assert any(t.startswith("linear_ext.") for t in targets), targets
        assert not any(t.startswith(("aten.mm", "aten.addmm", "aten.linear")) for t in targets), targets
