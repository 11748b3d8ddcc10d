#include "cpu/page_walks.h"

namespace linear_ext::cpu {

void touch_pages(const void* first, int64_t rows, int64_t row_bytes, int64_t stride_bytes) {
  constexpr uintptr_t kPage = 4096;
  uintptr_t last_page = ~uintptr_t{0};
  for (int64_t r = 0; r < rows; ++r) {
    const auto begin = reinterpret_cast<uintptr_t>(first) + static_cast<uintptr_t>(r * stride_bytes);
    const uintptr_t end = begin + static_cast<uintptr_t>(row_bytes);
    // The row's first line, then each page boundary past it.
    for (uintptr_t p = begin; p < end; p = (p / kPage + 1) * kPage) {
      if (p / kPage != last_page) __builtin_prefetch(reinterpret_cast<const void*>(p), 0, 2);
      last_page = p / kPage;
    }
  }
}

}  // namespace linear_ext::cpu
