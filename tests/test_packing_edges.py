"""Every M, N, K from 1 to 40 for the three ops, in float64 against torch's float64 GEMMs.

Up to 40 each dimension crosses every edge the CPU kernels have at small sizes: micro-kernel rows
(6 on AVX2, 8 on AVX-512) and columns (8-48), the 2- and 4-row kernels of a last row sliver, the
dot kernels' blocks of rows of X and W, the row-streaming kernel's 1-8 rows, and K around the
vector width and the packers' 8-value transposes. Each case reads fresh, contiguous operands whose
base is 0-2 elements past a 64-byte boundary, so unaligned bases are covered as well.
"""

import math

import pytest
import torch

from linear_ext import ops

SIZES = range(1, 41)


def operands():
    """Flat float64 buffers; a case views the first rows·cols values after its offset."""
    return {name: torch.randn(40 * 40 + 2, dtype=torch.float64) for name in ("a", "b", "bias")}


def view(flat, rows, cols, offset):
    return flat[offset:offset + rows * cols].view(rows, cols)


def close(actual, exact, magnitude, k):
    """float64 accumulation error bound (reference.py's model), as one boolean."""
    return bool(((actual - exact).abs() <= 1e-15 * math.sqrt(max(k, 1)) * magnitude + 1e-300).all())


def sweep(case, sizes=SIZES):
    """Runs case(M, N, K, offset) over every shape; fails listing the shapes that disagree."""
    failures = [(M, N, K) for M in sizes for N in sizes for K in sizes if not case(M, N, K, (M + N + K) % 3)]
    assert not failures, f"{len(failures)} shapes disagree, first (M, N, K): {failures[:8]}"


def test_forward_every_small_shape():
    t = operands()

    def case(M, N, K, offset):
        x, w, b = view(t["a"], M, K, offset), view(t["b"], N, K, offset), t["bias"][offset:offset + N]
        exact = torch.addmm(b, x, w.t())
        magnitude = torch.addmm(b.abs(), x.abs(), w.t().abs())
        return close(ops.linear_forward(x, w, b), exact, magnitude, K)

    sweep(case)


def test_backward_input_every_small_shape():
    t = operands()

    def case(M, N, K, offset):
        dy, w = view(t["a"], M, N, offset), view(t["b"], N, K, offset)
        return close(ops.linear_backward_input(dy, w), torch.mm(dy, w), torch.mm(dy.abs(), w.abs()), N)

    sweep(case)


def test_backward_weight_every_small_shape():
    t = operands()

    def case(M, N, K, offset):
        dy, x = view(t["a"], M, N, offset), view(t["b"], M, K, offset)
        dw, db = ops.linear_backward_weight(dy, x, True)
        return (close(dw, torch.mm(dy.t(), x), torch.mm(dy.t().abs(), x.abs()), M)
                and close(db, dy.sum(0), dy.abs().sum(0), M))

    sweep(case)


@pytest.mark.parametrize("op", ["forward", "backward_input"])
def test_sweep_catches_a_wrong_element(op):
    """The check itself (over fewer sizes): one wrong element in one shape is reported."""
    t = operands()

    def case(M, N, K, offset):
        x, w = view(t["a"], M, K, offset), view(t["b"], N, K, offset)
        y = ops.linear_forward(x, w, None) if op == "forward" else ops.linear_backward_input(x, w.t())
        exact = x @ w.t()
        if (M, N, K) == (7, 5, 9):
            y[-1, -1] += 1e-9 * exact.abs().max()
        return close(y, exact, x.abs() @ w.t().abs(), K)

    with pytest.raises(AssertionError, match=r"1 shapes disagree, first \(M, N, K\): \[\(7, 5, 9\)\]"):
        sweep(case, range(1, 12))
