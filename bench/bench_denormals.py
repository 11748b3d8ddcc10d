"""Subnormal (denormal) float32 operands through our CPU kernels and torch's: the slowdown ratio.

Many x86 cores take a microcode assist, tens to hundreds of cycles, for an FMA whose input or
result is subnormal, unless the thread runs with flush-to-zero / denormals-are-zero (FTZ/DAZ).
Our kernels keep IEEE subnormals (they only flush if torch does, torch.set_flush_denormal), so
this measures what that costs. Each row is one GEMM on three operand sets:

    normal      x, w ~ N(0, 1)
    sub-in      x ~ N(0, 1)·1e-39 (subnormal), w ~ N(0, 1)·2^64: subnormal inputs, normal products
    sub-all     x ~ N(0, 1)·1e-39, w ~ N(0, 1): subnormal inputs, products, sums and outputs

Ours and torch ("kernel 0") are checked against each other first, then timed interleaved rep by
rep in the same run; the table gives medians and the slowdown ratio (time on subnormal operands /
time on normal ones) for each. The bar for ours: ≤ 2x, or no worse than torch.

    python bench/bench_denormals.py                    # 1024³ and 512³ forward, torch's thread count
    python bench/bench_denormals.py --threads 1,2 --ops forward,backward_weight --json denormals.json
    python bench/bench_denormals.py --flush --threads 1   # with torch.set_flush_denormal(True)

With --flush, subnormals are flushed to zero (FTZ/DAZ), so the results are only checked to be
finite. torch sets that mode on the calling thread only: with more than one thread, the work done
on the other threads still meets subnormals.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import linear_ext
from linear_ext import ops

SHAPES = [(1024, 1024, 1024), (512, 512, 512)]
KINDS = ("normal", "sub-in", "sub-all")
OPS = ("forward", "backward_input", "backward_weight")
SUBNORMAL_SCALE = 1e-39  # N(0, 1) times this is below float32's smallest normal, 1.18e-38, for |z| < 11.8
W_SCALE = 2.0**64  # lifts subnormal·w back into the normal range


def operands(kind, M, N, K, seed=0):
    """(a, b) of the GEMM in the op's layout, a holding the subnormals."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(M, K, generator=gen)
    b = torch.randn(N, K, generator=gen)
    if kind != "normal":
        a *= SUBNORMAL_SCALE
        assert (a.abs() < torch.finfo(torch.float32).smallest_normal).all()
    if kind == "sub-in":
        b *= W_SCALE
    return a, b


def make_case(op, kind, M, N, K):
    """(ours, torch's, float64 reference) as callables / a tensor, over the same operands."""
    if op == "forward":  # Y (M,N) = X (M,K) · Wᵀ
        x, w = operands(kind, M, N, K)
        return (lambda: ops.linear_forward(x, w, None)), (lambda: F.linear(x, w)), x.double() @ w.double().t()
    if op == "backward_input":  # dX (M,K) = dY (M,N) · W (N,K): dY subnormal
        dy, wt = operands(kind, M, K, N)
        w = wt.t().contiguous()
        return (lambda: ops.linear_backward_input(dy, w)), (lambda: dy @ w), dy.double() @ w.double()
    if op == "backward_weight":  # dW (N,K) = dYᵀ · X: dY (M,N) subnormal, X (M,K)
        dyt, xt = operands(kind, N, K, M)
        dy, x = dyt.t().contiguous(), xt.t().contiguous()
        return ((lambda: ops.linear_backward_weight(dy, x, False)[0]), (lambda: dy.t() @ x),
                dy.double().t() @ x.double())
    raise ValueError(op)


def check(result, exact, k, what):
    """Within float32 rounding of a k-term sum, with the subnormal spacing as an absolute floor; and
    not flushed: subnormal results must survive."""
    tiny = torch.finfo(torch.float32).smallest_normal * torch.finfo(torch.float32).eps
    bound = 1e-6 * k**0.5 * exact.abs().max().item() + k * tiny
    err = (result.double() - exact).abs().max().item()
    if err > bound:
        raise AssertionError(f"{what}: max error {err:.3g} > {bound:.3g}")
    if (exact != 0).any() and (result == 0).all():
        raise AssertionError(f"{what}: all zeros (flushed to zero?)")


def median_times(fns, budget_s, min_reps=3, max_reps=100):
    """Median wall time of each callable, timed interleaved after a warm-up."""
    for fn in fns:
        fn()
    probe = [0.0] * len(fns)
    for i, fn in enumerate(fns):
        start = time.perf_counter()
        fn()
        probe[i] = time.perf_counter() - start
    reps = int(min(max_reps, max(min_reps, budget_s / max(sum(probe), 1e-6))))
    times = [[] for _ in fns]
    for r in range(reps):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            fns[i]()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], reps


def torch_flushes_denormals():
    return (torch.tensor([1e-39]) * torch.tensor([1.0])).item() == 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default=None, help="CPU thread counts, comma-separated (default: torch's)")
    p.add_argument("--ops", default="forward", help="comma-separated: " + ",".join(OPS))
    p.add_argument("--shapes", default=None, help="MxNxK,... (default: 1024x1024x1024,512x512x512)")
    p.add_argument("--budget", type=float, default=3.0, help="seconds of timing per (row, operand set)")
    p.add_argument("--flush", action="store_true", help="time with torch.set_flush_denormal(True)")
    p.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = p.parse_args(argv)
    if args.flush and not torch.set_flush_denormal(True):
        p.error("this CPU has no flush-to-zero mode torch can set")

    threads_list = [int(t) for t in args.threads.split(",")] if args.threads else [torch.get_num_threads()]
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes else SHAPES
    print(f"device: {platform.processor() or platform.machine()}, cpu kernels for {linear_ext._C.cpu_isa()}, "
          f"torch {torch.__version__}, torch flushes denormals: {torch_flushes_denormals()}")
    header = (f"{'op':<16}{'M':>6}{'N':>6}{'K':>6}{'thr':>4} {'operands':<9}{'reps':>5}{'ours ms':>10}"
              f"{'torch ms':>10}{'ours slowdown':>15}{'torch slowdown':>16}")
    print(header)
    rows = []
    for threads in threads_list:
        torch.set_num_threads(threads)
        for op in args.ops.split(","):
            for M, N, K in shapes:
                normal = None
                k = {"forward": K, "backward_input": N, "backward_weight": M}[op]
                for kind in KINDS:
                    ours, ref, exact = make_case(op, kind, M, N, K)
                    if args.flush:  # subnormals may have become zeros: only finiteness is known
                        assert ours().isfinite().all() and ref().isfinite().all()
                    else:
                        check(ours(), exact, k, f"ours, {op} {kind}")
                        check(ref(), exact, k, f"torch, {op} {kind}")
                    (t_ours, t_torch), reps = median_times([ours, ref], args.budget)
                    if kind == "normal":
                        normal = (t_ours, t_torch)
                    row = dict(op=op, M=M, N=N, K=K, threads=threads, operands=kind, reps=reps,
                               ours_ms=t_ours * 1e3, torch_ms=t_torch * 1e3,
                               ours_slowdown=t_ours / normal[0], torch_slowdown=t_torch / normal[1])
                    rows.append(row)
                    print(f"{op:<16}{M:>6}{N:>6}{K:>6}{threads:>4} {kind:<9}{reps:>5}{row['ours_ms']:>10.2f}"
                          f"{row['torch_ms']:>10.2f}{row['ours_slowdown']:>14.2f}x{row['torch_slowdown']:>15.2f}x",
                          flush=True)
    worst = max(rows, key=lambda r: r["ours_slowdown"])
    verdict = "within" if worst["ours_slowdown"] <= 2.0 else "OVER"
    print(f"\nworst slowdown of ours: {worst['ours_slowdown']:.2f}x ({worst['op']} {worst['M']}x{worst['N']}x{worst['K']}, "
          f"{worst['operands']}, {worst['threads']} thread(s); torch {worst['torch_slowdown']:.2f}x there): "
          f"{verdict} the 2x bar")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "isa": linear_ext._C.cpu_isa(), "flush": args.flush,
                                         "torch_flushes_denormals": torch_flushes_denormals(), "rows": rows}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
