"""Float64 references for the three ops and the dtype-aware tolerance they are compared with."""

import math

import torch
import torch.nn.functional as F

from linear_ext import ops

# Per-dtype error model of a K-term dot product: |ours − exact| ≤ ACC·√K·Σ|aᵢbᵢ| + OUT·|exact|.
# ACC is the accumulation type's unit round-off with a safety factor of ~8 (fp32 accumulation for
# the 16-bit types); OUT is one unit in the last place of the output type (it is rounded once),
# with the subnormal spacing as its floor.
_ACC = {torch.float64: 1e-15, torch.float32: 1e-6, torch.bfloat16: 1e-6, torch.float16: 1e-6}
_OUT = {torch.float64: 0.0, torch.float32: 2.0**-23, torch.bfloat16: 2.0**-7, torch.float16: 2.0**-10}


def assert_gemm_close(actual, exact, magnitude, k, equal_terms=False):
    """actual (any dtype) against the float64 `exact`, where `magnitude` is the same product on |operands|.

    equal_terms: both operands are broadcast along k, so every product in a sum is the same value.
    Their rounding errors then all lean one way and grow with K (the worst case of a recursive sum,
    Higham's γ_K), where independent ones grow with √K: 31 × 63 outputs of 115 equal float64
    products were ~100 ulps from torch's."""
    assert actual.shape == exact.shape, f"shape {tuple(actual.shape)} != expected {tuple(exact.shape)}"
    assert actual.device == exact.device
    dtype = actual.dtype
    error = (actual.double() - exact).abs()
    finfo = torch.finfo(dtype)
    ulp_floor = finfo.smallest_normal * finfo.eps
    growth = max(k, 1) if equal_terms else math.sqrt(max(k, 1))
    bound = _ACC[dtype] * growth * magnitude + _OUT[dtype] * exact.abs() + ulp_floor
    bad = error > bound
    if bad.any():
        idx = tuple(i[0].item() for i in bad.nonzero(as_tuple=True))
        raise AssertionError(
            f"{int(bad.sum())} of {actual.numel()} elements exceed the {dtype} tolerance (K={k}); first at {idx}: "
            f"got {actual[idx].item()}, exact {exact[idx].item()}, bound {bound[idx].item():.3g}"
        )


def forward_reference(x, w, b):
    """(exact, magnitude) of x·wᵀ + b in float64."""
    bias = None if b is None else b.double()
    exact = F.linear(x.double(), w.double(), bias)
    magnitude = F.linear(x.double().abs(), w.double().abs(), None if b is None else bias.abs())
    return exact, magnitude


def backward_input_reference(dy, w):
    return torch.mm(dy.double(), w.double()), torch.mm(dy.double().abs(), w.double().abs())


def backward_weight_reference(dy, x):
    dw = torch.mm(dy.double().t(), x.double())
    dw_mag = torch.mm(dy.double().abs().t(), x.double().abs())
    return dw, dw_mag, dy.double().sum(0), dy.double().abs().sum(0)


def assert_all_ops_close(x, w, b, dy):
    """linear_ext's forward (+bias), input grad and weight grad (+bias grad) of one layer against float64."""
    exact, magnitude = forward_reference(x, w, b)
    assert_gemm_close(ops.linear_forward(x, w, b), exact, magnitude, x.shape[1])
    exact, magnitude = backward_input_reference(dy, w)
    assert_gemm_close(ops.linear_backward_input(dy, w), exact, magnitude, dy.shape[1])
    dw, db = ops.linear_backward_weight(dy, x, True)
    dw_exact, dw_mag, db_exact, db_mag = backward_weight_reference(dy, x)
    assert_gemm_close(dw, dw_exact, dw_mag, dy.shape[0])
    assert_gemm_close(db, db_exact, db_mag, dy.shape[0])
