"""Loads the compiled library (linear_ext._C), refusing one built for another torch or CUDA.

A library compiled against one torch version can crash or misbehave under another, so the
versions recorded at build time (_build_info.py, written by setup.py) must match the running ones.
"""

import torch

_REBUILD = (
    "Rebuild it against the torch you are running, from the project's root:\n"
    "    pip install --no-build-isolation --force-reinstall --no-deps ."
)

try:
    from . import _build_info
except ImportError as e:
    raise ImportError(f"linear_ext's compiled library is missing (no build info found). {_REBUILD}") from e

if _build_info.TORCH_VERSION != torch.__version__:
    raise ImportError(
        f"linear_ext was built against torch {_build_info.TORCH_VERSION} but torch {torch.__version__} is running. "
        + _REBUILD
    )
if _build_info.WITH_CUDA and _build_info.CUDA_VERSION != torch.version.cuda:
    raise ImportError(
        f"linear_ext was built against CUDA {_build_info.CUDA_VERSION} but this torch uses CUDA "
        f"{torch.version.cuda}. " + _REBUILD
    )

try:
    from . import _C  # noqa: F401  (loading it registers the ops)
except ImportError as e:
    raise ImportError(f"linear_ext's compiled library could not be loaded: {e}. {_REBUILD}") from e

WITH_CUDA: bool = _build_info.WITH_CUDA
