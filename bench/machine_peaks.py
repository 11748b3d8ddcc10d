"""Measures this CPU's FMA peak and memory read bandwidth (machine_peaks.c, compiled on first use),
and times pure reads of a tensor, the reference for kernels that stream one."""

import ctypes
import functools
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


@functools.cache  # once: read_seconds is timed, and loading again took 0.3 ms of its 2.4 ms for 64 MiB
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
    lib.read_seconds.restype = ctypes.c_double
    lib.read_seconds.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_int]
    lib.read_xor.restype = ctypes.c_uint
    lib.read_xor.argtypes = [ctypes.c_void_p, ctypes.c_long]
    return lib


def l3_cache_bytes():
    """The size of the L3 our CPU kernels block for, in bytes."""
    return _C.cpu_l3_bytes()


def can_time_reads():
    """Whether read_seconds can run here: its loop is AVX2, as are the CPUs our non-generic kernels need."""
    return cpu_isa() != "generic"


def read_seconds(tensor, threads):
    """Seconds for `threads` threads to read a contiguous CPU tensor's bytes once, a part each, counted
    from when all are ready (machine_peaks.c: read_seconds). The bytes are only loaded and XORed, so
    any dtype will do."""
    assert tensor.is_contiguous() and tensor.device.type == "cpu"
    return _library().read_seconds(tensor.data_ptr(), tensor.nbytes // 4, threads)


def read_xor(tensor):
    """The XOR of a contiguous CPU tensor's 32-bit words as read_seconds's loop reads them (one thread;
    the last nbytes % 4 bytes unread): what shows that every word is read."""
    assert tensor.is_contiguous() and tensor.device.type == "cpu"
    return _library().read_xor(tensor.data_ptr(), tensor.nbytes // 4)


def measure(threads_list, iters=600_000_000 // 12, read_floats=256 << 20, runs=7):
    """{'fma_gflops': {(dtype, threads): GFLOP/s}, 'read_gbs': {threads: GB/s}} at the ISA our kernels use;
    each figure is the best of `runs` runs (shared machines: the best run is the least disturbed one)."""
    if not can_time_reads():
        return {}
    isa = cpu_isa()
    bits = 512 if isa == "avx512" else 256
    lib = _library()
    fma = {(dtype, t): max(lib.fma_gflops(t, iters, bits, size) for _ in range(runs))
           for t in threads_list for dtype, size in (("float32", 4), ("float64", 8))}
    read = {t: lib.read_gbs(t, read_floats, runs) for t in threads_list}
    return {"fma_gflops": fma, "read_gbs": read}
