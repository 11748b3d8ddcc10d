// Transparent huge pages for large outputs.
#pragma once

#include <cstddef>

namespace linear_ext::cpu {

// Asks the OS to back the whole 2 MiB pages inside [p, p + bytes) with huge pages where it does so
// on request (Linux with transparent_hugepage set to "madvise", the common default). A large output
// is usually fresh memory that the allocator just mapped: faulting it in 4 KiB at a time (16K faults
// for a 64 MiB weight grad) costs as much as the GEMM writing it. A hint only: failures are ignored,
// and memory that is already mapped in keeps its contents.
//
// With `fault_in`, each of those huge pages is then faulted in at once, from the calling thread, by
// a zero byte written to it: [p, p + bytes) must be memory the caller overwrites whole. Faulted in
// by the GEMM's threads as they write, two at once, a 64 MiB output's pages took 70-88 ms at times
// (KVM guest, float32 weight grad at batch 1 × 4096², 2 threads; 6 ms in other runs, and 24 ms in
// 4 KiB pages), and 5.4-6.6 ms every time when faulted in first; on 1 thread 1.25-1.32x as fast
// (one process alternating both), the pages zeroed last still in L3 when the GEMM writes them.
void advise_huge_pages(void* p, size_t bytes, bool fault_in);

// Outputs from this size on are worth the system call.
constexpr size_t kHugePageAdviceMinBytes = size_t{8} << 20;

}  // namespace linear_ext::cpu
