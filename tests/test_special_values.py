"""NaN, ±Inf, overflow and subnormal values through the three ops, as F.linear treats them.

A NaN anywhere in a dot product makes that output NaN, and no other; an Inf makes it ±Inf with
the product's sign, or NaN where it meets an Inf of the other sign or an exact zero. Every output's
class (NaN / +Inf / -Inf / finite) must equal that of torch's result on the same values computed
in float64 (IEEE arithmetic with no rounding surprises), and that of torch's own result in the same
dtype for float32, float64 and float16. (Not bfloat16: torch's CPU bfloat16 matmul turns some
Inf results into NaN, e.g. at K = 33, apparently from zero padding; see
test_torch_bf16_reference_quirk.) Finite outputs are held to reference.py's error model.
Subnormal operands and results must be exact (no flush-to-zero unless torch.set_flush_denormal
asks for it, and then on every thread alike), and 16-bit overflow must give Inf.
"""

import math

import pytest
import torch
import torch.nn.functional as F

import linear_ext
from conftest import DTYPES
from linear_ext import ops
from reference import assert_gemm_close

NAN, INF = float("nan"), float("inf")

# Rows/columns past the register tiles (MR ≤ 12, NR ≤ 32) and K/M past one KC = 128 step, so
# specials land in edge tiles, in later rank-KC updates and in the float workspace of 16-bit types.
M, N, K = 150, 45, 300


def _positions(rows, cols):
    """First, last and a block-boundary element (k = 128 lies in the second KC step)."""
    return [(0, 0), (rows - 1, cols - 1), (rows // 2, min(128, cols - 1))]


# op -> (operand names and shapes, our outputs, float64 reference outputs, torch's outputs in the dtype,
#        reduction length of each output)
OPS = {
    "forward": (
        {"x": (M, K), "w": (N, K), "b": (N,)},
        lambda t: (ops.linear_forward(t["x"], t["w"], t["b"]),),
        lambda t: (F.linear(t["x"].double(), t["w"].double(), t["b"].double()),),
        lambda t: (F.linear(t["x"], t["w"], t["b"]),),
        (K,),
    ),
    "backward_input": (
        {"dy": (M, N), "w": (N, K)},
        lambda t: (ops.linear_backward_input(t["dy"], t["w"]),),
        lambda t: (t["dy"].double() @ t["w"].double(),),
        lambda t: (t["dy"] @ t["w"],),
        (N,),
    ),
    "backward_weight": (
        {"dy": (M, N), "x": (M, K)},
        lambda t: ops.linear_backward_weight(t["dy"], t["x"], True),
        lambda t: (t["dy"].double().t() @ t["x"].double(), t["dy"].double().sum(0)),
        lambda t: (t["dy"].t() @ t["x"], t["dy"].sum(0)),
        (M, M),
    ),
}


def _classes(t):
    return {"nan": t.isnan(), "+inf": t == INF, "-inf": t == -INF}


def check_like_torch(name, tensors):
    """Our outputs against the float64 reference (classes and finite values) and torch's own."""
    _, ours_fn, exact_fn, native_fn, ks = OPS[name]
    dtype = next(iter(tensors.values())).dtype
    ours, exact = ours_fn(tensors), exact_fn(tensors)
    native = native_fn(tensors) if dtype != torch.bfloat16 else (None,) * len(ours)
    magnitude = exact_fn({n: t.abs() for n, t in tensors.items()})
    for i, (out, ref, mag, nat, k) in enumerate(zip(ours, exact, magnitude, native, ks)):
        ref_classes = _classes(ref.to(dtype))
        for cls, mask in _classes(out).items():
            assert torch.equal(mask, ref_classes[cls]), (
                f"output {i}: {cls} at {mask.nonzero()[:5].tolist()}, float64 reference has it at "
                f"{ref_classes[cls].nonzero()[:5].tolist()} ({int(mask.sum())} vs {int(ref_classes[cls].sum())})")
            if nat is not None:
                assert torch.equal(mask, _classes(nat)[cls]), f"output {i}: {cls} differs from torch's {dtype} result"
        finite = ref.to(dtype).isfinite() & mag.isfinite()
        assert_gemm_close(out[finite], ref[finite], mag[finite], k)


def random_operands(name, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = OPS[name][0]
    return {n: torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype) for n, shape in shapes.items()}


OPERANDS = [(name, operand) for name, spec in OPS.items() for operand in spec[0]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("op,operand", OPERANDS, ids=[f"{n}-{o}" for n, o in OPERANDS])
def test_special_value_in_one_operand(op, operand, value, dtype):
    """Specials at the first, last and a block-boundary element of one operand."""
    t = random_operands(op, dtype)
    target = t[operand]
    for pos in _positions(*target.shape) if target.dim() == 2 else [(0,), (target.shape[0] - 1,), (17,)]:
        target[pos] = value
    check_like_torch(op, t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_specials_in_every_operand_at_once(op, dtype):
    """NaN, +Inf and -Inf scattered through all operands: Inf meets -Inf, NaN meets Inf."""
    t = random_operands(op, dtype, seed=1)
    gen = torch.Generator().manual_seed(2)
    for target in t.values():
        flat = target.view(-1)
        idx = torch.randperm(flat.numel(), generator=gen)[:6]
        flat[idx] = torch.tensor([NAN, INF, -INF, INF, -INF, NAN], dtype=target.dtype)
    check_like_torch(op, t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_times_zero_is_nan(dtype):
    """x[m, k] = ±Inf against w[n, k] = 0 makes y[m, n] NaN, and only there (also for dX and dW)."""
    t = random_operands("forward", dtype)
    t["x"][3, 200] = INF
    t["w"][7, 200] = 0.0
    t["x"][140, 5] = -INF
    t["w"][:, 5] = 0.0  # the whole column: row 140 of y is NaN everywhere
    check_like_torch("forward", t)
    y = ops.linear_forward(t["x"], t["w"], t["b"])
    assert y[3, 7].isnan() and y[3].isinf().sum() == N - 1 and y[140].isnan().all()
    assert y.isnan().sum() == 1 + N

    t = random_operands("backward_input", dtype)
    t["dy"][10, 44] = INF
    t["w"][44, 299] = 0.0
    check_like_torch("backward_input", t)

    t = random_operands("backward_weight", dtype)
    t["dy"][149, 0] = -INF
    t["x"][149, 1] = 0.0
    check_like_torch("backward_weight", t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_only_where_it_reaches(dtype):
    """One NaN in x reaches one row of y; one in w, one column; one in b, one column; nothing else."""
    t = random_operands("forward", dtype)
    t["x"][5, 250] = NAN
    t["w"][40, 0] = NAN
    t["b"][2] = NAN
    y = ops.linear_forward(t["x"], t["w"], t["b"])
    expected = torch.zeros(M, N, dtype=torch.bool)
    expected[5, :] = expected[:, 40] = expected[:, 2] = True
    assert torch.equal(y.isnan(), expected)

    dy = random_operands("backward_weight", dtype)["dy"]
    dy[77, 30] = NAN
    if dtype == torch.bfloat16:  # a NaN with the sign bit set (c10 stores any NaN as 0x7FC0)
        dy.view(torch.int16)[77, 30] = -64  # 0xFFC0
    dw, db = ops.linear_backward_weight(dy, random_operands("backward_weight", dtype, seed=3)["x"], True)
    assert dw.isnan().nonzero(as_tuple=True)[0].unique().tolist() == [30] and dw[30].isnan().all()
    assert db.isnan().nonzero().flatten().tolist() == [30]
    if dtype == torch.bfloat16:  # rounded as c10 rounds a float NaN, whatever its sign: 0x7FC0
        assert (dw[30].view(torch.int16) == 0x7FC0).all()


# --- Overflow -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,big", [(torch.float16, 200.0), (torch.bfloat16, 1.5e19), (torch.float32, 1.5e19)])
def test_overflow_gives_signed_inf(dtype, big):
    """Dot products past the dtype's range are ±Inf in every op, and in the bias grad. Each
    product (big²) is representable in the float32 accumulator, their sums are not in the dtype."""
    x = torch.full((2, 4), big, dtype=dtype)
    x[1] = -big
    w = torch.full((3, 4), big, dtype=dtype)
    y = ops.linear_forward(x, w, None)
    assert torch.equal(y, torch.tensor([[INF] * 3, [-INF] * 3], dtype=dtype))
    assert torch.equal(y, F.linear(x.double(), w.double()).to(dtype))
    dx = ops.linear_backward_input(x[:, :3], w)
    assert torch.equal(dx, torch.tensor([[INF] * 4, [-INF] * 4], dtype=dtype))
    dy = torch.full((4096, 3), big, dtype=dtype)
    dy[:, 1] = -big
    dw, db = ops.linear_backward_weight(dy, torch.full((4096, 2), big, dtype=dtype), True)
    assert torch.equal(dw, torch.tensor([[INF] * 2, [-INF] * 2, [INF] * 2], dtype=dtype))
    if dtype == torch.float16:  # 4096 · 200 > 65504
        assert torch.equal(db, torch.tensor([INF, -INF, INF], dtype=dtype))
    else:  # 4096 · 1.5e19 is representable
        assert db.isfinite().all()


def test_float16_intermediates_do_not_overflow():
    """float16 products and partial sums beyond 65504 that cancel give the exact small result:
    the accumulator is float32, and only the final value is rounded to float16."""
    x = torch.tensor([[200.0, 200.0, -200.0, -200.0, 3.0]], dtype=torch.float16)
    w = torch.tensor([[200.0, 200.0, 200.0, 200.0, 1.0]], dtype=torch.float16)
    assert ops.linear_forward(x, w, None).item() == 3.0
    assert ops.linear_backward_input(x[:, :1], w).tolist() == [[40000.0, 40000.0, 40000.0, 40000.0, 200.0]]
    dw, db = ops.linear_backward_weight(x.t(), w.t(), True)
    assert dw.flatten().tolist()[0] == 3.0 and db.tolist() == [3.0]


def test_float16_rounds_to_max_or_inf_at_the_boundary():
    """65519 rounds down to 65504 (float16's largest), 65520 is halfway and rounds to Inf; the
    float32 accumulator holds both exactly, so this checks the final rounding to float16."""
    x = torch.tensor([[65504.0, 15.0], [65504.0, 16.0], [-65504.0, -16.0]], dtype=torch.float16)
    w = torch.ones(1, 2, dtype=torch.float16)
    y = ops.linear_forward(x, w, None).flatten()
    assert y.tolist() == [65504.0, INF, -INF]
    assert torch.equal(y, F.linear(x, w).flatten())
    # bias pushes a representable sum over the edge
    y = ops.linear_forward(torch.tensor([[60000.0]], dtype=torch.float16), torch.ones(1, 1, dtype=torch.float16),
                           torch.tensor([6000.0], dtype=torch.float16))
    assert y.item() == INF


# --- Subnormals ---------------------------------------------------------------------------------------

def _tiny(dtype):
    return torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # the smallest subnormal


def _skip_bf16_dot_kernels(dtype):
    """bfloat16 GEMMs on AVX512_BF16 dot products read subnormal inputs as zero and flush subnormal
    sums (README); test_bf16_dot.py tests that, and runs these tests with the kernels off."""
    if dtype == torch.bfloat16 and linear_ext._C.cpu_bf16_dot():
        pytest.skip("bfloat16 runs on AVX512_BF16 dot products here (flush-to-zero); see test_bf16_dot.py")


def _small_ints(shape, low, high, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(low, high + 1, shape, generator=gen).double()


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_operands_and_results_are_exact(dtype):
    """x = small integers × the smallest subnormal, w = small integers: every product and partial
    sum is a multiple of the smallest subnormal and below 128 of them, so exactly representable —
    the result must be exact. Flush-to-zero (FTZ/DAZ) would give zeros."""
    _skip_bf16_dot_kernels(dtype)
    tiny, k = _tiny(dtype), 40
    x = (_small_ints((37, k), -1, 1, 0) * tiny).to(dtype)
    w = _small_ints((45, k), -3, 3, 1).to(dtype)
    b = (_small_ints((45,), -3, 3, 2) * tiny).to(dtype)
    assert (x[x != 0].abs() < torch.finfo(dtype).smallest_normal).all()
    exact = F.linear(x.double(), w.double(), b.double())
    y = ops.linear_forward(x, w, b)
    assert (y != 0).sum() > y.numel() // 2 and (y.abs() < torch.finfo(dtype).smallest_normal).all()
    assert torch.equal(y.double(), exact)
    dy = (_small_ints((37, 45), -1, 1, 3) * tiny).to(dtype)
    dx = ops.linear_backward_input(dy, w[:, :3])
    assert torch.equal(dx.double(), dy.double() @ w[:, :3].double())
    dw, db = ops.linear_backward_weight(dy, w[:37, :5], True)
    assert torch.equal(dw.double(), dy.double().t() @ w[:37, :5].double())
    assert torch.equal(db.double(), dy.double().sum(0)) and (db != 0).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_inputs_with_normal_results(dtype):
    """Subnormal x times a large power of two gives normal results: exact, not zero."""
    _skip_bf16_dot_kernels(dtype)
    finfo = torch.finfo(dtype)
    tiny = _tiny(dtype)
    scale = 2.0 ** (-int(math.log2(finfo.eps)) + 2)  # the smallest subnormal × scale = 4 × the smallest normal
    x = (_small_ints((20, 30), -5, 5, 4) * tiny).to(dtype)
    w = (_small_ints((9, 30), -2, 2, 5) * scale).to(dtype)
    y = ops.linear_forward(x, w, None)
    exact = x.double() @ w.double().t()
    assert torch.equal(y.double(), exact) and (y[y != 0].abs() >= finfo.smallest_normal).all() and (y != 0).any()
    theirs = F.linear(x, w)
    if dtype == torch.bfloat16 and not torch.equal(theirs.double(), exact):
        # On CPUs with AVX512_BF16 (Zen 4, Sapphire Rapids) torch's oneDNN computes bfloat16 with
        # dot-product instructions that read subnormal inputs as zero, whatever the float mode.
        assert (theirs == 0).all()
    else:
        assert torch.equal(y, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normal_inputs_with_subnormal_products(dtype):
    """Normal operands ±2^-(e/2+3) (smallest normal 2^-e) whose products and sums underflow into
    the subnormal range, on the dtype's subnormal grid: exact, not flushed to zero."""
    _skip_bf16_dot_kernels(dtype)
    finfo = torch.finfo(dtype)
    e = -int(math.log2(finfo.smallest_normal))
    half = 2.0 ** -(e // 2 + 3)
    x = (_small_ints((16, 8), -1, 1, 6) * half).to(dtype)
    w = (_small_ints((5, 8), -1, 1, 7) * half).to(dtype)
    assert (x[x != 0].abs() >= finfo.smallest_normal).all()
    y = ops.linear_forward(x, w, None)
    exact = x.double() @ w.double().t()
    assert torch.equal(y.double(), exact) and (y != 0).any()
    assert (y[y != 0].abs() < finfo.smallest_normal).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormals_at_every_scale_match_the_error_model(dtype):
    """Random values spread from subnormal to normal magnitudes, through all three ops."""
    _skip_bf16_dot_kernels(dtype)
    gen = torch.Generator().manual_seed(8)
    tiny = _tiny(dtype)
    top = -int(math.log2(torch.finfo(dtype).eps)) + 12  # up to 2^12 × the smallest normal

    def spread(*shape):
        exponents = torch.randint(0, top, shape, generator=gen).double()
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * tiny * 2.0**exponents).to(dtype)

    x, w, b, dy = spread(70, 200), torch.randn(33, 200, generator=gen, dtype=torch.float64).to(dtype), spread(33), spread(70, 33)
    check_like_torch("forward", {"x": x, "w": w, "b": b})
    check_like_torch("backward_input", {"dy": dy, "w": w})
    check_like_torch("backward_weight", {"dy": dy, "x": x})


@pytest.mark.parametrize("op", list(OPS))
def test_flush_denormal_mode_applies_on_every_thread(op, num_threads):
    """torch.set_flush_denormal(True) sets FTZ/DAZ on the calling thread only (worker threads
    started earlier keep their own mode). Results must still not depend on the thread count
    (gemm.h promises the same bits for any count), so the workers must compute in the caller's
    mode: here every subnormal result flushes to zero, as it does on one thread."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU has no flush-to-zero mode torch can set")
    gen = torch.Generator().manual_seed(9)
    tiny = torch.randn(M, K, generator=gen) * 1e-39  # subnormal
    normal = torch.randn(N, K, generator=gen)
    x = torch.randn(M, K, generator=gen)
    dy_tiny = torch.randn(M, N, generator=gen) * 1e-39
    call = {
        "forward": lambda: (ops.linear_forward(tiny, normal, None),),
        "backward_input": lambda: (ops.linear_backward_input(dy_tiny, normal),),
        "backward_weight": lambda: ops.linear_backward_weight(dy_tiny, x, True),
    }[op]
    num_threads(2)
    call()  # the worker threads exist before the mode changes, as in any program that ran torch before
    results = {}
    try:
        torch.set_flush_denormal(True)
        for threads in (1, 2):
            num_threads(threads)
            results[threads] = call()
    finally:
        torch.set_flush_denormal(False)
    for one, two in zip(results[1], results[2]):
        assert (one == 0).all(), "one thread with flush-to-zero on: every subnormal result is zero"
        assert torch.equal(one, two), (f"{int((one != two).sum())} of {one.numel()} elements differ between 1 and 2 "
                                       "threads with flush-to-zero on")


def test_torch_bf16_reference_quirk():
    """Why torch's own bfloat16 results are not used as a reference above: for (4, 33)·(33, 64)
    its matmul (and F.linear) gives NaN where IEEE arithmetic gives +Inf (Inf·0.5 + Inf·0.5 + ...,
    K odd; smaller problems take another path and are right). Ours follows IEEE. If this test is
    skipped, torch is fixed and the bfloat16 comparison with torch can be switched on."""
    dy = torch.ones(4, 33, dtype=torch.bfloat16)
    dy[0, 0] = dy[0, 32] = INF
    w = torch.full((33, 64), 0.5, dtype=torch.bfloat16)
    assert ops.linear_backward_input(dy, w)[0].isposinf().all()
    assert ops.linear_forward(dy, w.t(), None)[0].isposinf().all()
    if not (dy @ w)[0].isnan().any():
        pytest.skip("torch's bfloat16 matmul follows IEEE here (fixed, or another backend)")
