"""Builds linear_ext._C: the CPU kernels always, the CUDA kernels when torch has CUDA and nvcc is found.

Environment:
  LINEAR_EXT_CPU_ONLY=1   skip the CUDA kernels even where they could be built (fast local builds)
  TORCH_CUDA_ARCH_LIST    GPU architectures to compile for (default below); read by torch's build helper
  MAX_JOBS                parallel compile jobs; read by torch's build helper
  CUDA_HOME               the CUDA toolkit; found automatically when unset
"""

import glob
import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"  # A100 and H100/H200 SASS, plus PTX for newer GPUs

try:
    import torch
except ImportError:
    sys.exit(
        "linear_ext: PyTorch must be installed before this package is built.\n"
        "  pip install torch && pip install --no-build-isolation .\n"
        "(or plain `pip install .`, which builds against a torch downloaded into an isolated build environment)"
    )


def find_cuda_home():
    """The CUDA toolkit root: the first candidate with bin/nvcc and include/cuda_runtime.h.

    torch guesses the root as two levels above `which nvcc`, which is wrong when nvcc on PATH
    is a wrapper script (e.g. /usr/local/bin/nvcc exec'ing /usr/local/cuda-13.0/bin/nvcc).
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(str(Path(nvcc).resolve().parent.parent))
    for root in filter(None, candidates):
        if (Path(root) / "bin" / "nvcc").exists() and (Path(root) / "include" / "cuda_runtime.h").exists():
            return root
    return None


def pip_cuda_include_dirs():
    """Header folders of pip's nvidia-* packages (cusparse.h, cublas_v2.h, ... that ATen's CUDA headers include).

    A bare toolkit may lack them; torch's CUDA wheels ship them under site-packages/nvidia/*/include.
    """
    dirs = []
    for site in sys.path:
        dirs += glob.glob(os.path.join(site, "nvidia", "*", "include"))
    return sorted(set(dirs))


def write_build_info(with_cuda):
    """Records what this build was compiled against, so the import can refuse a mismatched torch."""
    (ROOT / "linear_ext" / "_build_info.py").write_text(
        "# Written by setup.py at build time; do not edit.\n"
        f"TORCH_VERSION = {torch.__version__!r}\n"
        f"CUDA_VERSION = {torch.version.cuda if with_cuda else None!r}\n"
        f"WITH_CUDA = {with_cuda!r}\n"
    )


cuda_home = find_cuda_home()
if cuda_home:
    os.environ["CUDA_HOME"] = cuda_home  # must be set before torch.utils.cpp_extension is imported
cpu_only = os.environ.get("LINEAR_EXT_CPU_ONLY", "0") not in ("", "0")
with_cuda = torch.version.cuda is not None and cuda_home is not None and not cpu_only
if with_cuda:
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

CUDA_DIR = ROOT / "csrc" / "cuda"
# csrc/cuda/*.cpp is CUDA host code (op registrations, settings): compiled by the C++ compiler, and
# only into CUDA builds; the kernels (.cu) go through nvcc.
sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("**/*.cpp") if CUDA_DIR not in p.parents)
# -fopenmp makes at::parallel_for (an inline OpenMP template) actually run in parallel; at run
# time the OpenMP symbols resolve to the libgomp that torch has already loaded.
cxx_flags = ["-O3", "-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter"]
link_flags = ["-fopenmp"]
extension_kwargs = dict(
    name="linear_ext._C",
    include_dirs=[str(ROOT / "csrc")],
    extra_link_args=link_flags,
    py_limited_api=False,
)
if with_cuda:
    sources += sorted(str(p.relative_to(ROOT)) for p in CUDA_DIR.glob("**/*.cpp"))
    sources += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("**/*.cu"))
    # After the toolkit's own headers, so that only the headers the toolkit lacks come from pip.
    after = [flag for d in pip_cuda_include_dirs() for flag in ("-idirafter", d)]
    nvcc_after = [flag for d in pip_cuda_include_dirs() for flag in ("-Xcompiler", f"-idirafter{d}")]
    extension = CUDAExtension(
        sources=sources,
        extra_compile_args={
            "cxx": cxx_flags + after + ["-DLINEAR_EXT_WITH_CUDA"],
            "nvcc": ["-O3", "-lineinfo", "--expt-relaxed-constexpr", "-DLINEAR_EXT_WITH_CUDA"] + nvcc_after,
        },
        **extension_kwargs,
    )
else:
    extension = CppExtension(sources=sources, extra_compile_args={"cxx": cxx_flags}, **extension_kwargs)

write_build_info(with_cuda)
print(f"linear_ext: building {'CPU + CUDA' if with_cuda else 'CPU-only'} kernels"
      + (f" (CUDA_HOME={cuda_home}, archs {os.environ['TORCH_CUDA_ARCH_LIST']})" if with_cuda else ""))

setup(ext_modules=[extension], cmdclass={"build_ext": BuildExtension})
