"""The ops called from several Python threads at once, with torch using 1 or 2 intra-op threads.

Each Python thread runs its own mix of shapes, dtypes and ops (forward, both backward ops, and
functional.linear + autograd) several times over, all started together. The kernels are
deterministic, so every concurrent result must be bitwise equal to the same call made alone
beforehand; that result is itself checked against float64. A race on shared scratch memory or on
the one-time CPU detection would show up as a differing or wrong result (or a crash).
"""

import threading

import pytest
import torch

from conftest import DTYPES
from linear_ext import Linear, functional, ops
from reference import assert_gemm_close, backward_input_reference, backward_weight_reference, forward_reference

PYTHON_THREADS = 4
REPEATS = 3
# (M, N, K): one tile, edge tiles, several KC steps and row blocks, the parallel path
SHAPES = [(1, 1, 1), (13, 33, 17), (37, 45, 300), (300, 260, 700), (129, 31, 1031), (0, 5, 7), (5, 7, 0)]


def _randn(*shape, dtype, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def make_job(index):
    """A callable returning a tuple of tensors, and a checker of its result against float64."""
    M, N, K = SHAPES[index % len(SHAPES)]
    dtype = DTYPES[index % len(DTYPES)]
    kind = ("forward", "backward_input", "backward_weight", "autograd")[index % 4]
    x, w, b = _randn(M, K, dtype=dtype, seed=3 * index), _randn(N, K, dtype=dtype, seed=3 * index + 1), _randn(N, dtype=dtype, seed=index)
    dy = _randn(M, N, dtype=dtype, seed=3 * index + 2)
    if kind == "forward":
        def run():
            return (ops.linear_forward(x, w, b),)

        def check(out):
            assert_gemm_close(out[0], *forward_reference(x, w, b), K)
    elif kind == "backward_input":
        def run():
            return (ops.linear_backward_input(dy, w),)

        def check(out):
            assert_gemm_close(out[0], *backward_input_reference(dy, w), N)
    elif kind == "backward_weight":
        def run():
            return ops.linear_backward_weight(dy, x.t().contiguous().t(), True)

        def check(out):
            dw, dw_mag, db, db_mag = backward_weight_reference(dy, x)
            assert_gemm_close(out[0], dw, dw_mag, M)
            assert_gemm_close(out[1], db, db_mag, M)
    else:
        def run():
            leaves = [t.detach().requires_grad_() for t in (x, w, b)]
            y = functional.linear(*leaves)
            return (y.detach(), *torch.autograd.grad(y, leaves, dy))

        def check(out):
            assert_gemm_close(out[0], *forward_reference(x, w, b), K)
            assert_gemm_close(out[1], *backward_input_reference(dy, w), N)
            dw, dw_mag, db, db_mag = backward_weight_reference(dy, x)
            assert_gemm_close(out[2], dw, dw_mag, M)
            assert_gemm_close(out[3], db, db_mag, M)
    return f"{kind} {M}x{N}x{K} {dtype}", run, check


def run_in_threads(bodies):
    """Starts one thread per body at the same moment; re-raises the first exception."""
    barrier = threading.Barrier(len(bodies))
    errors = []

    def main(body):
        try:
            barrier.wait()
            body()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=main, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]


@pytest.mark.parametrize("intra_op_threads", [1, 2])
def test_mixed_ops_from_several_threads(intra_op_threads, num_threads):
    num_threads(intra_op_threads)
    jobs = [make_job(i) for i in range(4 * len(SHAPES))]
    alone = []
    for name, run, check in jobs:
        out = run()
        check(out)
        alone.append(out)

    # Thread t runs every job j with j % PYTHON_THREADS == t, then the others too, in a rotated order.
    results = [[] for _ in range(PYTHON_THREADS)]

    def body(t):
        order = [(t + i) % len(jobs) for i in range(len(jobs))]
        for _ in range(REPEATS):
            for j in order:
                results[t].append((j, jobs[j][1]()))

    run_in_threads([lambda t=t: body(t) for t in range(PYTHON_THREADS)])
    for per_thread in results:
        assert len(per_thread) == REPEATS * len(jobs)
        for j, out in per_thread:
            for got, expected in zip(out, alone[j]):
                assert torch.equal(got, expected), f"{jobs[j][0]}: concurrent result differs from the one computed alone"


def test_short_lived_threads(num_threads):
    """Many threads that each call once and exit (their per-thread scratch memory is freed)."""
    num_threads(2)
    name, run, check = make_job(3)  # the parallel-path shape
    expected = run()
    check(expected)
    outs = []
    for _ in range(5):
        run_in_threads([lambda: outs.append(run()) for _ in range(8)])
    assert len(outs) == 40 and all(all(torch.equal(a, b) for a, b in zip(o, expected)) for o in outs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shared_layer_grads_accumulate_across_threads(dtype, num_threads):
    """One Linear trained from several threads at once: its grads are the sum over all threads."""
    num_threads(2)
    layer = Linear(70, 45, dtype=dtype)
    xs = [_randn(33, 70, dtype=dtype, seed=100 + t) for t in range(PYTHON_THREADS)]
    dys = [_randn(33, 45, dtype=dtype, seed=200 + t) for t in range(PYTHON_THREADS)]

    def body(t):
        for _ in range(REPEATS):
            layer(xs[t]).backward(dys[t])

    run_in_threads([lambda t=t: body(t) for t in range(PYTHON_THREADS)])
    x_all = torch.cat(xs * REPEATS)
    dy_all = torch.cat(dys * REPEATS)
    dw, dw_mag, db, db_mag = backward_weight_reference(dy_all, x_all)
    # Each call's grad has reference.py's error; autograd then adds the calls' grads in `dtype`, in
    # whatever order the threads finish, rounding once per addition.
    additions = PYTHON_THREADS * REPEATS
    for grad, exact, magnitude in [(layer.weight.grad, dw, dw_mag), (layer.bias.grad, db, db_mag)]:
        bound = (1e-6 * 33**0.5 + additions * torch.finfo(dtype).eps) * magnitude
        assert ((grad.double() - exact).abs() <= bound).all()
