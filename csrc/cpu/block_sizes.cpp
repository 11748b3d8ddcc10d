#include "cpu/block_sizes.h"

#include <unistd.h>

#include <algorithm>

namespace linear_ext::cpu {
namespace {

struct CacheSizes {
  int64_t l1, l2, l3;  // bytes per core for L1/L2; the whole shared L3
};

int64_t sysconf_or(int name, int64_t fallback) {
  const long v = sysconf(name);
  return v > 0 ? v : fallback;
}

const CacheSizes& cache_sizes() {
  // Fallbacks (when the OS does not say) are those of a typical AVX2 server core.
  static const CacheSizes sizes = {
      sysconf_or(_SC_LEVEL1_DCACHE_SIZE, 32 << 10),
      sysconf_or(_SC_LEVEL2_CACHE_SIZE, 512 << 10),
      sysconf_or(_SC_LEVEL3_CACHE_SIZE, 16 << 20),
  };
  return sizes;
}

int64_t round_down(int64_t x, int64_t multiple) { return std::max(multiple, x / multiple * multiple); }

// Half of L1 holds the MR×KC sliver of A that the micro-kernel broadcasts from for every NR columns
// of B; the rest is for B's stream and the C tile. KC ≥ 128 amortises the C tile's load and store.
int64_t l1_kc(int mr, int64_t elem) { return std::max<int64_t>(round_down(cache_sizes().l1 / 2 / (mr * elem), 64), 128); }

}  // namespace

BlockSizes block_sizes(int mr, int nr, size_t elem_size) {
  const CacheSizes& cache = cache_sizes();
  const auto elem = static_cast<int64_t>(elem_size);
  // KC ≤ 384 keeps the B block wide.
  const int64_t kc = std::min<int64_t>(l1_kc(mr, elem), 384);
  const int64_t nc = nc_for_depth(nr, elem_size, kc);
  // A quarter of L3 holds the MC×KC panel of A, re-read for every B block.
  const int64_t mc = std::clamp<int64_t>(round_down(cache.l3 / 4 / (kc * elem), mr), mr, 1024 / mr * mr);
  return {mc, kc, nc};
}

int64_t nc_for_depth(int nr, size_t elem_size, int64_t kc) {
  // Half of L2 holds the KC×NC block of B, streamed through once per MR rows of the A panel.
  return round_down(cache_sizes().l2 / 2 / (kc * static_cast<int64_t>(elem_size)), nr);
}

int64_t in_place_kc(int mr, size_t elem_size) { return l1_kc(mr, static_cast<int64_t>(elem_size)); }

BlockSizes skinny_block_sizes(int mr, int nr, size_t elem_size, int64_t n, int64_t k) {
  const int64_t row_bytes = std::max<int64_t>(n, 1) * static_cast<int64_t>(elem_size);
  // A B that fits in half of L2 is read from cache, not streamed: the regular KC, so that C is
  // loaded and stored as few times as for any GEMM.
  if (k * row_bytes <= cache_sizes().l2 / 2) return {1024 / mr * mr, block_sizes(mr, nr, elem_size).kc, std::max<int64_t>(n, nr)};
  // Else KC full rows of B in half of L1 where they fit, else 16: few enough rows for the hardware
  // prefetchers to follow each one as a stream, enough to amortise the C tile's load and store.
  const int64_t kc = std::clamp<int64_t>(round_down(cache_sizes().l1 / 2 / row_bytes, 8), 16, 256);
  return {1024 / mr * mr, kc, std::max<int64_t>(n, nr)};
}

}  // namespace linear_ext::cpu
