// Transparent huge pages for large outputs.
#pragma once

#include <cstddef>

namespace linear_ext::cpu {

// Asks the OS to back the whole 2 MiB pages inside [p, p + bytes) with huge pages where it does so
// on request (Linux with transparent_hugepage set to "madvise", the common default). A large output
// is usually fresh memory that the allocator just mapped: faulting it in 4 KiB at a time (16K faults
// for a 64 MiB weight grad) costs as much as the GEMM writing it. A hint only: failures are ignored,
// and memory that is already mapped in keeps its contents.
void advise_huge_pages(void* p, size_t bytes);

// Outputs from this size on are worth the system call.
constexpr size_t kHugePageAdviceMinBytes = size_t{8} << 20;

}  // namespace linear_ext::cpu
