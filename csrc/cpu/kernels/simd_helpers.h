// Helpers of the kernels written once over a vector-traits type V (dot_simd.h, rowstream_simd.h,
// ukernel_simd.h), included like them after an ISA's target pragma.
#pragma once

#include <cstring>
#include <type_traits>
#include <utility>

namespace linear_ext::cpu {

// The first count < width values at p as a zero-filled Reg, nothing read past them: masked loads
// for float/double, while 16-bit values are staged in a zeroed buffer and converted whole.
template <typename V, typename Src>
typename V::Reg load_tail(const Src* p, int count) {
  if constexpr (std::is_same_v<Src, typename V::T>) {
    return V::load_from_partial(p, count);
  } else {
    Src tail[V::width] = {};
    std::memcpy(tail, p, count * sizeof(Src));
    return V::load_from(tail);
  }
}

// The first `lanes` (1 to width) values at p as a Reg, zeros past them, nothing read past them.
template <typename V>
typename V::Reg load_first_lanes(const typename V::T* p, int lanes) {
  return lanes == V::width ? V::loadu(p) : V::load_from_partial(p, lanes);
}

// Stores the first `lanes` (1 to width) of r at p, nothing past them.
template <typename V>
void store_first_lanes(typename V::T* p, typename V::Reg r, int lanes) {
  if (lanes == V::width)
    V::storeu(p, r);
  else
    V::store_partial(p, r, lanes);
}

// Calls f.template operator()<R>() for the R in [1, Max) equal to rows (none when rows is outside).
template <int Max, typename F>
void with_rows(int64_t rows, const F& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((rows == I + 1 ? f.template operator()<I + 1>() : void()), ...);
  }(std::make_integer_sequence<int, Max - 1>{});
}

}  // namespace linear_ext::cpu
