"""Microbenchmarks of linear_ext against torch, measured in the same run.

Every row times our op and torch's equivalent ("kernel 0") interleaved rep by rep, after checking
that both give the same result, and reports medians, GFLOP/s and the speed ratio (torch time / our
time: > 1 means we are faster), as the ratio of the two medians and as the median of each rep's
pair ("paired": the two runs of a rep are adjacent in time, so a co-tenant's load that drifts
over seconds weighs on both). CUDA timings use CUDA events with L2 flushed before each rep. On the
CPU, a row whose op streams a W at least as large as L3 at batch ≤ 16 (the memory-bound case of
decoding, where each layer's weights come from memory) evicts the caches before every timed call.

    python bench/bench_linear.py                      # quick CPU summary
    python bench/bench_linear.py --suite cpu-targets --threads 1,2 --json results.json
    python bench/bench_linear.py --device cuda --suite cuda-targets
"""

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import linear_ext
from linear_ext import ops

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_peaks  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "tf32": torch.float32}  # tf32: float32 with torch.backends.cuda.matmul.allow_tf32 on (CUDA only)
OPS = ("forward", "backward_input", "backward_weight", "layer_step", "mlp_step")

# (op, M, N, K): M = batch rows, N = out_features, K = in_features. mlp_step ignores the sizes and
# trains the MNIST MLP (784→512→256→10) on a batch of M.
MNIST_LAYERS = [(128, 512, 784), (128, 256, 512), (128, 10, 256)]
FFN_LAYERS = [(2048, 3072, 768), (2048, 768, 3072)]
SQUARE = [(1024, 1024, 1024), (2048, 2048, 2048)]
SKINNY = [(m, 4096, 4096) for m in (1, 4, 8, 16)]
# Layers with few input or output features (tabular or coordinate inputs, class scores) at small batches.
NARROW = [(m, n, k) for m in (1, 8) for n, k in ((4096, 10), (10, 4096), (256, 3), (784, 16))]


def gemm_ops(shapes):
    return [(op, *s) for s in shapes for op in ("forward", "backward_input", "backward_weight")]


SUITES = {
    "quick": gemm_ops([(1024, 1024, 1024)] + MNIST_LAYERS[:1]) + [("mlp_step", 128, 0, 0)],
    "cpu-targets": gemm_ops(SQUARE + MNIST_LAYERS + FFN_LAYERS + [(4096, 4096, 4096)] + SKINNY)
    + [("layer_step", *s) for s in MNIST_LAYERS + FFN_LAYERS] + [("mlp_step", 128, 0, 0)],
    "cuda-targets": gemm_ops([(4096, 4096, 4096)] + [(m, n, k) for m in (1, 16) for n, k in
                                                      ((4096, 4096), (11008, 4096), (28672, 8192))])
    + [("layer_step", m, n, k) for m in (2048, 8192) for n, k in ((3072, 768), (768, 3072), (11008, 4096), (4096, 11008))],
    "narrow": gemm_ops(NARROW),
    "sweep": gemm_ops([(n, n, n) for n in (64, 128, 256, 384, 512, 768, 1024, 1536, 2048)]),
    "smoke": gemm_ops([(3, 5, 7), (17, 9, 33)]) + [("layer_step", 4, 6, 8)],  # the CLI's own test
}


@dataclass
class Row:
    op: str
    M: int
    N: int
    K: int
    dtype: str
    device: str
    threads: int
    ours_ms: float
    torch_ms: float
    ours_gflops: float
    torch_gflops: float
    ratio: float  # torch's median time / our median time
    paired: float  # median over reps of torch's time / our time in the same rep
    pct_peak: float | None  # our GFLOP/s as % of the measured FMA peak (CPU float32/float64)
    reps: int
    ours_gbs: float | None = None  # GEMM ops: operand + output bytes / our time (memory-bound shapes)
    # Where W streams (streams_weight) and reads can be timed: W's bytes / the median time of a pure
    # read of W, timed in the same reps as ours and torch's, and ours_gbs as % of it (the median of
    # each rep's ratio): the memory-bound target.
    read_gbs: float | None = None
    pct_bw: float | None = None


def flops(op, M, N, K):
    if op == "mlp_step":
        return sum(6 * M * n * k for _, n, k in MNIST_LAYERS)
    return (6 if op == "layer_step" else 2) * M * N * K


class Timer:
    """Median wall time of interleaved callables. CUDA: events, with L2 flushed before each rep."""

    def __init__(self, device):
        self.device = device
        self.flush = torch.empty(64 << 20, dtype=torch.int32, device=device) if device.type == "cuda" else None

    def one(self, fn):
        if self.flush is None:
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        self.flush.zero_()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return begin.elapsed_time(end) / 1e3

    def run(self, fns, budget_s, min_reps=7, max_reps=20_000, before=None):
        """Per-callable lists of times, the callables interleaved rep by rep (order alternating);
        `before`, if given, runs untimed before every timed call.

        The reps fill the budget: a few hundred reps of a 10 µs op would all fall within one
        co-tenant burst or lull, and a 12 µs row's ratio then read anywhere from 0.85 to 1.7."""
        def timed(fn):
            if before:
                before()
            return self.one(fn)

        for fn in fns:  # warm-up: packing buffers, allocator, lazy init, cuBLAS handles
            for _ in range(2):
                timed(fn)
        probe = max(timed(fn) for fn in fns)
        reps = int(min(max_reps, max(min_reps, budget_s / (len(fns) * max(probe, 1e-6)))))
        times = [[] for _ in fns]
        for r in range(reps):
            order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
            for i in order:
                times[i].append(timed(fns[i]))
        return times


def streams_weight(op, M, N, K, dtype, device):
    """Whether the op streams a W that no cache holds: the forward or input grad at batch ≤ 16 on the
    CPU, with W at least as large as L3. Such rows are timed cold (CacheEvictor), the regime of a
    decoding model whose layers' weights together dwarf the caches: a warm 64 MiB W still had part of
    itself in our 32 MiB L3 from one rep to the next, and its stream read up to 116% of the memory's
    read bandwidth at batch 1."""
    return (device.type == "cpu" and op in ("forward", "backward_input") and M <= 16
            and N * K * dtype.itemsize >= machine_peaks.l3_cache_bytes())


class CacheEvictor:
    """Reads 4 × L3's bytes (torch's sum, on the threads it has) so that nothing timed next is cached."""

    def __init__(self):
        self.buffer = torch.ones(machine_peaks.l3_cache_bytes(), dtype=torch.float32)

    def __call__(self):
        self.buffer.sum()


def make_case(op, M, N, K, dtype, device):
    """(ours, torch_ref, w): two callables computing the same thing, and the weight the op reads
    (None for the weight grad and the layer steps)."""
    def t(*shape, requires_grad=False):
        return torch.randn(*shape, dtype=dtype, device=device, requires_grad=requires_grad)

    if op == "forward":
        x, w, b = t(M, K), t(N, K), t(N)
        return (lambda: ops.linear_forward(x, w, b)), (lambda: F.linear(x, w, b)), w
    if op == "backward_input":
        dy, w = t(M, N), t(N, K)
        return (lambda: ops.linear_backward_input(dy, w)), (lambda: torch.mm(dy, w)), w
    if op == "backward_weight":
        dy, x = t(M, N), t(M, K)
        return (lambda: ops.linear_backward_weight(dy, x, True)), (lambda: (torch.mm(dy.t(), x), dy.sum(0))), None
    if op in ("layer_step", "mlp_step"):
        shapes = MNIST_LAYERS if op == "mlp_step" else [(M, N, K)]

        def model(cls):
            torch.manual_seed(0)
            layers = []
            for i, (_, n, k) in enumerate(shapes):
                layers += [cls(k, n, device=device, dtype=dtype)] + ([nn.ReLU()] if i + 1 < len(shapes) else [])
            return nn.Sequential(*layers)

        ours_model, torch_model = model(linear_ext.Linear), model(nn.Linear)
        x = t(M, shapes[0][2], requires_grad=True)
        grad = t(M, shapes[-1][1])

        def step(m):
            def run():
                m.zero_grad(set_to_none=True)
                x.grad = None
                out = m(x)
                out.backward(grad)
                return out, x.grad, m[0].weight.grad
            return run

        return step(ours_model), step(torch_model), None
    raise ValueError(op)


def assert_agree(a, b, dtype):
    tol = {torch.float64: 1e-9, torch.float32: 1e-3, torch.bfloat16: 5e-2, torch.float16: 1e-2}[dtype]
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        scale = y.double().abs().max().item() + 1e-30
        err = (x.double() - y.double()).abs().max().item()
        if err > tol * scale:
            raise AssertionError(f"ours and torch disagree: max error {err:.3g} vs scale {scale:.3g}")


def run_suite(cases, dtypes, threads_list, device, budget_s, peaks, time_reads=False):
    """Rows for each case, dtype and thread count. time_reads: time a pure read of W beside the rows
    that stream it (streams_weight), for their read_gbs and %bw (machine_peaks.can_time_reads)."""
    rows = []
    timer = Timer(device)
    evict = None
    for threads in threads_list:
        if device.type == "cpu":
            torch.set_num_threads(threads)
        for dtype_name in dtypes:
            dtype = DTYPES[dtype_name]
            if device.type == "cuda":  # ours and torch's matmuls both follow this flag
                torch.backends.cuda.matmul.allow_tf32 = dtype_name == "tf32"
            for op, M, N, K in cases:
                ours, ref, w = make_case(op, M, N, K, dtype, device)
                assert_agree(ours(), ref(), dtype)
                fns = [ours, ref]
                cold = streams_weight(op, M, N, K, dtype, device)
                if cold:
                    evict = evict or CacheEvictor()
                    if time_reads:
                        fns.append(lambda: machine_peaks.read_seconds(w, threads))
                times = timer.run(fns, budget_s, before=evict if cold else None)
                times_ours, times_torch = times[0], times[1]
                t_ours, t_torch = statistics.median(times_ours), statistics.median(times_torch)
                paired = statistics.median(t / o for o, t in zip(times_ours, times_torch))
                fl = flops(op, M, N, K)
                peak = peaks.get((dtype_name, threads)) if peaks else None
                row = Row(op, M, N, K, dtype_name, device.type, threads, t_ours * 1e3, t_torch * 1e3,
                          fl / t_ours / 1e9, fl / t_torch / 1e9, t_torch / t_ours, paired,
                          100 * fl / t_ours / 1e9 / peak if peak else None, len(times_ours))
                if op in ("forward", "backward_input", "backward_weight"):
                    moved = (M * K + N * K + M * N) * dtype.itemsize
                    row.ours_gbs = moved / t_ours / 1e9
                if len(fns) == 3:  # the pure read, timed like ours: wall time, waking the threads included
                    reads = times[2]
                    row.read_gbs = w.nbytes / statistics.median(reads) / 1e9
                    row.pct_bw = 100 * statistics.median(moved / o / (w.nbytes / r) for o, r in zip(times_ours, reads))
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


HEADER = (f"{'op':<16}{'M':>6}{'N':>7}{'K':>7} {'dtype':<9}{'thr':>4}{'ours ms':>10}{'torch ms':>10}"
          f"{'ours GF/s':>11}{'torch GF/s':>11}{'ratio':>9}{'paired':>9}{'%peak':>7}{'read GB/s':>10}{'%bw':>7}")


def format_row(r):
    pct = f"{r.pct_peak:6.1f}%" if r.pct_peak is not None else "      -"
    read = f"{r.read_gbs:10.1f}" if r.read_gbs is not None else "         -"
    bw = f"{r.pct_bw:6.1f}%" if r.pct_bw is not None else "      -"
    return (f"{r.op:<16}{r.M:>6}{r.N:>7}{r.K:>7} {r.dtype:<9}{r.threads:>4}{r.ours_ms:>10.3f}{r.torch_ms:>10.3f}"
            f"{r.ours_gflops:>11.1f}{r.torch_gflops:>11.1f}{r.ratio:>8.2f}x{r.paired:>8.2f}x{pct}{read}{bw}")


def plot(rows, path):
    """Throughput against problem size per op, ours beside torch, one panel per (dtype, device)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r.dtype, r.device, r.threads) for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (dtype, dev, threads) in zip(axes[0], panels):
        for op, color in zip(("forward", "backward_input", "backward_weight"), ("C0", "C1", "C2")):
            pts = sorted((r.M * r.N * r.K, r.ours_gflops, r.torch_gflops) for r in rows
                         if (r.dtype, r.device, r.threads, r.op) == (dtype, dev, threads, op))
            if not pts:
                continue
            size = [p[0] ** (1 / 3) for p in pts]
            ax.plot(size, [p[1] for p in pts], "-o", color=color, label=f"{op} (linear_ext)")
            ax.plot(size, [p[2] for p in pts], "--x", color=color, alpha=0.6, label=f"{op} (torch)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("(M·N·K)^(1/3)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"{dtype} on {dev}" + (f", {threads} thread(s)" if dev == "cpu" else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), default="quick")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtypes", default="float32", help="comma-separated: " + ",".join(DTYPES))
    p.add_argument("--threads", default=None, help="CPU thread counts, comma-separated (default: torch's)")
    p.add_argument("--ops", default=None, help="only these ops, comma-separated: " + ",".join(OPS))
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timing per row (sets the rep count)")
    p.add_argument("--peaks", action="store_true", help="measure the CPU's FMA peak and memory bandwidth first")
    p.add_argument("--json", type=Path, help="write the rows (and machine peaks) to this JSON file")
    p.add_argument("--plot", type=Path, help="write a throughput plot (PNG; needs matplotlib)")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    threads_list = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    cases = [c for c in SUITES[args.suite] if not args.ops or c[0] in args.ops.split(",")]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        threads_list = [0]
        print(f"device: {torch.cuda.get_device_name(device)}")
    else:
        print(f"device: {platform.processor() or platform.machine()}, cpu kernels for {machine_peaks.cpu_isa()}")

    peaks = machine_peaks.measure(threads_list) if args.peaks and device.type == "cpu" else {}
    for (dtype, threads), gflops in sorted(peaks.get("fma_gflops", {}).items()):
        print(f"measured FMA peak: {gflops:.1f} GFLOP/s {dtype} on {threads} thread(s)")
    for threads, gbs in sorted(peaks.get("read_gbs", {}).items()):
        print(f"measured memory read bandwidth: {gbs:.1f} GB/s on {threads} thread(s) (a 1 GiB buffer; each "
              f"%bw compares with a read of that row's W, timed in the same reps)")

    print(HEADER)
    rows = run_suite(cases, args.dtypes.split(","), threads_list, device, args.budget, peaks.get("fma_gflops"),
                     time_reads=bool(peaks))
    ratios = [r.ratio for r in rows]
    print(f"\n{len(rows)} rows; ratio vs torch (>1 = faster): median {statistics.median(ratios):.2f}x, "
          f"min {min(ratios):.2f}x, max {max(ratios):.2f}x")
    # %peak rests on one reading taken before the rows; a co-tenant busy during that reading alone
    # would inflate the whole column, so the FMA peak is read again after the rows and compared.
    peaks_after = machine_peaks.measure(threads_list) if peaks else {}
    for key, after in sorted(peaks_after.get("fma_gflops", {}).items()):
        before = peaks["fma_gflops"][key]
        if abs(after - before) > 0.1 * max(after, before):
            print(f"warning: FMA peak {key[0]} on {key[1]} thread(s) read {before:.1f} GFLOP/s before the rows and "
                  f"{after:.1f} after: the machine was disturbed, so its %peak figures are not reliable")
    if args.json:
        payload = {
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
            "peaks": {k: {str(kk): vv for kk, vv in v.items()} for k, v in peaks.items()},
            "peaks_after": {k: {str(kk): vv for kk, vv in v.items()} for k, v in peaks_after.items()},
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
