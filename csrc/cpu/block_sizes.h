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

// Block sizes for a micro-kernel of mr×nr elements of elem_size bytes. Depends only on the CPU
// and the kernel, never on the thread count (KC fixes the summation order).
BlockSizes block_sizes(int mr, int nr, size_t elem_size);

// NC for a GEMM whose K steps are kc deep (below block_sizes' KC when K is smaller): the B block
// then fills its half of L2 with more columns, so that C is written in longer row runs and each A
// sliver serves more tiles (a weight grad at batch 4 writing a 4096×4096 C in one block rather
// than 13 measured ~15% faster).
int64_t nc_for_depth(int nr, size_t elem_size, int64_t kc);

// KC for the GEMMs that read a row-major A in place and pack B one NR-column panel at a time
// (gemm.cpp's run_in_place): half of L1 for the MR rows of A that the micro-kernel broadcasts from,
// as for block_sizes, but without its cap, which keeps a whole KC×NC block of B in L2 (K = 512
// then takes one step, not two: the MNIST 784→512 input grad measured 3-5% faster).
int64_t in_place_kc(int mr, size_t elem_size);

// Block sizes for skinny GEMMs (a few rows of A, B read once) with a k×n B: B is consumed in
// full-width chunks of KC rows that stay in L2, so that it streams through memory row by row.
BlockSizes skinny_block_sizes(int mr, int nr, size_t elem_size, int64_t n, int64_t k);

}  // namespace linear_ext::cpu
