// The micro-kernel body shared by every ISA (contract in microkernel.h), written once over a
// vector-traits type V. Each ukernel_<isa>.cpp includes this after its `#pragma GCC target`, so
// every instantiation is compiled for that ISA; V's types are per-ISA, so no two files ever
// instantiate the same function (which would let the linker mix ISAs).
//
// V provides: T (element), Reg (register), width (elements per Reg), zero(), load(aligned ptr),
// loadu(ptr), storeu(ptr, Reg), broadcast(T), fma(a, b, c) = a·b + c, add(a, b).
#pragma once

namespace linear_ext::cpu {

// MR rows × NV registers per row: NR = NV·width columns; MR·NV accumulators live in registers.
template <typename V, int MR, int NV>
void simd_microkernel(int64_t kc, const typename V::T* a, const typename V::T* b, const typename V::T* c_in,
                      int64_t ldc_in, typename V::T* c_out, int64_t ldc_out, const typename V::T* bias, int m,
                      int n) {
  using T = typename V::T;
  using Reg = typename V::Reg;
  constexpr int W = V::width;
  constexpr int NR = NV * W;

  Reg acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

  for (int64_t p = 0; p < kc; ++p) {
    Reg bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const Reg av = V::broadcast(a[i]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
    }
    a += MR;
    b += NR;
  }

  if (m == MR && n == NR) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        Reg r = acc[i][j];
        if (c_in) r = V::add(r, V::loadu(c_in + i * ldc_in + j * W));
        if (bias) r = V::add(r, V::loadu(bias + j * W));
        V::storeu(c_out + i * ldc_out + j * W, r);
      }
    return;
  }
  // Edge tile: spill the registers and copy out only the m×n corner.
  alignas(64) T tile[MR * NR];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) V::storeu(tile + i * NR + j * W, acc[i][j]);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      T r = tile[i * NR + j];
      if (c_in) r += c_in[i * ldc_in + j];
      if (bias) r += bias[j];
      c_out[i * ldc_out + j] = r;
    }
}

}  // namespace linear_ext::cpu
