"""Shared test fixtures: devices (CUDA cases skip cleanly without a GPU), seeds, references."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import linear_ext

_CUDA_SKIP_REASON = (
    "no CUDA device" if not torch.cuda.is_available()
    else None if linear_ext.WITH_CUDA
    else "linear_ext was built without CUDA kernels"
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(_CUDA_SKIP_REASON is not None,
                                                                reason=str(_CUDA_SKIP_REASON)))]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


@pytest.fixture(autouse=True)
def _seed_and_precision():
    """Fixed seeds, and exact fp32 references on CUDA (no TF32 in torch's own matmuls)."""
    torch.manual_seed(0)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32 = tf32


@pytest.fixture
def num_threads():
    """Sets torch's CPU thread count for one test and restores it afterwards."""
    saved = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(saved)


def run_python(code, env=None):
    """Runs `python -c code` in a fresh interpreter. The working directory is the tests folder, so
    that `import linear_ext` finds the installed package rather than the source tree beside it."""
    return subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, env=env, capture_output=True,
                          text=True)
