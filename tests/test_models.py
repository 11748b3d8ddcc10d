"""Converted models under torch.compile and in deterministic training."""

import copy
import warnings

import pytest
import torch

import linear_ext
from conftest import DEVICES
from linear_ext import replace_linear
from models import encoder_batch, encoder_loss, mlp, tiny_encoder

_CUDA_SKIP = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def encoder_step(model, batch):
    """Outputs and parameter grads of one forward and backward, the grads taken off the model."""
    outputs = model(batch[0])
    encoder_loss(outputs, batch).backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return [o.detach() for o in outputs], grads


# aot_eager runs what is ours under compile (Dynamo tracing without graph breaks, the fake kernels,
# the autograd formula traced by AOT autograd) in seconds; inductor adds its code generation around
# our ops, and its cold compile of this model costs ~40 s of CPU, so it is opt-in here.
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_converted_encoder_matches_eager(device, backend):
    torch._dynamo.reset()
    model = replace_linear(tiny_encoder(layers=1)).to(device)
    batch = encoder_batch(device=device)
    expected_outputs, expected_grads = encoder_step(model, batch)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    for _ in range(2):  # the second call runs the cached graph
        outputs, grads = encoder_step(compiled, batch)
        for actual, expected in zip(outputs + grads, expected_outputs + expected_grads, strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


@_CUDA_SKIP
def test_reduce_overhead_mode_replays_cuda_graphs():
    if not linear_ext.WITH_CUDA:
        pytest.skip("linear_ext was built without CUDA kernels")
    torch._dynamo.reset()
    model = replace_linear(tiny_encoder(layers=1)).cuda()
    batch = encoder_batch(device="cuda")
    expected_outputs, expected_grads = encoder_step(model, batch)
    compiled = torch.compile(model, fullgraph=True, mode="reduce-overhead")
    for _ in range(3):  # warm-up, recording, replay
        torch.compiler.cudagraph_mark_step_begin()
        outputs, grads = encoder_step(compiled, batch)
        outputs, grads = [o.clone() for o in outputs], [g.clone() for g in grads]
        for actual, expected in zip(outputs + grads, expected_outputs + expected_grads, strict=True):
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def train_steps(model, inputs, loss_fn, steps=3):
    """Parameters and every step's loss after a few SGD steps: the whole training computation."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model, inputs)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses + [p.detach().clone() for p in model.parameters()]


def encoder_loss_fn(model, batch):
    return encoder_loss(model(batch[0]), batch)


def mse_loss_fn(model, x):
    return model(x).square().mean()


def assert_bitwise_equal(results_a, results_b):
    for i, (a, b) in enumerate(zip(results_a, results_b, strict=True)):
        assert torch.equal(a, b), f"result {i} differs: max |Δ| = {(a - b).abs().max().item():.3g}"


def test_repeated_training_runs_are_bitwise_identical():
    batch = encoder_batch(batch=4, seq=16)
    runs = [train_steps(replace_linear(tiny_encoder()), batch, encoder_loss_fn) for _ in range(2)]
    assert_bitwise_equal(*runs)


def test_training_is_bitwise_identical_for_1_and_2_threads(num_threads):
    # Every reduction over the batch here is one of our GEMMs (large enough for the parallel path:
    # M·N·K ≥ 64³). torch's own LayerNorm backward sums its weight grad in a thread-count dependent
    # order, so a model with LayerNorm would differ for torch's reasons, not ours.
    torch.manual_seed(0)
    x = torch.randn(256, 200)
    runs = []
    for threads in (1, 2, 1):
        num_threads(threads)
        runs.append(train_steps(replace_linear(mlp(sizes=(200, 129, 67, 10), norm=False)), x, mse_loss_fn))
    assert_bitwise_equal(runs[0], runs[1])
    assert_bitwise_equal(runs[0], runs[2])


@pytest.fixture
def deterministic_algorithms():
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield torch.use_deterministic_algorithms
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_algorithms_mode(device, deterministic_algorithms):
    """No op of ours refuses to run, or warns, in deterministic mode, and the results are those of the
    default mode (our kernels have one reduction order whatever the mode). On CUDA the model has only
    our GEMMs: torch's own cuBLAS GEMMs would also need CUBLAS_WORKSPACE_CONFIG there."""
    torch.manual_seed(0)
    x = torch.randn(64, 200, device=device)
    model = replace_linear(mlp(sizes=(200, 129, 67, 10), norm=False)).to(device)
    default = train_steps(copy.deepcopy(model), x, mse_loss_fn)
    deterministic_algorithms(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deterministic = [train_steps(copy.deepcopy(model), x, mse_loss_fn) for _ in range(2)]
    assert_bitwise_equal(deterministic[0], deterministic[1])
    assert_bitwise_equal(deterministic[0], default)


def test_deterministic_algorithms_mode_encoder(deterministic_algorithms):
    batch = encoder_batch(batch=4, seq=16)
    default = train_steps(replace_linear(tiny_encoder()), batch, encoder_loss_fn)
    deterministic_algorithms(True)
    assert_bitwise_equal(train_steps(replace_linear(tiny_encoder()), batch, encoder_loss_fn), default)


def test_converting_a_compiled_model_recompiles_onto_our_ops():
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    torch._dynamo.reset()
    graphs = []

    def capture(gm, example_inputs):
        graphs.append({str(n.target) for n in gm.graph.nodes if n.op == "call_function"})
        return make_boxed_func(gm.forward)

    model = mlp()
    compiled = torch.compile(model, fullgraph=True, backend=aot_autograd(fw_compiler=capture))
    x = torch.randn(3, 20)
    expected = compiled(x)
    replace_linear(compiled)  # reaches the model through the compiled wrapper
    torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-6)
    uses_ours = [any(t.startswith("linear_ext.") for t in targets) for targets in graphs]
    assert uses_ours == [False, True]
