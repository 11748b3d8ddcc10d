// Rows of a row-major matrix addressed from one base pointer per four rows, shared by the kernels
// that walk many rows in step (ukernel_simd.h, rowstream_simd.h). Included after an ISA's target
// pragma, like them, and so it includes no standard header.
#pragma once

namespace linear_ext::cpu {

template <typename T>
struct ByteOf {
  using type = char;
};
template <typename T>
struct ByteOf<const T> {
  using type = const char;
};

// Rows rows, ld elements apart, addressed as base + {0, 1, 2, 3}·ld from one base per four rows.
// Rows row pointers, next to the loop's other pointers and counter, need more than the 15 general
// registers a kernel loop has: GCC spilled them (two 8×48 micro-kernel row pointers, one of them to
// a vector register whose read took an FMA port every k-step; six of the row-streaming kernel's
// eight, reloaded every vector step). The empty asm in advance() makes ld opaque in every step,
// which keeps GCC from turning each row's address back into a pointer of its own. T may be const.
template <typename T, int Rows>
struct RowGroups {
  using Byte = typename ByteOf<T>::type;
  static constexpr int kGroups = (Rows + 3) / 4;
  Byte* base[kGroups];
  int64_t ld1, ld3;  // bytes
  RowGroups(T* first, int64_t ld) : ld1(ld * static_cast<int64_t>(sizeof(T))), ld3(3 * ld1) {
    for (int g = 0; g < kGroups; ++g) base[g] = reinterpret_cast<Byte*>(first) + 4 * g * ld1;
  }
  T* row(int i) const {
    Byte* group = base[i / 4];
    switch (i % 4) {
      case 0: return reinterpret_cast<T*>(group);
      case 1: return reinterpret_cast<T*>(group + ld1);
      case 2: return reinterpret_cast<T*>(group + 2 * ld1);
      default: return reinterpret_cast<T*>(group + ld3);
    }
  }
  // Every row moves on by `elems` elements.
  void advance(int64_t elems) {
    for (int g = 0; g < kGroups; ++g) base[g] += elems * static_cast<int64_t>(sizeof(T));
    asm("" : "+r"(ld1), "+r"(ld3));
  }
};

}  // namespace linear_ext::cpu
