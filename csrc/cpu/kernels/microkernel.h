// The register-blocked micro-kernels that every CPU GEMM layout runs, one set per ISA.
//
// A micro-kernel computes one MR×NR tile of C from two packed slivers:
//   C_out[i][j] = (C_in ? C_in[i][j] : 0) + Σ_{p<kc} A[p·MR + i] · B[p·NR + j] + (bias ? bias[j] : 0)
// for i < m ≤ MR and j < n ≤ NR. A is an MR-row sliver and B an NR-column sliver, both packed
// k-major, zero-padded to MR / NR and 64-byte aligned (see cpu/pack.h). C is row-major with the
// given leading dimensions; only its m×n corner is read or written, and C_in may alias C_out.
// The sum over p runs in order, one FMA per step, so a tile's bits do not depend on threading.
#pragma once

#include <cstdint>

namespace linear_ext::cpu {

template <typename acc_t>
using MicroKernelFn = void (*)(int64_t kc, const acc_t* a, const acc_t* b, const acc_t* c_in, int64_t ldc_in,
                               acc_t* c_out, int64_t ldc_out, const acc_t* bias, int m, int n);

template <typename acc_t>
struct MicroKernel {
  MicroKernelFn<acc_t> run;
  int mr, nr;
};

// The float and double micro-kernels of one ISA.
struct IsaKernels {
  const char* isa;
  MicroKernel<float> f32;
  MicroKernel<double> f64;

  template <typename acc_t>
  const MicroKernel<acc_t>& get() const {
    if constexpr (sizeof(acc_t) == sizeof(float)) {
      return f32;
    } else {
      return f64;
    }
  }
};

// Defined in ukernel_<isa>.cpp, each compiled for its ISA only.
extern const IsaKernels kGenericKernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;

// The best kernels this CPU runs, detected once. LINEAR_EXT_CPU_ISA=generic|avx2|avx512 forces
// a path (tests use it to cover each one); asking for one the CPU lacks is an error.
const IsaKernels& cpu_kernels();

}  // namespace linear_ext::cpu
