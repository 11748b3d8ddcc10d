"""Large CPU outputs are faulted in as transparent huge pages (csrc/cpu/huge_pages.h), where Linux
grants them on request: a fresh 64 MiB weight grad otherwise costs 16K page faults."""

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
def test_large_weight_grad_is_on_huge_pages():
    grad_out, input = torch.randn(3, 4096), torch.randn(3, 4096)
    grad_weight, grad_bias = ops.linear_backward_weight(grad_out, input, True)  # 64 MiB
    # The advice covers the whole 2 MiB pages inside the tensor (its unaligned ends are mapped apart).
    middle = grad_weight.data_ptr() + grad_weight.nbytes // 2
    assert _anon_huge_kib(middle) > 0
    expected = grad_out.double().t() @ input.double()
    torch.testing.assert_close(grad_weight.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad_bias, grad_out.sum(0))
