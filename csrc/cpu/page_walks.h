// Page walks ahead of a stream, for the skinny forward (gemm.cpp's run_dot), whose dot kernels read
// W once from memory, a block of 3-6 of its rows at a time.
//
// A 4 KiB page costs a walk where it is first touched. Left to the stream, that is the prefetch
// running ahead of each row of a block, those few rows' next pages at a time, and nothing after it
// retires until the walk ends (a nested walk, under KVM). Touching one line of every page of a chunk
// of rows at once lets a chunk's walks overlap each other, and its stream then finds its pages in
// the TLB. The row streaming (the input grad), whose sweeps read 8 rows of W at a time, measured
// no gain (0.96-1.00x at 1-16 rows × 4096²).
#pragma once

#include <cstdint>

namespace linear_ext::cpu {

// Rows are touched a chunk of about this many bytes at a time; the L2 TLB (Zen 4: 3072 entries,
// 12 MiB of 4 KiB pages) keeps two chunks' pages. A standalone loop, forward 6 / 8 rows × 4096²
// (1 thread, Zen 4): 12 pages at a time 1.10 / 1.07x as fast as none, 24-192 pages 1.13-1.16x, and
// within 3% of the same loop on W in 2 MiB pages. In the extension, at 4096² (rows of 16 KiB), 256
// KiB chunks (24 rows, 96 pages) ran 1.02-1.07x at 4-16 rows, 36-48 rows 0.98-1.06x, and at 6-8
// rows 96 rows 1.02-1.03x and 256 rows 0.95-0.96x.
constexpr int64_t kPageWalkChunkBytes = int64_t{256} << 10;

// Rows per chunk for rows stride_bytes apart: about `bytes` of them, in a multiple of 12 rows, the
// rows of W per block of every dot kernel (3, 4 or 6), so that chunks cut no block short.
inline int64_t page_walk_chunk_rows(int64_t bytes, int64_t stride_bytes) {
  const int64_t rows = stride_bytes > 0 ? (bytes + stride_bytes - 1) / stride_bytes : 1;
  return (rows + 11) / 12 * 12;
}

// One line of each page that rows [0, rows) lie in, rows row_bytes long and stride_bytes apart
// from `first`; a page shared by short rows is touched once. Prefetches: nothing is read.
void touch_pages(const void* first, int64_t rows, int64_t row_bytes, int64_t stride_bytes);

}  // namespace linear_ext::cpu
