#include "cpu/huge_pages.h"

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace linear_ext::cpu {

void advise_huge_pages(void* p, size_t bytes, bool fault_in) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~(kHugePage - 1);
  const auto end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHugePage - 1);
  if (begin >= end) return;
  madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  if (fault_in)
    for (uintptr_t page = begin; page < end; page += kHugePage) *reinterpret_cast<volatile char*>(page) = 0;
#else
  (void)p;
  (void)bytes;
  (void)fault_in;
#endif
}

}  // namespace linear_ext::cpu
