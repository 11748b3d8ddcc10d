"""CUDA GEMM kernels: every branch of the dispatch table (csrc/cuda/gemm_dispatch.cu) at its tile
sizes ±1, misaligned and strided operands for every op and dtype, K not a multiple of 8, empty
dimensions, split-K, bitwise determinism, TF32 on/off, CUDA graphs, side streams, int64 offsets,
gradcheck in float64 and opcheck on the GPU. Skipped as a whole without a CUDA device."""

import math

import pytest
import torch

import linear_ext
from conftest import DTYPES
from linear_ext import functional, ops
from reference import (assert_all_ops_close, assert_gemm_close, backward_input_reference, backward_weight_reference,
                       forward_reference)


def _skip_reason():
    if not torch.cuda.is_available():
        return "no CUDA device: the CUDA kernel tests need a GPU"
    if not linear_ext.WITH_CUDA:
        return "linear_ext was built without CUDA kernels (no nvcc at build time)"
    return None


pytestmark = [pytest.mark.cuda, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

DEV = "cuda"
HALF_TYPES = [torch.bfloat16, torch.float16]


def tensor_cores():
    return torch.cuda.get_device_capability() >= (8, 0)


def rand(*shape, dtype):
    return torch.randn(*shape, dtype=dtype, device=DEV)


def check_all_ops(M, N, K, dtype, layout="contiguous"):
    """Forward (+bias), backward_input and backward_weight (+bias grad) of a (M, N, K) linear layer."""
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)
    assert_all_ops_close(*(as_layout(t, layout) for t in (x, w, b, dy)))


def as_layout(t, layout):
    """A tensor equal to `t` (1-D or 2-D) with the given memory layout."""
    if layout == "contiguous":
        return t
    if layout == "transposed":  # column-major
        return t.t().contiguous().t() if t.dim() == 2 else t
    if layout == "offset1":  # storage offset of one element: misaligned for 16-byte loads
        flat = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
        view = flat[1:].view(t.shape)
        view.copy_(t)
        return view
    if layout == "offset8":  # a view at a 16-byte aligned storage offset: still the vector path
        flat = torch.empty(t.numel() + 8, dtype=t.dtype, device=t.device)
        view = flat[8:].view(t.shape)
        view.copy_(t)
        return view
    if layout == "strided":  # inner stride 2
        wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    if layout == "padded_rows":  # leading dimension K+3: rows misaligned although the base is aligned
        if t.dim() == 1:
            return t
        wide = torch.empty(t.shape[0], t.shape[1] + 3, dtype=t.dtype, device=t.device)
        wide[:, : t.shape[1]] = t
        return wide[:, : t.shape[1]]
    raise ValueError(layout)


# --- Dispatch branches at their tile sizes ±1 ---------------------------------------------------------
# mma kHuge: 128×256 tiles from ~3 waves of them (see the big shapes below and FORCED_TILES);
# mma kLarge: 128×128 tiles, BK 64 (16-bit) / 32 (tf32). M ≤ 16: the forward (k-contiguous X and
# W) takes mma kDecode, 16×32 tiles with BK 128 / 64, backward_input mma kSmallM, 16×128 tiles.
# simt kLarge: 128×128 (double 64×64), BK 8 (16 for the 16-bit fallback); simt kSmall: float M ≤ 32.
MMA_LARGE = [(127, 129, 63), (128, 128, 64), (129, 127, 65), (17, 257, 33), (200, 130, 31)]
MMA_SMALL_M = ([(m, 129, 65) for m in (1, 2, 3, 8, 15, 16)] + [(1, 300, 7), (16, 127, 520)]
               + [(1, 31, 127), (8, 32, 128), (16, 33, 129), (4, 4096, 4096), (2, 1024, 4096)])
SIMT = [(127, 129, 7), (128, 128, 8), (129, 127, 9), (63, 65, 17), (65, 63, 16)]
SIMT_SMALL = [(1, 129, 9), (31, 127, 64), (32, 128, 8), (33, 130, 100)]
# Few output tiles and a long K: split along K (automatically) and reduced in a second kernel.
SPLIT_K = [(64, 64, 4096), (3, 700, 2100), (16, 4096, 1024), (130, 20, 2500)]
# Big enough for kHuge (≥ 3 waves of 128×256 tiles on an H100) in the forward.
HUGE = [(2561, 5121, 72)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", MMA_LARGE + MMA_SMALL_M + SIMT + SIMT_SMALL)
def test_dispatch_branches(M, N, K, dtype):
    check_all_ops(M, N, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", SPLIT_K + HUGE)
def test_split_k_and_huge_tiles(M, N, K, dtype):
    check_all_ops(M, N, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("splits", [2, 3, 7])
@pytest.mark.parametrize("M,N,K", [(5, 70, 300), (70, 45, 301), (129, 3, 1000)])
def test_forced_split_k(M, N, K, splits, dtype, monkeypatch):
    monkeypatch.setenv("LINEAR_EXT_CUDA_SPLIT_K", str(splits))
    check_all_ops(M, N, K, dtype)


# Every MMA tile forced on shapes at its edges (BM, BN ±1; BK ±1 for 16-bit, tf32 BK is half).
FORCED_TILES = {
    "huge": [(127, 255, 63), (128, 256, 64), (129, 257, 65), (300, 600, 130)],  # 128×256
    "large": [(127, 127, 63), (129, 129, 65)],  # 128×128
    "small_m": [(15, 127, 63), (16, 128, 64), (17, 129, 65), (40, 300, 200)],  # 16×128
    "decode": [(15, 31, 127), (16, 32, 128), (17, 33, 129), (40, 100, 300)],  # 16×32, BK 128
}


@pytest.mark.parametrize("dtype", HALF_TYPES + [torch.float32])
@pytest.mark.parametrize("tile,M,N,K", [(t, *s) for t, shapes in FORCED_TILES.items() for s in shapes])
def test_forced_mma_tiles(tile, M, N, K, dtype, monkeypatch):
    """float runs with TF32 on (the float tensor-core kernels), checked with the TF32 tolerance."""
    monkeypatch.setenv("LINEAR_EXT_CUDA_TILE", tile)
    if dtype != torch.float32:
        check_all_ops(M, N, K, dtype)
        return
    torch.backends.cuda.matmul.allow_tf32 = True  # restored by the autouse fixture
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)
    assert_tf32_close(ops.linear_forward(x, w, b), *forward_reference(x, w, b))
    assert_tf32_close(ops.linear_backward_input(dy, w), *backward_input_reference(dy, w))
    dw, db = ops.linear_backward_weight(dy, x, True)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_tf32_close(dw, dw_exact, dw_mag)
    assert_gemm_close(db, db_exact, db_mag, M)


@pytest.mark.parametrize("dtype", HALF_TYPES)
@pytest.mark.parametrize("M,N,K", [(1, 33, 7), (16, 129, 65), (129, 127, 17), (5, 64, 2000)])
def test_simt_fallback_for_16_bit(M, N, K, dtype, monkeypatch):
    """The CUDA-core kernel that serves float16/bfloat16 on GPUs without the tensor-core kernels."""
    monkeypatch.setenv("LINEAR_EXT_CUDA_KERNEL", "simt")
    check_all_ops(M, N, K, dtype)


# --- Layouts: misaligned, strided, transposed operands for every op and dtype -------------------------

LAYOUTS = ["transposed", "offset1", "offset8", "strided", "padded_rows"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("M,N,K", [(37, 45, 70), (5, 45, 70), (130, 66, 129)])
def test_layouts(M, N, K, layout, dtype):
    check_all_ops(M, N, K, dtype, layout)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mixed_layouts(dtype):
    """Each operand in its own layout, including m-contiguous A with k-contiguous B (no direct kernel)."""
    M, N, K = 67, 70, 90
    for la, lb in [("transposed", "contiguous"), ("offset1", "transposed"), ("strided", "offset1"),
                   ("contiguous", "padded_rows")]:
        x, w, b = as_layout(rand(M, K, dtype=dtype), la), as_layout(rand(N, K, dtype=dtype), lb), rand(N, dtype=dtype)
        exact, magnitude = forward_reference(x, w, b)
        assert_gemm_close(ops.linear_forward(x, w, b), exact, magnitude, K)
        dy = as_layout(rand(M, N, dtype=dtype), la)
        dw, db = ops.linear_backward_weight(dy, x, True)
        dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
        assert_gemm_close(dw, dw_exact, dw_mag, M)
        assert_gemm_close(db, db_exact, db_mag, M)


@pytest.mark.parametrize("dtype", DTYPES)
def test_expanded_operands(dtype):
    x = rand(19, 72, dtype=dtype)
    w = rand(1, 72, dtype=dtype).expand(31, 72)
    b = rand(1, dtype=dtype).expand(31)
    exact, magnitude = forward_reference(x, w, b)
    assert_gemm_close(ops.linear_forward(x, w, b), exact, magnitude, 72)
    dy = rand(1, 31, dtype=dtype).expand(19, 31)
    dw, db = ops.linear_backward_weight(dy, x, True)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_gemm_close(dw, dw_exact, dw_mag, 19)
    assert_gemm_close(db, db_exact, db_mag, 19)


# --- Empty dimensions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0), (20, 0, 3000), (3000, 40, 0)])
@pytest.mark.parametrize("splits", [None, 3])
def test_empty_dimensions(M, N, K, splits, dtype, monkeypatch):
    if splits:
        monkeypatch.setenv("LINEAR_EXT_CUDA_SPLIT_K", str(splits))
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)
    y = ops.linear_forward(x, w, b)
    assert y.shape == (M, N)
    if K == 0:
        assert torch.equal(y, b.expand(M, N))
    assert ops.linear_backward_input(dy, w).shape == (M, K)
    dw, db = ops.linear_backward_weight(dy, x, True)
    assert dw.shape == (N, K) and db.shape == (N,)
    if M == 0:
        assert torch.equal(db, torch.zeros_like(db)) and torch.equal(dw, torch.zeros_like(dw))
    # dW has no columns when K == 0, yet the bias grad (row sums of dYᵀ) must be produced.
    _, _, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_gemm_close(db, db_exact, db_mag, M)


# --- Determinism --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(300, 260, 700), (8, 2048, 4096), (64, 64, 8192)])
def test_bitwise_deterministic(M, N, K, dtype):
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)

    def run():
        return [ops.linear_forward(x, w, b), ops.linear_backward_input(dy, w), *ops.linear_backward_weight(dy, x, True)]

    first = run()
    for _ in range(3):
        for a, b_ in zip(first, run()):
            assert torch.equal(a, b_)


# --- TF32 ---------------------------------------------------------------------------------------------

def assert_tf32_close(actual, exact, magnitude):
    """TF32 rounds both inputs to 10 mantissa bits: each product is within ~2·2⁻¹¹ relative."""
    bound = 4e-3 * magnitude + 1e-6 * exact.abs() + 1e-30
    err = (actual.double() - exact).abs()
    assert bool((err <= bound).all()), f"max error {err.max().item():.3g}, bound there {bound.flatten()[err.argmax()]:.3g}"


@pytest.mark.parametrize("M,N,K", [(130, 129, 515), (5, 300, 1000), (64, 64, 4096)])
def test_tf32_follows_torch_flag(M, N, K):
    x, w, b, dy = (rand(M, K, dtype=torch.float32), rand(N, K, dtype=torch.float32), rand(N, dtype=torch.float32),
                   rand(M, N, dtype=torch.float32))
    torch.backends.cuda.matmul.allow_tf32 = False  # the autouse fixture restores the flag
    exact_y, mag_y = forward_reference(x, w, b)
    y_fp32 = ops.linear_forward(x, w, b)
    assert_gemm_close(y_fp32, exact_y, mag_y, K)  # TF32 off: full fp32 accuracy

    torch.backends.cuda.matmul.allow_tf32 = True
    y_tf32 = ops.linear_forward(x, w, b)
    assert_tf32_close(y_tf32, exact_y, mag_y)
    dx_exact, dx_mag = backward_input_reference(dy, w)
    assert_tf32_close(ops.linear_backward_input(dy, w), dx_exact, dx_mag)
    dw, db = ops.linear_backward_weight(dy, x, True)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_tf32_close(dw, dw_exact, dw_mag)
    assert_gemm_close(db, db_exact, db_mag, M)  # the bias grad is summed in fp32, never rounded to tf32
    if tensor_cores():
        assert not torch.equal(y_tf32, y_fp32), "allow_tf32=True should select the TF32 tensor-core kernel"
    torch.backends.cuda.matmul.allow_tf32 = False
    assert torch.equal(ops.linear_forward(x, w, b), y_fp32)


# --- CUDA graphs and streams --------------------------------------------------------------------------

GRAPH_SHAPES = [(129, 130, 200), (4, 1024, 2048), (64, 64, 4096)]  # large tiles, small-M + split-K, split-K


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", GRAPH_SHAPES)
def test_cuda_graph_capture_and_replay(M, N, K, dtype):
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)

    def run():
        return [ops.linear_forward(x, w, b), ops.linear_backward_input(dy, w), *ops.linear_backward_weight(dy, x, True)]

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up outside the capture, as torch recommends
        run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = run()
    for t in (x, w, b, dy):
        t.copy_(torch.randn_like(t))
    graph.replay()
    torch.cuda.synchronize()
    for got, want in zip(captured, run()):
        assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("M,N,K", GRAPH_SHAPES)
def test_runs_on_the_current_stream(M, N, K, dtype):
    """Inputs written late on a side stream are seen only if the kernels run on that stream."""
    x, w, b, dy = rand(M, K, dtype=dtype), rand(N, K, dtype=dtype), rand(N, dtype=dtype), rand(M, N, dtype=dtype)
    x_new, dy_new = torch.randn_like(x), torch.randn_like(dy)
    expected = [ops.linear_forward(x_new, w, b), ops.linear_backward_input(dy_new, w),
                *ops.linear_backward_weight(dy_new, x_new, True)]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # ~tens of ms: the copies below land long after a wrong-stream launch
        x.copy_(x_new)
        dy.copy_(dy_new)
        got = [ops.linear_forward(x, w, b), ops.linear_backward_input(dy, w), *ops.linear_backward_weight(dy, x, True)]
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


# --- Large offsets ------------------------------------------------------------------------------------

def test_int64_offsets():
    """An output of more than 2³¹ elements: row offsets m·ldc overflow 32-bit indexing."""
    M, N, K = 131_073, 16_385, 8
    free, _ = torch.cuda.mem_get_info()
    if free < 6 * 2**30:
        pytest.skip("needs ~5 GiB of free GPU memory")
    x, w, b = rand(M, K, dtype=torch.bfloat16), rand(N, K, dtype=torch.bfloat16), rand(N, dtype=torch.bfloat16)
    y = ops.linear_forward(x, w, b)
    rows = [0, M // 2, M - 1]
    exact, magnitude = forward_reference(x[rows], w, b)
    assert_gemm_close(y[rows], exact, magnitude, K)
    del y


# --- Gradients and opcheck on the GPU -----------------------------------------------------------------

@pytest.mark.parametrize("splits", [None, 3])
@pytest.mark.parametrize("shape", [(3, 5, 7), (4, 3, 1100), (2, 3, 130)])  # (4, 3, 1100): split-K
def test_gradcheck_float64(shape, splits, monkeypatch):
    if splits:
        monkeypatch.setenv("LINEAR_EXT_CUDA_SPLIT_K", str(splits))
    M, N, K = shape
    x = torch.randn(M, K, dtype=torch.float64, device=DEV, requires_grad=True)
    w = torch.randn(N, K, dtype=torch.float64, device=DEV, requires_grad=True)
    b = torch.randn(N, dtype=torch.float64, device=DEV, requires_grad=True)
    assert torch.autograd.gradcheck(functional.linear, (x, w, b))
    if M * K < 1000:
        assert torch.autograd.gradgradcheck(functional.linear, (x, w, b))


def opcheck_samples(dtype):
    def t(*shape, requires_grad=False):
        return torch.randn(*shape, dtype=dtype, device=DEV, requires_grad=requires_grad)

    fwd = torch.ops.linear_ext.linear_forward.default
    bwd_in = torch.ops.linear_ext.linear_backward_input.default
    bwd_w = torch.ops.linear_ext.linear_backward_weight.default
    for rg in (False, True):
        yield fwd, (t(130, 65, requires_grad=rg), t(70, 65, requires_grad=rg), t(70, requires_grad=rg))
        yield fwd, (t(4, 600, requires_grad=rg), t(260, 600, requires_grad=rg), None)  # small M
        yield fwd, (t(9, 130, requires_grad=rg)[:, 1:], t(33, 129, requires_grad=rg), t(33, requires_grad=rg))
        yield bwd_in, (t(17, 33), t(33, 70))
        yield bwd_w, (t(2000, 40), t(2000, 24), True)  # split-K with the bias grad
        yield bwd_w, (t(17, 33), t(17, 0), True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_opcheck_cuda(dtype):
    for op, args in opcheck_samples(dtype):
        torch.library.opcheck(op, args)


def test_module_training_step_matches_torch():
    """linear_ext.Linear against nn.Linear on the GPU in float64 (exact enough to compare closely)."""
    torch.manual_seed(1)
    ours = linear_ext.Linear(300, 70, device=DEV, dtype=torch.float64)
    ref = torch.nn.Linear(300, 70, device=DEV, dtype=torch.float64)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(33, 300, dtype=torch.float64, device=DEV)
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    for a, b in ((ours.weight.grad, ref.weight.grad), (ours.bias.grad, ref.bias.grad)):
        assert math.isclose(0, (a - b).abs().max().item(), abs_tol=1e-9)
