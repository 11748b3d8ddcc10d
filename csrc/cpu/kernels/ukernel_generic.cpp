// Portable micro-kernels for CPUs without AVX2: the shared template over one-element "registers"
// (4×8 tiles), left to the compiler's baseline vectoriser.
#include <cstdint>

#include "cpu/kernels/microkernel.h"

namespace linear_ext::cpu::generic {

template <typename Elem>
struct Scalar {
  using T = Elem;
  using Reg = Elem;
  static constexpr int width = 1;
  static Reg zero() { return Elem(0); }
  static Reg load(const T* p) { return *p; }
  static Reg loadu(const T* p) { return *p; }
  static void storeu(T* p, Reg r) { *p = r; }
  static Reg broadcast(T x) { return x; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg add(Reg a, Reg b) { return a + b; }
};

}  // namespace linear_ext::cpu::generic

#include "cpu/kernels/ukernel_simd.h"

namespace linear_ext::cpu {

const IsaKernels kGenericKernels = {
    "generic",
    {&simd_microkernel<generic::Scalar<float>, 4, 8>, 4, 8},
    {&simd_microkernel<generic::Scalar<double>, 4, 8>, 4, 8},
};

}  // namespace linear_ext::cpu
