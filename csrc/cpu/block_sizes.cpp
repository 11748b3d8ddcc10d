#include "cpu/block_sizes.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace linear_ext::cpu {
namespace {

struct CacheSizes {
  int64_t l1, l2, l3;  // bytes per core for L1/L2; the whole shared L3
};

int64_t sysconf_or(int name, int64_t fallback) {
  const long v = sysconf(name);
  return v > 0 ? v : fallback;
}

// The L3 this core shares, as the kernel reports it ("32768K"), else sysconf's. glibc's sysconf
// reports a whole AMD package's L3 (256 MiB on an EPYC whose cores each share a 32 MiB slice).
int64_t l3_bytes(int64_t fallback) {
  std::ifstream file("/sys/devices/system/cpu/cpu0/cache/index3/size");
  int64_t kib = 0;
  char unit = 0;
  if (file >> kib >> unit && unit == 'K' && kib > 0) return kib << 10;
  return sysconf_or(_SC_LEVEL3_CACHE_SIZE, fallback);
}

const CacheSizes& cache_sizes() {
  // Fallbacks (when the OS does not say) are those of a typical AVX2 server core.
  static const CacheSizes sizes = {
      sysconf_or(_SC_LEVEL1_DCACHE_SIZE, 32 << 10),
      sysconf_or(_SC_LEVEL2_CACHE_SIZE, 512 << 10),
      l3_bytes(16 << 20),
  };
  return sizes;
}

int64_t round_down(int64_t x, int64_t multiple) { return std::max(multiple, x / multiple * multiple); }

// The most rows of a packed A panel: about 1024 (panels of 2048 rows measured slower, the A panel
// then streaming from further out), rounded up to MR so that a 1024-row block (each thread's half
// of a 2048-row GEMM) is one panel and packs B once, not twice: 2048³ forward on 2 threads ~1% faster.
int64_t max_panel_rows(int mr) { return (1024 + mr - 1) / mr * mr; }

// Half of L1 holds the MR×KC sliver of A that the micro-kernel broadcasts from for every NR columns
// of B; the rest is for B's stream and the C tile. KC ≥ 128 amortises the C tile's load and store.
int64_t l1_kc(int mr, int64_t elem) { return std::max<int64_t>(round_down(cache_sizes().l1 / 2 / (mr * elem), 64), 128); }

// The largest KC of the packed loops: at most 384, which keeps the KC×NC block of B wide.
int64_t packed_kc(int mr, int64_t elem) { return std::min<int64_t>(l1_kc(mr, elem), 384); }

// K in equal steps of at most kc, in multiples of 8 (the packers' transpose width): K = 784 runs
// as 264 + 264 + 256 rather than 384 + 384 + 16, whose thin last step pays a whole pass over C.
int64_t equal_k_steps(int64_t k, int64_t kc) {
  const int64_t steps = std::max<int64_t>(1, (k + kc - 1) / kc);
  return std::max<int64_t>(8, ((k + steps - 1) / steps + 7) / 8 * 8);
}

}  // namespace

BlockSizes block_sizes(int mr, int nr, size_t elem_size, int64_t k, bool a_in_place) {
  const CacheSizes& cache = cache_sizes();
  const auto elem = static_cast<int64_t>(elem_size);
  // Read in place, A is not packed and B is packed one NR-column panel at a time: there is no KC×NC
  // block to keep wide, so KC comes from L1 alone (K = 512 then takes one step, not two: the MNIST
  // 784→512 input grad measured 3-5% faster).
  const int64_t kc = equal_k_steps(k, a_in_place ? l1_kc(mr, elem) : packed_kc(mr, elem));
  // Half of L2 holds the KC×NC block of B, streamed through once per MR rows of the A panel. NC
  // follows the actual depth: a shallow GEMM's block fills L2 with more columns, so that C is
  // written in longer row runs and each A sliver serves more tiles (a weight grad at batch 4
  // writing a 4096×4096 C in one block rather than 13 measured ~15% faster).
  const int64_t nc = round_down(cache.l2 / 2 / (kc * elem), nr);
  // A quarter of L3 holds the MC×KC panel of A, re-read for every B block.
  const int64_t mc =
      std::clamp<int64_t>(round_down(cache.l3 / 4 / (packed_kc(mr, elem) * elem), mr), mr, max_panel_rows(mr));
  return {mc, kc, nc};
}

bool streams_b(size_t elem_size, int64_t n, int64_t k) {
  // A B that stays in L3 is read faster by the packed loops (B blocks in L2, tiles of KC = 384
  // deep) than streamed 16 rows at a time: input grads of 8-16 rows × 512²-2048² measured 15-30%
  // faster packed (Zen 3). From memory, streaming stays ahead (16 rows × 4096²: ~6%).
  return k * n * static_cast<int64_t>(elem_size) > cache_sizes().l3 / 2;
}

BlockSizes skinny_block_sizes(int mr, int nr, size_t elem_size, int64_t n, int64_t k) {
  const int64_t row_bytes = std::max<int64_t>(n, 1) * static_cast<int64_t>(elem_size);
  // A B that fits in half of L2 is read from cache, not streamed: the regular KC, so that C is
  // loaded and stored as few times as for any GEMM.
  if (k * row_bytes <= cache_sizes().l2 / 2) return {max_panel_rows(mr), packed_kc(mr, static_cast<int64_t>(elem_size)), std::max<int64_t>(n, nr)};
  // Else KC full rows of B in half of L1 where they fit, else 16: few enough rows for the hardware
  // prefetchers to follow each one as a stream, enough to amortise the C tile's load and store.
  const int64_t kc = std::clamp<int64_t>(round_down(cache_sizes().l1 / 2 / row_bytes, 8), 16, 256);
  return {max_panel_rows(mr), kc, std::max<int64_t>(n, nr)};
}

int64_t l3_cache_bytes() { return cache_sizes().l3; }

int64_t dot_kc(size_t elem_size) {
  // Half of L1 for a block of up to four rows of W (the widest dot kernel's NB).
  return round_down(cache_sizes().l1 / 2 / (4 * static_cast<int64_t>(elem_size)), 64);
}

}  // namespace linear_ext::cpu
