"""linear_ext: a faster nn.Linear, on hand-written CPU and CUDA GEMM kernels bound as torch ops."""

from . import functional, ops
from .function import LinearFunction
from ._library import WITH_CUDA
from .convert import replace_linear, to_torch_linear
from .modules import Linear

__all__ = ["Linear", "LinearFunction", "WITH_CUDA", "functional", "ops", "replace_linear", "to_torch_linear"]
