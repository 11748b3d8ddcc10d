// AVX2+FMA micro-kernels: 6×16 float and 6×8 double. 12 accumulators + 2 B registers + 1
// broadcast A value use 15 of the 16 ymm registers; 12 FMAs per 2 B loads and 6 broadcasts
// keep both FMA ports busy.
#include <immintrin.h>

#include <cstdint>

#include "cpu/kernels/microkernel.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace linear_ext::cpu::avx2 {

struct F32 {
  using T = float;
  using Reg = __m256;
  static constexpr int width = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const T* p) { return _mm256_load_ps(p); }
  static Reg loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, Reg r) { _mm256_storeu_ps(p, r); }
  static Reg broadcast(T x) { return _mm256_set1_ps(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
};

struct F64 {
  using T = double;
  using Reg = __m256d;
  static constexpr int width = 4;
  static Reg zero() { return _mm256_setzero_pd(); }
  static Reg load(const T* p) { return _mm256_load_pd(p); }
  static Reg loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, Reg r) { _mm256_storeu_pd(p, r); }
  static Reg broadcast(T x) { return _mm256_set1_pd(x); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
};

}  // namespace linear_ext::cpu::avx2

#include "cpu/kernels/ukernel_simd.h"

#pragma GCC pop_options

namespace linear_ext::cpu {

const IsaKernels kAvx2Kernels = {
    "avx2",
    {&simd_microkernel<avx2::F32, 6, 2>, 6, 16},
    {&simd_microkernel<avx2::F64, 6, 2>, 6, 8},
};

}  // namespace linear_ext::cpu
