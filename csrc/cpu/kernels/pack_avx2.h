// Vectorised packing (contract: PackFn in kernels.h) for float, bfloat16 and float16 sources into
// float slivers, and float64 into float64 slivers, using AVX2 + F16C: shared by the AVX2 and
// AVX-512 kernel sets.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

namespace linear_ext::cpu {

void pack_avx2_f32(const float* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums);
void pack_avx2_bf16(const c10::BFloat16* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums);
void pack_avx2_f16(const c10::Half* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, float* dst,
                   float* sums);
void pack_avx2_f64(const double* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, double* dst,
                   double* sums);

// RoundFn (kernels.h) for bfloat16 and float16 outputs, 8 values at a time.
void round_avx2_bf16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::BFloat16* dst, int64_t ld_dst);
void round_avx2_f16(const float* src, int64_t ld_src, int64_t m, int64_t n, c10::Half* dst, int64_t ld_dst);

}  // namespace linear_ext::cpu
