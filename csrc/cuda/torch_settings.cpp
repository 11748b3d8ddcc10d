// Kept out of the .cu files: ATen/Context.h is costly to compile with nvcc.
#include "cuda/torch_settings.h"

#include <ATen/Context.h>

namespace linear_ext::cuda {

bool tf32_allowed() { return at::globalContext().allowTF32CuBLAS(); }

}  // namespace linear_ext::cuda
