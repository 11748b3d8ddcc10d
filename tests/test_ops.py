"""Parity of the three ops with torch (float64 references) over shapes, layouts and dtypes."""

import pytest
import torch

from conftest import DEVICES, DTYPES
from linear_ext import _C, ops
from reference import assert_gemm_close, backward_input_reference, backward_weight_reference, forward_reference

SIZES = [1, 3, 17, 127, 129, 1031]
# Every size on every dimension (M, N, K), the others at awkward mid sizes, plus small corners.
SHAPES = sorted(
    {(s, 65, 127) for s in SIZES} | {(33, s, 127) for s in SIZES} | {(129, 17, s) for s in SIZES}
    | {(1, 1, 1), (3, 3, 3), (1, 1031, 1031), (1031, 1, 1031), (1031, 1031, 1)}
)


def rand(*shape, dtype, device):
    return torch.randn(*shape, dtype=dtype, device=device)


def check_forward(x, w, b):
    exact, magnitude = forward_reference(x, w, b)
    assert_gemm_close(ops.linear_forward(x, w, b), exact, magnitude, x.shape[1])


def check_backward_input(dy, w):
    exact, magnitude = backward_input_reference(dy, w)
    assert_gemm_close(ops.linear_backward_input(dy, w), exact, magnitude, dy.shape[1])


def check_backward_weight(dy, x, bias_grad=True):
    dw, db = ops.linear_backward_weight(dy, x, bias_grad)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_gemm_close(dw, dw_exact, dw_mag, dy.shape[0])
    if bias_grad:
        assert_gemm_close(db, db_exact, db_mag, dy.shape[0])
    else:
        assert db.shape == (0,)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_forward_matches_torch(M, N, K, dtype, device):
    check_forward(rand(M, K, dtype=dtype, device=device), rand(N, K, dtype=dtype, device=device),
                  rand(N, dtype=dtype, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_backward_input_matches_torch(M, N, K, dtype, device):
    check_backward_input(rand(M, N, dtype=dtype, device=device), rand(N, K, dtype=dtype, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_backward_weight_matches_torch(M, N, K, dtype, device):
    check_backward_weight(rand(M, N, dtype=dtype, device=device), rand(M, K, dtype=dtype, device=device))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_without_bias(dtype, device):
    check_forward(rand(37, 70, dtype=dtype, device=device), rand(45, 70, dtype=dtype, device=device), None)


@pytest.mark.parametrize("device", DEVICES)
def test_backward_weight_without_bias_grad(device):
    check_backward_weight(rand(37, 45, dtype=torch.float32, device=device),
                          rand(37, 70, dtype=torch.float32, device=device), bias_grad=False)


# --- Layouts: every operand as a non-contiguous, offset, transposed or broadcast view ---------------

def as_layout(t, layout):
    """A tensor equal to the 1-D or 2-D `t`, laid out in memory as `layout` says."""
    if layout == "contiguous":
        return t
    if layout == "transposed":  # column-major: the transpose of a contiguous tensor
        return t.t().contiguous().t() if t.dim() == 2 else t
    if layout == "strided":  # every other element of a wider tensor
        wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
        wide[..., ::2] = t
        return wide[..., ::2]
    if layout == "offset":  # a view starting 5 elements (unaligned) into its storage
        flat = torch.empty(t.numel() + 5, dtype=t.dtype, device=t.device)
        view = flat[5:].view(t.shape)
        view.copy_(t)
        assert view.storage_offset() == 5
        return view
    raise ValueError(layout)


LAYOUTS = ["contiguous", "transposed", "strided", "offset"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout_a", LAYOUTS)
@pytest.mark.parametrize("layout_b", LAYOUTS)
def test_all_ops_on_views(layout_a, layout_b, dtype, device):
    M, N, K = 41, 35, 67
    x = rand(M, K, dtype=dtype, device=device)
    w = rand(N, K, dtype=dtype, device=device)
    b = rand(N, dtype=dtype, device=device)
    dy = rand(M, N, dtype=dtype, device=device)
    check_forward(as_layout(x, layout_a), as_layout(w, layout_b), as_layout(b, layout_b))
    check_backward_input(as_layout(dy, layout_a), as_layout(w, layout_b))
    check_backward_weight(as_layout(dy, layout_a), as_layout(x, layout_b))


@pytest.mark.parametrize("device", DEVICES)
def test_broadcast_weight_and_bias(device):
    """Zero-stride (expanded) operands read the same element repeatedly."""
    x = rand(19, 23, dtype=torch.float32, device=device)
    w = rand(1, 23, dtype=torch.float32, device=device).expand(31, 23)
    b = rand(1, dtype=torch.float32, device=device).expand(31)
    check_forward(x, w, b)
    check_backward_input(rand(19, 31, dtype=torch.float32, device=device), w)
    check_backward_weight(rand(19, 31, dtype=torch.float32, device=device).expand(19, 31), x)


# --- Empty problems ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,N,K", [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0)])
def test_empty_dimensions(M, N, K, dtype, device):
    """An empty batch gives an empty output; K == 0 gives the bias (or zeros); sums over nothing are zero."""
    x, w, b = rand(M, K, dtype=dtype, device=device), rand(N, K, dtype=dtype, device=device), rand(N, dtype=dtype, device=device)
    dy = rand(M, N, dtype=dtype, device=device)
    y = ops.linear_forward(x, w, b)
    assert y.shape == (M, N)
    torch.testing.assert_close(y, b.expand(M, N) if K == 0 else y, rtol=0, atol=0)
    assert ops.linear_backward_input(dy, w).shape == (M, K)
    dw, db = ops.linear_backward_weight(dy, x, True)
    assert dw.shape == (N, K) and db.shape == (N,)
    check_forward(x, w, b)
    check_backward_input(dy, w)
    check_backward_weight(dy, x)


# --- Few rows: the CPU input grad and forward read dY / X in place and pack W panel by panel (cpu/gemm.cpp)

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("M", [17, 23, 64, 127, 128])
@pytest.mark.parametrize("N", [0, 37, 300, 800])
@pytest.mark.parametrize("K", [1, 15, 16, 17, 47, 48, 49, 97, 1000])
@pytest.mark.parametrize("layout", ["contiguous", "offset"])
def test_backward_input_in_place_edges(M, N, K, layout, dtype):
    """A last row sliver of fewer than MR rows (never read past dY's last row), a last column panel
    of fewer than NR columns (packed beforehand), unaligned operands, an empty sum (N == 0), and a
    sum over several KC steps (N == 800), each packing W's panels anew."""
    check_backward_input(as_layout(rand(M, N, dtype=dtype, device="cpu"), layout),
                         as_layout(rand(N, K, dtype=dtype, device="cpu"), layout))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("M", [17, 23, 64, 127, 128])
@pytest.mark.parametrize("N", [17, 37, 300, 512])
@pytest.mark.parametrize("K", [1, 7, 8, 9, 97, 800])
@pytest.mark.parametrize("layout", ["contiguous", "offset"])
def test_forward_in_place_edges(M, N, K, layout, dtype):
    """The forward at these sizes reads X in place and packs Wᵀ panel by panel: a last row sliver
    of fewer than MR rows, a last panel of fewer than NR columns, unaligned operands, and a sum over
    several KC steps (K == 800) with the bias added in the last."""
    check_forward(as_layout(rand(M, K, dtype=dtype, device="cpu"), layout),
                  as_layout(rand(N, K, dtype=dtype, device="cpu"), layout), rand(N, dtype=dtype, device="cpu"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [4, 5, 7, 8, 9, 16])
@pytest.mark.parametrize("K", [15, 2100, 4200])
@pytest.mark.parametrize("layout", ["contiguous", "offset"])
def test_forward_skinny_k_chunks(M, K, layout, dtype):
    """A few rows of X take the dot kernels: up to 3 rows (AVX2) or 8 (AVX-512) as one block, with
    3-6 rows of W per block; more in blocks of 4 rows, K then running in chunks (1024 float, 512
    double, 2048 16-bit with a 32 KiB L1): here one, or two or more ending in a partial chunk and a
    tail narrower than a register, with an edge block of W rows (N = 37)."""
    check_forward(as_layout(rand(M, K, dtype=dtype, device="cpu"), layout),
                  as_layout(rand(37, K, dtype=dtype, device="cpu"), layout), rand(37, dtype=dtype, device="cpu"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 15, 16, 17, 100])
@pytest.mark.parametrize("K", [2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65])
@pytest.mark.parametrize("layout", ["contiguous", "offset", "column slice"])
def test_forward_one_row_against_short_weight_rows(N, K, layout, dtype):
    """One row of X against rows of W of one or two register loads (a register holds 8 float64, 16
    float32 or 32 bfloat16 values with AVX-512, 8 float32 with AVX2): the dot kernels' short rows,
    the last load masked, a register of rows summed at once. N = 17 and 100 end in a partial block;
    K = 9, 17, 33 and 65 are one value past one or two registers; W also as the first K columns of a
    wider matrix (rows further apart than K). With and without a bias."""
    x = as_layout(rand(1, K, dtype=dtype, device="cpu"), "offset" if layout == "offset" else "contiguous")
    if layout == "column slice":
        w = rand(N, K + 3, dtype=dtype, device="cpu")[:, :K]
    else:
        w = as_layout(rand(N, K, dtype=dtype, device="cpu"), layout)
    check_forward(x, w, rand(N, dtype=dtype, device="cpu"))
    check_forward(x, w, None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("M", [1, 3, 5, 8, 12, 16])
def test_backward_input_streams_a_weight_larger_than_l3(M, layout, dtype):
    """1-16 rows of dY against a W that L3 cannot hold (cpu/gemm.cpp; a W that fits in L3 takes the
    packed loops above 8 rows). A row-major W streams through the row-streaming kernel, in blocks
    of up to 8 rows of dY (1, 3, 5, 8, 6 + 6, 8 + 8); with AVX-512 its sweeps then take 8 rows of W
    at a time with dY's values as broadcast operands (rowstream_operand_group), where float32 and
    float64 with W in cache hold them in registers. A column-major W goes in chunks of a few full
    rows (the skinny loops): row slivers of 6, 6 and 4 rows. Both with a 3-column vector tail and
    thousands of rows. A row-major W that streams is summed in two halves of its rows, added at the
    end (gemm.cpp: run_rowstream_halves): up to 8 rows of float32 and float64, the first 300 columns
    are also compared bit for bit with the sum of the two halves computed from their first 300
    columns alone, which stay in cache: each output sums its products in W's row order either way."""
    n = 1027
    rows = _C.cpu_l3_bytes() // (n * torch.finfo(dtype).bits // 8) + 3
    dy, w = rand(M, rows, dtype=dtype, device="cpu"), as_layout(rand(rows, n, dtype=dtype, device="cpu"), layout)
    check_backward_input(dy, w)
    if layout == "contiguous" and M <= 8 and dtype in (torch.float32, torch.float64):
        h = rows // 2
        halves = ops.linear_backward_input(dy[:, :h], w[:h, :300]) + ops.linear_backward_input(dy[:, h:], w[h:, :300])
        assert torch.equal(ops.linear_backward_input(dy, w)[:, :300], halves)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "offset", "padded rows"])
@pytest.mark.parametrize("M", [1, 4, 5, 6, 8, 12])
def test_forward_streams_a_weight_larger_than_l3(M, layout, dtype):
    """1-12 rows of X against a W that L3 cannot hold, in rows of at least 4 KiB: with AVX-512 the dot
    kernels take 8 rows of W per block for 32- and 64-bit dtypes at 1 row and 3 at 4-8 rows
    (dot_stream_nb_for_rows), 6 for a W in cache, and run 4 rows of X as a block of 5 whose last row
    repeats the fourth and is not stored (dot_stream_block_rows); N = rows + 37 ends in a partial
    block, K in a tail narrower than a register.
    From a multiply-add per byte of W on (float32 4 rows, float64 8), W's rows run in chunks of a few
    dozen, each chunk's pages touched a chunk ahead (page_walks.h): W's rows unaligned (offset), and
    apart by more than a row (padded rows: the first K columns of a wider matrix). Against float64,
    and bit for bit against the first 300 outputs computed from a W that stays in cache: each output
    is one accumulator's lanes summed in k order, whatever the block of W rows or the chunk."""
    elem = torch.finfo(dtype).bits // 8
    K = 4096 // elem + 7
    rows = _C.cpu_l3_bytes() // (K * elem) + 37
    x = as_layout(rand(M, K, dtype=dtype, device="cpu"), "offset" if layout == "offset" else "contiguous")
    if layout == "padded rows":
        w = rand(rows, K + 19, dtype=dtype, device="cpu")[:, :K]
    else:
        w = as_layout(rand(rows, K, dtype=dtype, device="cpu"), layout)
    b = rand(rows, dtype=dtype, device="cpu")
    check_forward(x, w, b)
    assert torch.equal(ops.linear_forward(x, w, b)[:, :300], ops.linear_forward(x, w[:300], b[:300]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layouts", [("contiguous", "contiguous"), ("transposed", "column slice")])
@pytest.mark.parametrize("M", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("N", [1, 3, 8, 10, 16, 17, 33])
def test_backward_input_narrow_output(M, N, layouts, dtype):
    """dX with few columns (a layer with few input features) at 1-8 rows of dY: the row-streaming
    kernel keeps up to four vectors of each output row in registers for the whole of K, rows in
    blocks of up to 4 (1, 2, 3, 4 + 1, 4 + 4; 2 at a time for 3-4 vectors), K dealt round-robin to
    up to four sets of accumulators when a block has few; K = 4099 ends mid-round. A last vector
    narrower than a register is loaded masked, reading nothing past the row: W as the first N
    columns of a wider matrix, and dY transposed. Past four vectors (N = 33 in AVX2 float, 17 in
    float64) the wide sweeps run, with the same masked tail."""
    dy_layout, w_layout = layouts
    K = 4099
    w = rand(K, N + (5 if w_layout == "column slice" else 0), dtype=dtype, device="cpu")[:, :N]
    check_backward_input(as_layout(rand(M, K, dtype=dtype, device="cpu"), dy_layout), w)


def at_page_offset(t, anchor, offset):
    """A copy of the 2-D `t` that starts `offset` bytes past `anchor`'s data, mod 4 KiB."""
    elem = t.element_size()
    flat = torch.empty(t.numel() + 4096 // elem, dtype=t.dtype)
    start = (offset - (flat.data_ptr() - anchor.data_ptr())) % 4096 // elem
    view = flat[start:start + t.numel()].view(t.shape)
    view.copy_(t)
    assert (view.data_ptr() - anchor.data_ptr()) % 4096 == offset
    return view


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slice_x", [False, True], ids=["rows a page apart", "column slice"])
@pytest.mark.parametrize("M", [3, 8])
def test_forward_with_x_at_every_offset_from_w(M, slice_x, dtype):
    """Rows of X that lie within 768 bytes of W, mod 4 KiB, are copied to scratch half a page from W
    before the dot kernels run (gemm.cpp: run_dot). X at each 64-byte offset from W in a page, in
    rows a page apart or as the first K columns of wider rows: against float64, and bit for bit the
    same at every offset (the copy leaves the sums' order alone)."""
    K = 4096 // torch.tensor([], dtype=dtype).element_size()
    w, b = rand(67, K, dtype=dtype, device="cpu"), rand(67, dtype=dtype, device="cpu")
    x_rows = rand(M, K + 16 if slice_x else K, dtype=dtype, device="cpu")
    first = None
    for offset in range(0, 4096, 64):
        x = at_page_offset(x_rows, w, offset)[:, :K]
        check_forward(x, w, b)
        y = ops.linear_forward(x, w, b)
        first = y if first is None else first
        assert torch.equal(y, first), f"X {offset} bytes past W (mod 4 KiB)"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [3, 8])
def test_backward_input_with_w_at_every_offset_in_a_page(M, dtype):
    """The input grad's row-streaming sums go to scratch placed half a page from W's rows (mod 4 KiB,
    gemm.cpp: run_rowstream), at an offset that depends on where W lies. W at each 64-byte offset
    in a page, rows a page wide: against float64, and bit for bit the same at every offset."""
    K = 4096 // torch.tensor([], dtype=dtype).element_size()
    dy, w_rows = rand(M, 67, dtype=dtype, device="cpu"), rand(67, K, dtype=dtype, device="cpu")
    first = None
    for offset in range(0, 4096, 64):
        w = at_page_offset(w_rows, dy, offset)
        check_backward_input(dy, w)
        dx = ops.linear_backward_input(dy, w)
        first = dx if first is None else first
        assert torch.equal(dx, first), f"W {offset} bytes past dY (mod 4 KiB)"


# --- Determinism -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_results_identical_across_thread_counts(num_threads, dtype):
    x, w, b = rand(300, 700, dtype=dtype, device="cpu"), rand(260, 700, dtype=dtype, device="cpu"), rand(260, dtype=dtype, device="cpu")
    dy = rand(300, 260, dtype=dtype, device="cpu")
    # 2100 rows: on 2 threads each block of rows spans two row panels (of at most 1024 rows).
    tall_x, narrow_w = rand(2100, 40, dtype=dtype, device="cpu"), rand(24, 40, dtype=dtype, device="cpu")

    def run():
        # dy[:100]: few enough rows for the input grad to read its operands in place; dy[:3] against
        # 10 columns of w: the row-streaming kernel's narrow outputs, with partial sums; x[:5] and
        # x[:12]: the dot kernels, one block of rows and blocks walking k in chunks.
        return [ops.linear_forward(x, w, b), ops.linear_backward_input(dy, w), ops.linear_backward_input(dy[:100], w),
                ops.linear_backward_input(dy[:3], w[:, :10]), ops.linear_forward(x[:5], w, b), ops.linear_forward(x[:12], w, b),
                *ops.linear_backward_weight(dy, x, True), ops.linear_forward(tall_x, narrow_w, None)]

    num_threads(1)
    single = run()
    num_threads(2)
    for a, b_ in zip(single, run()):
        assert torch.equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [1, 6, 16])
@pytest.mark.parametrize("n", [40, 1027])
def test_backward_input_streaming_weight_identical_across_thread_counts(num_threads, M, n, dtype):
    """dY·W with a W too large for L3: its two halves of rows are summed apart and added, on 2 threads
    one half each; on 3, each half's columns are split as well (units of 128 columns, the last
    taking the rest: 131 of n = 1027), one thread taking the end of one half and the start of the
    other. Narrow outputs (n = 40) keep their sums in registers. The same bits on 1, 2 and 3 threads,
    and close to float64."""
    rows = _C.cpu_l3_bytes() // (n * 4) + 3  # its float sums, at least L3's bytes
    dy, w = rand(M, rows, dtype=dtype, device="cpu"), rand(rows, n, dtype=dtype, device="cpu")
    check_backward_input(dy, w)
    num_threads(1)
    single = ops.linear_backward_input(dy, w)
    for threads in (2, 3):
        num_threads(threads)
        assert torch.equal(ops.linear_backward_input(dy, w), single), f"{threads} threads"


# --- Rounding of 16-bit outputs ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype,span", [(torch.bfloat16, 8), (torch.float16, 40)])
def test_16bit_outputs_round_to_nearest_even(dtype, span):
    """Integer operands whose every partial sum is an exact float32 integer, too wide for the 16-bit
    mantissa: each output must be the exact sum rounded once to nearest, ties to even, as torch
    rounds a float32 (so bit for bit, in any summation order). The packed loops' tile store (16
    rows: the weight grad's 4096 × 300 output) and the forward's."""
    gen = torch.Generator().manual_seed(9)
    ints = lambda *shape: torch.randint(-span, span + 1, shape, generator=gen).to(dtype)  # noqa: E731
    dy, x, w = ints(16, 4096), ints(16, 300), ints(37, 300)
    dw, _ = ops.linear_backward_weight(dy, x, False)
    assert torch.equal(dw, (dy.double().t() @ x.double()).float().to(dtype))
    x = ints(200, 300)
    assert torch.equal(ops.linear_forward(x, w, None), (x.double() @ w.double().t()).float().to(dtype))
