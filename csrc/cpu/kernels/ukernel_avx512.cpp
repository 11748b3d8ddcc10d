// AVX-512F micro-kernels: 12×32 float and 12×16 double. 24 accumulators + 2 B registers + 1
// broadcast A value use 27 of the 32 zmm registers.
#include <immintrin.h>

#include <cstdint>

#include "cpu/kernels/microkernel.h"

#pragma GCC push_options
#pragma GCC target("avx512f")

namespace linear_ext::cpu::avx512 {

struct F32 {
  using T = float;
  using Reg = __m512;
  static constexpr int width = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const T* p) { return _mm512_load_ps(p); }
  static Reg loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
};

struct F64 {
  using T = double;
  using Reg = __m512d;
  static constexpr int width = 8;
  static Reg zero() { return _mm512_setzero_pd(); }
  static Reg load(const T* p) { return _mm512_load_pd(p); }
  static Reg loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, Reg r) { _mm512_storeu_pd(p, r); }
  static Reg broadcast(T x) { return _mm512_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
};

}  // namespace linear_ext::cpu::avx512

#include "cpu/kernels/ukernel_simd.h"

#pragma GCC pop_options

namespace linear_ext::cpu {

const IsaKernels kAvx512Kernels = {
    "avx512",
    {&simd_microkernel<avx512::F32, 12, 2>, 12, 32},
    {&simd_microkernel<avx512::F64, 12, 2>, 12, 16},
};

}  // namespace linear_ext::cpu
