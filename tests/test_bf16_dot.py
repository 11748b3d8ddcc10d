"""bfloat16 GEMMs on AVX512_BF16 dot products (cpu/kernels/isa_avx512_bf16.cpp), where the CPU has
them: every k-step pair packer, the pair micro-kernel's edges, the skinny forward's pair dot
kernels and the input grad's pair row streaming, against float64; their documented subnormal handling; and the exact path that
LINEAR_EXT_CPU_BF16_DOT=0 restores."""

import os
import re
from pathlib import Path

import pytest
import torch

import linear_ext
from conftest import run_python
from linear_ext import ops
from reference import assert_all_ops_close, assert_gemm_close, backward_input_reference, forward_reference

pytestmark = pytest.mark.skipif(not linear_ext._C.cpu_bf16_dot(), reason="bfloat16 dot-product kernels not in use")

BF16 = torch.bfloat16


def rand(*shape):
    return torch.randn(*shape, dtype=BF16)


def view_of(t, layout):
    """`t` laid out as: contiguous; transposed (column-major); offset (one element into its storage:
    the rows' 32-bit pairs misaligned); wide (the first columns of a matrix twice as wide: an even
    row stride whatever the width)."""
    if layout == "contiguous":
        return t
    if layout == "transposed":
        return t.t().contiguous().t()
    if layout == "offset":
        flat = torch.empty(t.numel() + 1, dtype=t.dtype)
        flat[1:].copy_(t.flatten())
        return flat[1:].view(t.shape)
    wide = torch.zeros(t.shape[0], 2 * t.shape[1], dtype=t.dtype)
    wide[:, : t.shape[1]] = t
    return wide[:, : t.shape[1]]


# Rows and columns past the skinny kernels (17+), K odd and even around the pairs, the packers'
# 8-value blocks and a KC step (K = 401 spans two, ending odd); layouts that take each packer path:
# words (k contiguous, even stride), row pairs (k across rows) and value by value (odd strides).
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "offset", "wide"])
@pytest.mark.parametrize("M,N,K", [(17, 19, 1), (23, 17, 2), (40, 50, 3), (33, 97, 16), (19, 49, 17), (64, 48, 128),
                                   (37, 45, 401), (129, 65, 784)])
def test_all_ops_match_float64(M, N, K, layout):
    assert_all_ops_close(view_of(rand(M, K), layout), view_of(rand(N, K), layout), rand(N), view_of(rand(M, N), layout))


# The skinny forward's dot kernels on the same instruction, reading rows of X and W as pairs where
# they lie: at most 16 rows of X past the deepest crossover to the packed loops (K > 750), or at
# most 16 outputs at any depth; one row block of X (1-8 rows) or several (9-16, k in chunks, and
# 40 rows); K odd (the last pair half empty), below one 32-value load, and past whole loads.
@pytest.mark.parametrize("layout", ["contiguous", "offset", "wide"])
@pytest.mark.parametrize("M,N,K", [(1, 40, 1025), (3, 33, 1055), (8, 20, 1056), (9, 17, 1500), (16, 24, 2049),
                                   (1, 16, 1), (5, 7, 31), (2, 3, 64), (17, 9, 33), (40, 5, 77)])
def test_forward_dot_products_match_float64(M, N, K, layout):
    x, w, b = view_of(rand(M, K), layout), view_of(rand(N, K), layout), rand(N)
    exact, magnitude = forward_reference(x, w, b)
    assert_gemm_close(ops.linear_forward(x, w, b), exact, magnitude, K)


# The input grad's row streaming on pairs (dX = dY·W, at most 8 rows of dY, or 16 when W streams
# from memory): W's rows two at a time, so N odd leaves the last one unpaired, and a sweep takes 4
# pairs (up to 4 rows of dY) or 2 (more), so N = 1-5 fills part of one and N = 19 ends in one;
# K (the output width) past the narrow outputs (64), with a partial last vector; 12 rows in two
# blocks over a W too large to stay in cache.
@pytest.mark.parametrize("layout", ["contiguous", "offset", "wide"])
@pytest.mark.parametrize("M,N,K", [(1, 1, 65), (1, 2, 100), (3, 3, 129), (2, 5, 1000), (4, 19, 300), (8, 64, 80),
                                   (5, 333, 200), (7, 1031, 257), (12, 4097, 1030)])
def test_input_grad_row_streaming_matches_float64(M, N, K, layout):
    dy, w = view_of(rand(M, N), layout), view_of(rand(N, K), layout)
    exact, magnitude = backward_input_reference(dy, w)
    assert_gemm_close(ops.linear_backward_input(dy, w), exact, magnitude, N)


def test_input_grad_subnormal_inputs_read_as_zero():
    """The row streaming on pairs reads subnormal dY as zero too."""
    tiny = torch.finfo(BF16).smallest_normal * torch.finfo(BF16).eps
    dy, w = (torch.randint(1, 4, (3, 40)) * tiny).to(BF16), rand(40, 100)
    assert torch.equal(ops.linear_backward_input(dy, w), torch.zeros(3, 100, dtype=BF16))
    dy[:, 0] = 1.0
    assert torch.equal(ops.linear_backward_input(dy, w), w[0].expand(3, 100))


@pytest.mark.parametrize("M,N,K", [(37, 45, 40), (2, 9, 40), (3, 40, 1024)])
def test_subnormal_inputs_read_as_zero(M, N, K):
    """vdpbf16ps reads subnormal inputs as zero (as torch's oneDNN does on these CPUs), in the packed
    loops and in the skinny forward's dot kernels: x wholly subnormal gives the bias alone, exactly;
    normal values beside them still count."""
    tiny = torch.finfo(BF16).smallest_normal * torch.finfo(BF16).eps
    x = (torch.randint(1, 4, (M, K)) * tiny).to(BF16)
    w, b = rand(N, K), rand(N)
    assert torch.equal(ops.linear_forward(x, w, b), b.expand(M, N))
    x[:, 0] = 1.0
    assert torch.equal(ops.linear_forward(x, w, b), (w[:, 0].float() + b.float()).to(BF16).expand(M, N))


def test_exact_subnormals_with_the_dot_kernels_off():
    """LINEAR_EXT_CPU_BF16_DOT=0 keeps bfloat16 on the float32 kernels, where test_special_values'
    subnormal tests hold for bfloat16 too: run them that way, and require that they ran."""
    tests = Path(__file__).parent
    code = ("import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', 'subnormal and dtype2', "
            f"{str(tests / 'test_special_values.py')!r}]))")
    done = run_python(code, env={**os.environ, "LINEAR_EXT_CPU_BF16_DOT": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^4 passed", done.stdout, re.M) and "skipped" not in done.stdout, done.stdout
