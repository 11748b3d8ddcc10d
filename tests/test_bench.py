"""The benchmark CLI runs end to end and writes its JSON and plot (speed is not tested here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def test_bench_rows_carry_bandwidth_share_where_the_weight_stream_bounds_them(num_threads):
    """%bw (ours_gbs over the measured read bandwidth) on the ops that read W at batch ≤ 16 only."""
    sys.path.insert(0, str(BENCH.parent))
    import bench_linear

    num_threads(1)
    cases = [("forward", 3, 5, 7), ("backward_input", 3, 5, 7), ("backward_weight", 3, 5, 7), ("forward", 17, 5, 7)]
    rows = bench_linear.run_suite(cases, ["float32"], [1], torch.device("cpu"), 0.01, None, {1: 10.0})
    assert [r.pct_bw is not None for r in rows] == [True, True, False, False]
    for r in rows[:2]:
        assert r.pct_bw == pytest.approx(100 * r.ours_gbs / 10.0)
        assert "%" in bench_linear.format_row(r).split()[-1]
