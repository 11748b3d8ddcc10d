"""Bad input raises a clear exception naming the shapes/dtypes/devices involved, never a crash."""

import os

import pytest
import torch

from conftest import run_python

from linear_ext import functional, ops

forward = torch.ops.linear_ext.linear_forward.default
backward_input = torch.ops.linear_ext.linear_backward_input.default
backward_weight = torch.ops.linear_ext.linear_backward_weight.default

# (callable, args, exception type, message pattern)
CASES = {
    "in_features mismatch": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(3, 6, device=d), None),
                             RuntimeError, r"input of shape \[4, 5\] has 5 features but weight of shape \[3, 6\]"),
    "bias wrong length": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(3, 5, device=d), torch.randn(4, device=d)),
                          RuntimeError, r"bias must have shape \[3\].*got \[4\]"),
    "bias 2-D": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(3, 5, device=d), torch.randn(1, 3, device=d)),
                 RuntimeError, r"bias must have shape \[3\].*got \[1, 3\]"),
    "dtype mismatch": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(3, 5, device=d, dtype=torch.float64), None),
                       TypeError, r"input \(torch.float32\) and weight \(torch.float64\) must have the same dtype"),
    "bias dtype mismatch": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(3, 5, device=d), torch.randn(3, device=d, dtype=torch.float16)),
                            TypeError, r"and bias .* must have the same dtype"),
    "integer dtype": (forward, lambda d: (torch.ones(4, 5, dtype=torch.int32, device=d), torch.ones(3, 5, dtype=torch.int32, device=d), None),
                      TypeError, r"input has dtype torch.int32; supported: float32, float64, bfloat16, float16"),
    "complex dtype": (forward, lambda d: (torch.ones(4, 5, dtype=torch.complex64, device=d), torch.ones(3, 5, dtype=torch.complex64, device=d), None),
                      TypeError, r"input has dtype torch.complex64"),
    "3-D weight": (forward, lambda d: (torch.randn(4, 5, device=d), torch.randn(2, 3, 5, device=d), None),
                   RuntimeError, r"weight must be 2-D, got shape \[2, 3, 5\]"),
    "1-D op input": (forward, lambda d: (torch.randn(5, device=d), torch.randn(3, 5, device=d), None),
                     RuntimeError, r"input must be 2-D, got shape \[5\]"),
    "grad_out/weight mismatch": (backward_input, lambda d: (torch.randn(4, 3, device=d), torch.randn(2, 5, device=d)),
                                 RuntimeError, r"grad_out of shape \[4, 3\] has 3 features but weight of shape \[2, 5\]"),
    "grad_out/input batch mismatch": (backward_weight, lambda d: (torch.randn(4, 3, device=d), torch.randn(5, 2, device=d), True),
                                      RuntimeError, r"grad_out of shape \[4, 3\] and input of shape \[5, 2\] must have the same number of rows"),
    "backward dtype mismatch": (backward_weight, lambda d: (torch.randn(4, 3, device=d), torch.randn(4, 2, device=d, dtype=torch.bfloat16), False),
                                TypeError, r"grad_out \(.*\) and input \(.*\) must have the same dtype"),
}


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("case", list(CASES))
def test_op_rejects_bad_input(case, device):
    """The real kernels (cpu) and the fake kernels (meta) raise the same errors."""
    op, make_args, error, pattern = CASES[case]
    with pytest.raises(error, match=pattern):
        op(*make_args(device))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_mismatch():
    with pytest.raises(RuntimeError, match=r"input is on cpu but weight is on cuda"):
        forward(torch.randn(4, 5), torch.randn(3, 5, device="cuda"), None)


def test_device_mismatch_with_meta():
    with pytest.raises(RuntimeError, match=r"input is on cpu but weight is on meta"):
        forward(torch.randn(4, 5), torch.randn(3, 5, device="meta"), None)


def test_functional_rejects_0d_input():
    with pytest.raises(RuntimeError, match="at least 1 dimension, got a 0-d tensor"):
        functional.linear(torch.tensor(1.0), torch.randn(3, 1))


def test_functional_names_the_original_nd_shape():
    with pytest.raises(RuntimeError, match=r"input of shape \[2, 3, 5\] has 5 features but weight of shape \[4, 6\]"):
        functional.linear(torch.randn(2, 3, 5), torch.randn(4, 6))


def test_cpu_isa_override_is_validated():
    """An unknown LINEAR_EXT_CPU_ISA is an error, not a silent fallback (checked in a fresh process)."""
    code = "import torch, linear_ext; linear_ext.ops.linear_forward(torch.ones(2, 2), torch.ones(2, 2), None)"
    result = run_python(code, env={**os.environ, "LINEAR_EXT_CPU_ISA": "sse9"})
    assert result.returncode != 0 and "LINEAR_EXT_CPU_ISA must be one of generic, avx2, avx512" in result.stderr


def test_ops_wrappers_match_the_raw_ops():
    x, w = torch.randn(3, 4), torch.randn(2, 4)
    assert torch.equal(ops.linear_forward(x, w, None), forward(x, w, None))
