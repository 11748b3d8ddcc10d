"""Property-based fuzzing of the three ops and of functional.linear + backward, against float64.

Hypothesis draws M, N, K in 0..300 (half of the time a block or vector-width edge: 0, 1, a small
multiple of 4/6/8/12/16/.../256, ±1), a memory layout per operand (dimension order, a step per
dimension, a storage offset, zero-stride expansion), the dtype, bias or not, and 1 or 2 threads.
Every result is checked with reference.py's error model against torch in float64.

Runs are reproducible: derandomized (the same cases on every run, on every machine), no
deadline, and no example database (nothing is written into the repository). The default suite
runs 600 cases (~30 s on two cores); `pytest -m slow` runs 6000 more, 450 with the GEMM's row
dimension up to 1600 (several MC blocks), 300 with its column dimension past one NC panel, and
the default cases again on each other CPU micro-kernel family (LINEAR_EXT_CPU_ISA) in a fresh
process.
"""

import contextlib
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import linear_ext
from conftest import DTYPES
from linear_ext import functional, ops
from reference import assert_gemm_close, backward_input_reference, backward_weight_reference, forward_reference

# Register-tile sizes (MR: 4/6/12, NR: 8/16/32), vector widths (4/8/16) and KC/MC-ish block sizes.
_EDGE_BASES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
EDGE_SIZES = sorted({0, 1, 2} | {m * b + d for b in _EDGE_BASES for m in (1, 2) for d in (-1, 0, 1) if m * b + d <= 300})


# Hypothesis caches what it reads from the source under ./.hypothesis; keep that out of the repository.
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"linear_ext-hypothesis-{os.getuid()}")


def _settings(max_examples):
    return settings(max_examples=max_examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


DEFAULT = _settings(150)
SLOW = _settings(1500)

dims = st.one_of(st.sampled_from(EDGE_SIZES), st.integers(0, 300))
dtypes = st.sampled_from(DTYPES)
thread_counts = st.sampled_from([1, 2])


@dataclass(frozen=True)
class Layout:
    """How a tensor sits in memory: `order` lists its dimensions outermost first, each dimension
    d is read every steps[d] elements, the view starts `offset` elements into its storage, and
    the dimensions in `expanded` have stride 0 (one element broadcast)."""

    order: tuple
    steps: tuple
    offset: int
    expanded: frozenset


@st.composite
def layouts(draw, ndim):
    order = tuple(draw(st.permutations(range(ndim))))
    steps = tuple(draw(st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=ndim, max_size=ndim)))
    offset = draw(st.sampled_from([0, 0, 1, 3, 7]))
    expanded = frozenset()
    if ndim and draw(st.integers(0, 4)) == 0:  # one operand in five is broadcast along some dimensions
        expanded = frozenset(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim)))
    return Layout(order, steps, offset, expanded)


def make_tensor(shape, dtype, layout, seed):
    """Normal random values of `dtype` with the given shape, laid out in memory as `layout` says."""
    gen = torch.Generator().manual_seed(seed)
    source = [1 if d in layout.expanded else n for d, n in enumerate(shape)]
    padded = [n * s for n, s in zip(source, layout.steps)]
    memory_shape = [padded[d] for d in layout.order]
    storage = torch.randn(layout.offset + math.prod(memory_shape), generator=gen, dtype=torch.float64).to(dtype)
    t = storage[layout.offset:].view(memory_shape).permute([layout.order.index(d) for d in range(len(shape))])
    t = t[tuple(slice(None, None, s) for s in layout.steps)]
    return t.expand(shape)


def constant_along(t, *dims):
    """Whether t holds one value along each of dims (broadcast, or of size 1 there)."""
    return all(t.stride(d) == 0 or t.shape[d] <= 1 for d in dims)


def draw_tensor(data, shape, dtype):
    layout = data.draw(layouts(len(shape)), label="layout")
    return make_tensor(shape, dtype, layout, data.draw(st.integers(0, 2**31 - 1), label="seed"))


@contextlib.contextmanager
def threads(n):
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


# --- The three ops ---------------------------------------------------------------------------------

# MC (rows per packed A panel) is capped at 1024 rounded up to MR (1026 for AVX2's 6 rows, 1024 for
# 8 or 4); these are its multiples ±1.
_BIG_ROWS = st.one_of(st.sampled_from([m * b + d for b in (1020, 1024, 1026) for m in (1, 2) for d in (-1, 0, 1)]),
                      st.integers(0, 2100))


# Widths past many NC-column B blocks (NC is a few hundred columns: half of L2 over KC), up to 16K.
_WIDE = st.one_of(st.sampled_from([m * b + d for b in (8192, 16384) for m in (1,) for d in (-1, 0, 1)]),
                  st.integers(8000, 17000))
_SMALL = st.one_of(st.sampled_from([0, 1, 5, 12, 13, 31, 33]), st.integers(0, 40))


def draw_mnk(data, big="", wide=""):
    """M, N, K from `dims`; the one named by `big` up to 1600 instead (several MC row blocks), or
    the one named by `wide` past one NC panel (and the other two small)."""
    if wide:
        return tuple(data.draw(_WIDE if name == wide else _SMALL, label=name) for name in "MNK")
    return tuple(data.draw(_BIG_ROWS if name == big else dims, label=name) for name in "MNK")


def forward_case(data, big="", wide=""):
    M, N, K = draw_mnk(data, big, wide)
    dtype = data.draw(dtypes, label="dtype")
    x, w = draw_tensor(data, (M, K), dtype), draw_tensor(data, (N, K), dtype)
    b = draw_tensor(data, (N,), dtype) if data.draw(st.booleans(), label="bias") else None
    with threads(data.draw(thread_counts, label="threads")):
        y = ops.linear_forward(x, w, b)
    exact, magnitude = forward_reference(x, w, b)
    assert y.dtype == dtype and y.is_contiguous()
    assert_gemm_close(y, exact, magnitude, K, constant_along(x, 1) and constant_along(w, 1))


def backward_input_case(data, big="", wide=""):
    M, N, K = draw_mnk(data, big, wide)
    dtype = data.draw(dtypes, label="dtype")
    dy, w = draw_tensor(data, (M, N), dtype), draw_tensor(data, (N, K), dtype)
    with threads(data.draw(thread_counts, label="threads")):
        dx = ops.linear_backward_input(dy, w)
    exact, magnitude = backward_input_reference(dy, w)
    assert dx.dtype == dtype and dx.is_contiguous()
    assert_gemm_close(dx, exact, magnitude, N, constant_along(dy, 1) and constant_along(w, 0))


def backward_weight_case(data, big="", wide=""):
    M, N, K = draw_mnk(data, big, wide)
    dtype = data.draw(dtypes, label="dtype")
    dy, x = draw_tensor(data, (M, N), dtype), draw_tensor(data, (M, K), dtype)
    bias_grad = data.draw(st.booleans(), label="bias_grad")
    with threads(data.draw(thread_counts, label="threads")):
        dw, db = ops.linear_backward_weight(dy, x, bias_grad)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert dw.dtype == dtype and dw.is_contiguous()
    assert_gemm_close(dw, dw_exact, dw_mag, M, constant_along(dy, 0) and constant_along(x, 0))
    if bias_grad:
        assert_gemm_close(db, db_exact, db_mag, M, constant_along(dy, 0))
    else:
        assert db.shape == (0,) and db.dtype == dtype


# --- functional.linear and its backward -------------------------------------------------------------

def autograd_case(data):
    rank = data.draw(st.integers(1, 4), label="input rank")
    N, K = data.draw(dims, label="N"), data.draw(dims, label="K")
    if rank == 1:
        batch = ()
    elif rank == 2:
        batch = (data.draw(dims, label="M"),)
    else:  # several leading dims whose product stays within 0..300
        batch = tuple(data.draw(st.sampled_from([0, 1, 2, 3, 5, 7, 12, 13]), label="batch dim") for _ in range(rank - 1))
    dtype = data.draw(dtypes, label="dtype")
    x = draw_tensor(data, (*batch, K), dtype).detach()
    w = draw_tensor(data, (N, K), dtype).detach()
    b = draw_tensor(data, (N,), dtype).detach() if data.draw(st.booleans(), label="bias") else None
    dy = draw_tensor(data, (*batch, N), dtype)
    wants = data.draw(st.tuples(st.booleans(), st.booleans(), st.booleans()), label="requires_grad x, w, b")
    leaves = [t.requires_grad_() for t, want in zip((x, w, b), wants) if t is not None and want]

    with threads(data.draw(thread_counts, label="threads")):
        y = functional.linear(x, w, b)
        grads = torch.autograd.grad(y, leaves, dy) if leaves else ()

    M = math.prod(batch)
    x2, dy2 = x.detach().reshape(M, K), dy.reshape(M, N)
    rows = range(len(batch))  # the dims summed over by the weight and bias grads
    assert y.shape == (*batch, N) and y.dtype == dtype
    exact, magnitude = forward_reference(x2, w.detach(), None if b is None else b.detach())
    assert_gemm_close(y.detach().reshape(M, N), exact, magnitude, K, constant_along(x, -1) and constant_along(w, 1))
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy2, x2)
    for leaf, grad in zip(leaves, grads):
        assert grad.shape == leaf.shape and grad.dtype == dtype
        if leaf is x:
            dx_exact, dx_mag = backward_input_reference(dy2, w.detach())
            assert_gemm_close(grad.reshape(M, K), dx_exact, dx_mag, N, constant_along(dy, -1) and constant_along(w, 0))
        elif leaf is w:
            assert_gemm_close(grad, dw_exact, dw_mag, M, constant_along(dy, *rows) and constant_along(x, *rows))
        else:
            assert_gemm_close(grad, db_exact, db_mag, M, constant_along(dy, *rows))


CASES = {"forward": forward_case, "backward_input": backward_input_case, "backward_weight": backward_weight_case,
         "autograd": autograd_case}


@DEFAULT
@given(data=st.data())
def test_fuzz_forward(data):
    forward_case(data)


@DEFAULT
@given(data=st.data())
def test_fuzz_backward_input(data):
    backward_input_case(data)


@DEFAULT
@given(data=st.data())
def test_fuzz_backward_weight(data):
    backward_weight_case(data)


@DEFAULT
@given(data=st.data())
def test_fuzz_autograd(data):
    autograd_case(data)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
@SLOW
@given(data=st.data())
def test_fuzz_long(case, data):
    CASES[case](data)


# The GEMM's row dimension past one MC block: M for forward and dX, N (out_features) for dW.
BIG_ROWS = {"forward": (forward_case, "M"), "backward_input": (backward_input_case, "M"),
            "backward_weight": (backward_weight_case, "N")}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BIG_ROWS))
@_settings(150)
@given(data=st.data())
def test_fuzz_long_many_row_blocks(case, data):
    fn, big = BIG_ROWS[case]
    fn(data, big)


# The GEMM's column dimension past one NC panel: N for forward, K for dX and dW.
WIDE = {"forward": (forward_case, "N"), "backward_input": (backward_input_case, "K"),
        "backward_weight": (backward_weight_case, "K")}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(WIDE))
@_settings(100)
@given(data=st.data())
def test_fuzz_long_many_column_panels(case, data):
    fn, wide = WIDE[case]
    fn(data, wide=wide)


@pytest.mark.slow
@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_fuzz_other_micro_kernels(isa):
    """The default fuzz cases again with another micro-kernel family (chosen once per process)."""
    probe = "import linear_ext; print(linear_ext._C.cpu_isa())"
    if linear_ext._C.cpu_isa() == isa:
        pytest.skip(f"{isa} is this process's default")
    env = {**os.environ, "LINEAR_EXT_CPU_ISA": isa}
    here = Path(__file__).resolve().parent
    if subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).returncode != 0:
        pytest.skip(f"this CPU has no {isa}")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                             str(here / "test_fuzz.py")], env=env, cwd=here, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
