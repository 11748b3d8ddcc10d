"""Large CPU outputs are faulted in as transparent huge pages (csrc/cpu/huge_pages.h), where Linux
grants them on request: a fresh 64 MiB weight grad otherwise costs 16K page faults."""

import ctypes
import re
from pathlib import Path

import pytest
import torch

from linear_ext import ops

_THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_mode():
    try:
        return re.search(r"\[(\w+)\]", _THP_SETTING.read_text()).group(1)
    except (OSError, AttributeError):
        return None


def _give_freed_heap_back():
    """glibc serves a request from heap memory freed earlier when it has enough, whose pages are still
    mapped in 4 KiB: about one run in ten, the 64 MiB output below lay inside [heap], all of it
    resident, with the advice given and no huge page. malloc_trim returns such memory to the OS, so
    that the output is fresh memory (no failure in 30 runs since)."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    if trim:
        trim(0)


def _anon_huge_kib(address):
    """AnonHugePages of the mapping holding address, from /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        span = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
        if span:
            inside = int(span[1], 16) <= address < int(span[2], 16)
        elif inside and line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(_thp_mode() not in ("madvise", "always"), reason="transparent huge pages are off")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_large_weight_grad_is_on_huge_pages(dtype, threads):
    """The output's huge pages are faulted in before the GEMM, a zero byte written to each: the
    values must still be the GEMM's everywhere, on any thread count."""
    # A 64 MiB grad: past glibc's largest mmap threshold (32 MiB), so a fresh mapping unless freed heap
    # memory can hold it.
    in_features = (64 << 20) // (4096 * dtype.itemsize)
    grad_out, input = torch.randn(3, 4096, dtype=dtype), torch.randn(3, in_features, dtype=dtype)
    _give_freed_heap_back()
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        grad_weight, grad_bias = ops.linear_backward_weight(grad_out, input, True)
    finally:
        torch.set_num_threads(saved)
    # The advice covers the whole 2 MiB pages inside the tensor (its unaligned ends are mapped apart).
    middle = grad_weight.data_ptr() + grad_weight.nbytes // 2
    assert _anon_huge_kib(middle) > 0
    # float32 sums of 3 products, rounded once to the output's dtype.
    tol = 1e-5 if dtype == torch.float32 else 2.0**-8
    expected = grad_out.double().t() @ input.double()
    torch.testing.assert_close(grad_weight.double(), expected, rtol=tol, atol=1e-5)
    torch.testing.assert_close(grad_bias.double(), grad_out.double().sum(0), rtol=tol, atol=1e-5)
