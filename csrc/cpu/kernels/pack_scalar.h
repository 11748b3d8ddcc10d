// The portable packing routine (contract: PackFn in kernels.h): any strides, any source dtype.
// The vectorised packers (pack_avx2.cpp) fall back to it for strides they do not special-case.
#pragma once

#include <cstdint>

namespace linear_ext::cpu {

// Adds the first n vectors of a packed sliver (R wide, kc deep) to sums, in k order.
template <typename acc_t>
void add_sliver_sums(const acc_t* sliver, int64_t n, int R, int64_t kc, acc_t* sums) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < kc; ++p) sums[i] += sliver[p * R + i];
}

template <typename T, typename acc_t>
void pack_scalar(const T* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, acc_t* dst, acc_t* sums) {
  for (int64_t s0 = 0; s0 < width; s0 += R, src += R * vs, dst += R * kc) {
    const int64_t n = width - s0 < R ? width - s0 : R;
    if (ks == 1) {  // walk each vector along k: contiguous reads
      for (int64_t i = 0; i < n; ++i)
        for (int64_t p = 0; p < kc; ++p) dst[p * R + i] = static_cast<acc_t>(src[i * vs + p]);
    } else {
      for (int64_t p = 0; p < kc; ++p)
        for (int64_t i = 0; i < n; ++i) dst[p * R + i] = static_cast<acc_t>(src[i * vs + p * ks]);
    }
    for (int64_t p = 0; p < kc; ++p)
      for (int64_t i = n; i < R; ++i) dst[p * R + i] = acc_t(0);
    if (sums) add_sliver_sums(dst, n, R, kc, sums + s0);
  }
}

// RoundFn (kernels.h), one value at a time.
template <typename T>
void round_scalar(const float* src, int64_t ld_src, int64_t m, int64_t n, T* dst, int64_t ld_dst) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) dst[i * ld_dst + j] = static_cast<T>(src[i * ld_src + j]);
}

}  // namespace linear_ext::cpu
