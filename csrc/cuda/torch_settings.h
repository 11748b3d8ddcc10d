// torch's global math settings, queried from host code that does not include ATen.
#pragma once

namespace linear_ext::cuda {

// torch.backends.cuda.matmul.allow_tf32: whether float GEMMs may use TF32 tensor cores (torch's
// own cuBLAS matmuls follow the same flag).
bool tf32_allowed();

}  // namespace linear_ext::cuda
