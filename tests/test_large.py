"""Index arithmetic past 2^31 elements: each op on a bfloat16 operand of M·K > 2^31 elements (CPU).

A 32-bit offset anywhere (row × leading dimension, the packing loops, the output store) would wrap
or go negative for the rows past element 2^31. The bulk of every big operand is one constant row,
so results are cheap to check everywhere; a few sampled rows (first, last, either side of element
2^31) hold random values and are checked against a float64 reference computed on those rows
alone. A wrapped offset reads or writes another row, which either check catches.

About 4.5 GiB at a time (one big tensor alive per test); each test takes tens of seconds on two
cores, so they are marked slow: `pytest -m slow tests/test_large.py`.
"""

import pytest
import torch

from linear_ext import ops
from reference import assert_gemm_close, backward_input_reference, backward_weight_reference, forward_reference

K = 136  # > KC (128): two rank-KC updates, and the float workspace of 16-bit outputs
N = 5
M = 2**31 // K + 4099  # M·K = 2^31 + 540_504
BOUNDARY_ROW = 2**31 // K  # the row holding element 2^31
SAMPLED_ROWS = [0, 1, M // 2, BOUNDARY_ROW - 1, BOUNDARY_ROW, BOUNDARY_ROW + 1, M - 2, M - 1]
CHUNK = 1 << 20  # rows per chunk when scanning a big tensor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(torch.iinfo(torch.long).max < 2**62, reason="needs 64-bit sizes"),
]


def _available_gib():
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable")) / 2**20
    except (OSError, StopIteration):
        return float("inf")


@pytest.fixture(autouse=True)
def _enough_memory():
    if _available_gib() < 10:
        pytest.skip(f"needs ~10 GiB of free memory, {_available_gib():.1f} GiB available")


def big_operand(cols, seed, bulk):
    """(M, cols) bfloat16: every row equal to `bulk`, except SAMPLED_ROWS (random)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.empty(M, cols, dtype=torch.bfloat16)
    t[:] = bulk
    t[SAMPLED_ROWS] = torch.randn(len(SAMPLED_ROWS), cols, generator=gen, dtype=torch.float64).to(torch.bfloat16)
    return t


def rows_equal_to(t, row):
    """Boolean (M,): which rows of the big tensor t equal `row`, scanned in chunks."""
    return torch.cat([(t[i:i + CHUNK] == row).all(dim=1) for i in range(0, t.shape[0], CHUNK)])


def bulk_rows_mask():
    mask = torch.ones(M, dtype=torch.bool)
    mask[SAMPLED_ROWS] = False
    return mask


def small(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(torch.bfloat16)


def test_forward_input_past_2_31_elements():
    bulk = small(K, seed=1)
    x = big_operand(K, seed=2, bulk=bulk)
    w, b = small(N, K, seed=3), small(N, seed=4)
    y = ops.linear_forward(x, w, b)
    exact, magnitude = forward_reference(x[SAMPLED_ROWS], w, b)
    assert_gemm_close(y[SAMPLED_ROWS], exact, magnitude, K)
    exact, magnitude = forward_reference(bulk[None], w, b)
    assert_gemm_close(y[2:3], exact, magnitude, K)
    assert torch.equal(rows_equal_to(y, y[2]), bulk_rows_mask())


def test_backward_input_output_past_2_31_elements():
    bulk = small(N, seed=5)
    dy = big_operand(N, seed=6, bulk=bulk)
    w = small(N, K, seed=7)
    dx = ops.linear_backward_input(dy, w)
    assert dx.shape == (M, K)
    exact, magnitude = backward_input_reference(dy[SAMPLED_ROWS], w)
    assert_gemm_close(dx[SAMPLED_ROWS], exact, magnitude, N)
    exact, magnitude = backward_input_reference(bulk[None], w)
    assert_gemm_close(dx[2:3], exact, magnitude, N)
    assert torch.equal(rows_equal_to(dx, dx[2]), bulk_rows_mask())


def test_backward_weight_input_past_2_31_elements():
    """dW = dYᵀ·X sums over all M rows. dY is zero outside the sampled rows, so the exact result
    comes from those rows alone; X's bulk is nonzero, so a wrapped row offset into X (reading a
    bulk row instead of a sampled one) changes the result."""
    x = big_operand(K, seed=8, bulk=small(K, seed=9))
    dy = torch.zeros(M, N, dtype=torch.bfloat16)
    dy[SAMPLED_ROWS] = small(len(SAMPLED_ROWS), N, seed=10)
    dw, db = ops.linear_backward_weight(dy, x, True)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy[SAMPLED_ROWS], x[SAMPLED_ROWS])
    assert_gemm_close(dw, dw_exact, dw_mag, len(SAMPLED_ROWS))
    assert_gemm_close(db, db_exact, db_mag, len(SAMPLED_ROWS))
