"""Runs every CUDA kernel path of linear_ext once on tiny shapes and checks the results: the workload
that scripts/gpu_check.sh hands to compute-sanitizer (memcheck, racecheck). Exits non-zero on a
wrong result.

Paths (csrc/cuda/gemm_dispatch.cu): mma kHuge and kLarge (layouts KK, KN, MN), kSmallM (KK, KN) and
kDecode (KK) for float16 / bfloat16 / TF32; simt kLarge and kSmall (float), kLarge (double, and
16-bit when forced);
16-byte cp.async / vector loads and element loads (storage offset 1, strided, m-contiguous A with
k-contiguous B); split-K with the reduce kernel; row sums (bias grad) incl. an empty N.
"""

import argparse
import os
import sys

import torch

import linear_ext  # noqa: F401
from linear_ext import ops

DEV = "cuda"


def offset1(t):
    flat = torch.empty(t.numel() + 1, dtype=t.dtype, device=t.device)
    view = flat[1:].view(t.shape)
    view.copy_(t)
    return view


def check(name, got, want, tol):
    err = (got.double() - want).abs().max().item() if got.numel() else 0.0
    scale = want.abs().max().item() + 1.0 if want.numel() else 1.0
    ok = err <= tol * scale
    print(f"{'ok ' if ok else 'BAD'} {name}: max error {err:.3g} (scale {scale:.3g})", flush=True)
    return ok


def run_case(label, M, N, K, dtype, layout, tol):
    x, w, b, dy = (torch.randn(*s, dtype=dtype, device=DEV) for s in ((M, K), (N, K), (N,), (M, N)))
    if layout == "offset1":
        x, w, dy = offset1(x), offset1(w), offset1(dy)
    elif layout == "x_transposed":  # m-contiguous A with k-contiguous B: the layout without its own kernel
        x = x.t().contiguous().t()
    elif layout == "strided":
        x = torch.cat([x, x], 1)[:, ::2]
    xd, wd, dyd = x.double(), w.double(), dy.double()
    ok = check(f"{label} forward", ops.linear_forward(x, w, b), xd @ wd.t() + b.double(), tol)
    ok &= check(f"{label} backward_input", ops.linear_backward_input(dy, w), dyd @ wd, tol)
    dw, db = ops.linear_backward_weight(dy, x, True)
    ok &= check(f"{label} backward_weight", dw, dyd.t() @ xd, tol)
    ok &= check(f"{label} bias grad", db, dyd.sum(0), tol)
    return ok


def main():
    parser = argparse.ArgumentParser(description="Run every CUDA kernel path of linear_ext once and check it.")
    parser.add_argument("--layouts", default="contiguous,offset1,x_transposed,strided",
                        help="operand layouts to run (comma-separated); fewer for the slower sanitizers")
    parser.add_argument("--dtypes", default="float32,float64,bfloat16,float16",
                        help="dtypes to run (float32 runs with TF32 off and on)")
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    torch.manual_seed(0)
    tol = {torch.float64: 1e-12, torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}
    ok = True
    cases = [(33, 40, 70), (5, 40, 70), (130, 20, 9)]  # large tiles, small M, K not a multiple of 8
    for dtype in dtypes:
        for tf32 in ([False, True] if dtype == torch.float32 else [False]):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            t = 5e-3 if tf32 else tol[dtype]
            for layout in layouts:
                for M, N, K in cases:
                    label = f"{dtype} tf32={tf32} {layout} {M}x{N}x{K}"
                    ok &= run_case(label, M, N, K, dtype, layout, t)
            os.environ["LINEAR_EXT_CUDA_SPLIT_K"] = "2"
            ok &= run_case(f"{dtype} tf32={tf32} split-K", 20, 24, 300, dtype, "contiguous", t)
            ok &= run_case(f"{dtype} tf32={tf32} split-K N=0", 20, 0, 300, dtype, "contiguous", t)
            ok &= run_case(f"{dtype} tf32={tf32} split-K small M", 5, 40, 600, dtype, "contiguous", t)
            del os.environ["LINEAR_EXT_CUDA_SPLIT_K"]
            os.environ["LINEAR_EXT_CUDA_TILE"] = "huge"  # chosen by the table only for big problems
            for layout in layouts[:2]:
                ok &= run_case(f"{dtype} tf32={tf32} huge tile {layout}", 130, 260, 70, dtype, layout, t)
            del os.environ["LINEAR_EXT_CUDA_TILE"]
        if dtype in (torch.bfloat16, torch.float16):
            os.environ["LINEAR_EXT_CUDA_KERNEL"] = "simt"
            ok &= run_case(f"{dtype} simt fallback", 33, 40, 70, dtype, "contiguous", tol[dtype])
            ok &= run_case(f"{dtype} simt fallback offset1", 33, 40, 70, dtype, "offset1", tol[dtype])
            del os.environ["LINEAR_EXT_CUDA_KERNEL"]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.cuda.synchronize()
    print("all kernel paths correct" if ok else "SOME KERNEL PATHS WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
