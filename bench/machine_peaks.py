"""Measures this CPU's FMA peak and memory read bandwidth (machine_peaks.c, compiled on first use)."""

import ctypes
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from linear_ext import _C

SOURCE = Path(__file__).with_name("machine_peaks.c")


def cpu_isa():
    """The ISA of the CPU micro-kernels linear_ext selected (generic, avx2, avx512)."""
    return _C.cpu_isa()


def _library():
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"linear_ext_machine_peaks_{digest}.so"
    if not path.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        subprocess.run([cc, "-O3", "-fopenmp", "-shared", "-fPIC", str(SOURCE), "-o", str(path)], check=True)
    lib = ctypes.CDLL(str(path))
    lib.fma_gflops.restype = ctypes.c_double
    lib.fma_gflops.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int, ctypes.c_int]
    lib.read_gbs.restype = ctypes.c_double
    lib.read_gbs.argtypes = [ctypes.c_int, ctypes.c_long, ctypes.c_int]
    return lib


def measure(threads_list, iters=600_000_000 // 12, read_floats=256 << 20, runs=7):
    """{'fma_gflops': {(dtype, threads): GFLOP/s}, 'read_gbs': {threads: GB/s}} at the ISA our kernels use;
    each figure is the best of `runs` runs (shared machines: the best run is the least disturbed one)."""
    isa = cpu_isa()
    if isa == "generic":
        return {}
    bits = 512 if isa == "avx512" else 256
    lib = _library()
    fma = {(dtype, t): max(lib.fma_gflops(t, iters, bits, size) for _ in range(runs))
           for t in threads_list for dtype, size in (("float32", 4), ("float64", 8))}
    read = {t: lib.read_gbs(t, read_floats, runs) for t in threads_list}
    return {"fma_gflops": fma, "read_gbs": read}
