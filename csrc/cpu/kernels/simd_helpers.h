// Helpers of the kernels written once over a vector-traits type V (dot_simd.h, rowstream_simd.h,
// ukernel_simd.h), included like them after an ISA's target pragma.
#pragma once

#include <cstring>
#include <type_traits>
#include <utility>

namespace linear_ext::cpu {

// Source values per V::load_from: one per lane, or V::values_per_load where a lane holds several
// (Bf16Pairs: two bfloat16 k-steps per float32 lane).
template <typename V>
constexpr int values_per_load() {
  if constexpr (requires { V::values_per_load; }) {
    return V::values_per_load;
  } else {
    return V::width;
  }
}

// The first count < values_per_load<V>() values at p as a zero-filled Reg, nothing read past them:
// masked loads where V has them for Src (float/double, and Bf16Pairs' bfloat16), while other
// 16-bit values are staged in a zeroed buffer and converted whole.
template <typename V, typename Src>
typename V::Reg load_tail(const Src* p, int count) {
  if constexpr (requires { V::load_from_partial(p, count); }) {
    return V::load_from_partial(p, count);
  } else {
    Src tail[values_per_load<V>()] = {};
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
