// Portable kernels for CPUs without AVX2: the shared templates over one-element "registers"
// (4×8 micro-kernel tiles, 4×4 dot blocks), left to the compiler's baseline vectoriser.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/kernels/kernels.h"
#include "cpu/kernels/pack_scalar.h"

namespace linear_ext::cpu::generic {

template <typename Elem>
struct Scalar {
  using T = Elem;
  using Reg = Elem;
  static constexpr int width = 1;
  static constexpr StreamTuning stream = kL1StreamTuning;
  static Reg zero() { return Elem(0); }
  static Reg loadu(const T* p) { return *p; }
  static void storeu(T* p, Reg r) { *p = r; }
  static Reg broadcast(T x) { return x; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg add(Reg a, Reg b) { return a + b; }
  static T hsum(Reg r) { return r; }
  template <typename Src>
  static Reg load_from(const Src* p) { return static_cast<Elem>(*p); }
  // Never reached: a one-element register is never partly used.
  static Reg load_from_partial(const T* p, int) { return *p; }
  static void store_partial(T* p, Reg r, int) { *p = r; }
};

}  // namespace linear_ext::cpu::generic

#include "cpu/kernels/dot_simd.h"
#include "cpu/kernels/rowstream_simd.h"
#include "cpu/kernels/ukernel_simd.h"

namespace linear_ext::cpu {

using generic::Scalar;

const IsaKernels kGenericKernels = {
    "generic",
    {&simd_microkernel<Scalar<float>, 4, 8>, 4, 8, 1, {nullptr, nullptr}, nullptr, {nullptr, nullptr, nullptr}, nullptr,
     {nullptr, nullptr, nullptr}, {nullptr, nullptr, nullptr}},
    {&simd_microkernel<Scalar<double>, 4, 8>, 4, 8, 1, {nullptr, nullptr}, nullptr, {nullptr, nullptr, nullptr}, nullptr,
     {nullptr, nullptr, nullptr}, {nullptr, nullptr, nullptr}},
    {&pack_scalar<float, float>, &simd_dot_kernel<Scalar<float>, float, 4, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<Scalar<float>, float, kRowStreamMaxRows>, nullptr},
    {&pack_scalar<double, double>, &simd_dot_kernel<Scalar<double>, double, 4, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<Scalar<double>, double, kRowStreamMaxRows>, nullptr},
    {&pack_scalar<c10::BFloat16, float>, &simd_dot_kernel<Scalar<float>, c10::BFloat16, 4, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<Scalar<float>, c10::BFloat16, kRowStreamMaxRows>, &round_scalar<c10::BFloat16>},
    {&pack_scalar<c10::Half, float>, &simd_dot_kernel<Scalar<float>, c10::Half, 4, 4>, kDotMinDepthZen3, &simd_rowstream_kernel<Scalar<float>, c10::Half, kRowStreamMaxRows>, &round_scalar<c10::Half>},
};

}  // namespace linear_ext::cpu
