"""The benchmark CLI runs end to end and writes its JSON and plot (speed is not tested here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_linear.py"


def test_bench_cli_writes_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out, plot = tmp_path / "rows.json", tmp_path / "plot.png"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--suite", "smoke", "--threads", "1", "--dtypes", "float32,bfloat16",
         "--budget", "0.01", "--json", str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 * 7 and {r["op"] for r in rows} == {"forward", "backward_input", "backward_weight", "layer_step"}
    assert all(r["ours_ms"] > 0 and r["torch_ms"] > 0 and r["ratio"] > 0 and r["paired"] > 0 for r in rows)
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
