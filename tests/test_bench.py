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


def bench_module():
    sys.path.insert(0, str(BENCH.parent))
    import bench_linear

    return bench_linear


def test_l3_size_is_the_one_linux_reports_for_this_core():
    """The L3 size the kernels block for (and the bench evicts by): sysfs's, where it has one."""
    bench_linear = bench_module()
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        pytest.skip("no L3 size in sysfs")
    assert size.endswith("K") and bench_linear.machine_peaks.l3_cache_bytes() == int(size[:-1]) << 10


def test_rows_that_stream_a_weight_are_those_at_batch_16_or_less_with_w_as_large_as_l3():
    bench_linear = bench_module()
    l3 = bench_linear.machine_peaks.l3_cache_bytes()
    cpu, f32, bf16 = torch.device("cpu"), torch.float32, torch.bfloat16
    n = l3 // (4 * 1024)  # 1024 × n float32 values: exactly L3's bytes
    assert bench_linear.streams_weight("forward", 16, 1024, n, f32, cpu)
    assert bench_linear.streams_weight("backward_input", 1, n, 1024, f32, cpu)
    assert not bench_linear.streams_weight("forward", 16, 1024, n - 1, f32, cpu)
    assert not bench_linear.streams_weight("forward", 16, 1024, n, bf16, cpu)  # half the bytes
    assert not bench_linear.streams_weight("forward", 17, 1024, n, f32, cpu)
    assert not bench_linear.streams_weight("backward_weight", 1, 1024, n, f32, cpu)
    assert not bench_linear.streams_weight("forward", 1, 1024, n, f32, torch.device("meta"))


def test_timer_runs_before_ahead_of_every_timed_call():
    bench_linear = bench_module()
    calls = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b")]
    times = bench_linear.Timer(torch.device("cpu")).run(fns, 0.0, min_reps=5, before=lambda: calls.append("evict"))
    assert [len(t) for t in times] == [5, 5]
    assert calls[0::2] == ["evict"] * (len(calls) // 2) and "evict" not in calls[1::2]
    assert calls[1::2].count("a") == calls[1::2].count("b") == 2 + 1 + 5  # warm-up, probe, reps


@pytest.mark.parametrize("words", [0, 1, 15, 16, 127, 128, 129, 8 * 16 * 37 + 5, 1 << 20])
def test_the_reference_read_loads_every_word_once(words):
    """read_seconds's loop (eight streams in step, a line each, and the words after the last whole
    line of each stream) folds to the XOR of all the words: none skipped, none read twice."""
    np = pytest.importorskip("numpy")
    bench_linear = bench_module()
    if not bench_linear.machine_peaks.can_time_reads():
        pytest.skip("the pure reads are AVX2 code")
    words_of = torch.randint(-(1 << 31), 1 << 31, (words + 1,), dtype=torch.int64).to(torch.int32)[1:]  # unaligned
    expected = int(np.bitwise_xor.reduce(words_of.numpy().view(np.uint32), initial=np.uint32(0)))
    assert bench_linear.machine_peaks.read_xor(words_of) == expected


def test_bench_rows_carry_bandwidth_share_where_the_weight_stream_bounds_them(num_threads):
    """%bw (our bytes per second over those of a pure read of W in the same reps, median of each rep's
    ratio) and the read's GB/s on the rows that stream a W as large as L3 at batch ≤ 16, and only
    there."""
    bench_linear = bench_module()
    if not bench_linear.machine_peaks.can_time_reads():
        pytest.skip("the pure reads are AVX2 code")
    num_threads(1)
    k = bench_linear.machine_peaks.l3_cache_bytes() // (4 * 1024) + 3
    cases = [("forward", 3, 1024, k), ("backward_input", 3, 1024, k), ("backward_weight", 3, 1024, k),
             ("forward", 17, 1024, k), ("forward", 3, 5, 7)]
    rows = bench_linear.run_suite(cases, ["float32"], [1], torch.device("cpu"), 0.01, None, time_reads=True)
    assert [r.pct_bw is not None for r in rows] == [True, True, False, False, False]
    assert [r.read_gbs is not None for r in rows] == [True, True, False, False, False]
    for r in rows[:2]:
        # Memory moves at most a few hundred GB/s on a CPU; a mix-up of bytes and elements, or of
        # which time divides which, lands far outside.
        assert 0.5 < r.read_gbs < 1000 and 10 < r.pct_bw < 1000
        assert r.pct_bw == pytest.approx(100 * r.ours_gbs / r.read_gbs, rel=0.5)
        cells = bench_linear.format_row(r).split()
        assert cells[-1] == f"{r.pct_bw:.1f}%" and cells[-2] == f"{r.read_gbs:.1f}"
    plain = bench_linear.run_suite(cases[:1], ["float32"], [1], torch.device("cpu"), 0.01, None)
    assert plain[0].pct_bw is None and plain[0].read_gbs is None
