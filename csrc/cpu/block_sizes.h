// Cache blocking for the CPU GEMM (loop order in gemm.cpp), derived from this CPU's cache sizes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace linear_ext::cpu {

struct BlockSizes {
  int64_t mc;  // rows of the packed A panel (a multiple of MR): MC×KC stays in L3
  int64_t kc;  // depth of one rank-KC update: an MR×KC sliver of A stays in L1
  int64_t nc;  // columns of the packed B block (a multiple of NR): KC×NC stays in L2
};

// Block sizes for a micro-kernel of mr×nr elements of elem_size bytes and a depth of k, with A
// packed or (a_in_place: gemm.cpp's run_in_place) read where it lies. K is cut into equal KC steps.
// Depends only on the CPU, the kernel and the problem, never on the thread count (KC fixes the
// summation order).
BlockSizes block_sizes(int mr, int nr, size_t elem_size, int64_t k, bool a_in_place);

// Whether a GEMM with few rows of A should stream its k×n B (skinny_block_sizes) rather than run
// the packed loops: only when B is too large to stay in half of L3 between calls.
bool streams_b(size_t elem_size, int64_t n, int64_t k);

// Block sizes for skinny GEMMs (a few rows of A, B read once) with a k×n B: B is consumed in
// full-width chunks of KC rows that stay in L2, so that it streams through memory row by row.
BlockSizes skinny_block_sizes(int mr, int nr, size_t elem_size, int64_t n, int64_t k);

// The k chunk of the skinny forward's dot kernels (DotKernelFn) for elements of elem_size bytes.
int64_t dot_kc(size_t elem_size);

// The size of the L3 this core shares, in bytes, as the blocking above assumes it.
int64_t l3_cache_bytes();

}  // namespace linear_ext::cpu
