// Grow-only, 64-byte-aligned scratch memory owned by one thread: packing buffers are reused
// across calls instead of being allocated (and page-faulted in) on every GEMM.
#pragma once

#include <c10/util/Exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace linear_ext::cpu {

class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(data_); }

  // Room for `count` elements of U; the contents are unspecified.
  template <typename U>
  U* get(size_t count) {
    const size_t bytes = (count * sizeof(U) + 63) / 64 * 64;
    if (bytes > bytes_) {
      std::free(data_);
      data_ = std::aligned_alloc(64, bytes);
      TORCH_CHECK(data_ != nullptr, "linear_ext: failed to allocate ", bytes, " bytes of packing memory");
      bytes_ = bytes;
    }
    return static_cast<U*>(data_);
  }

  // Room for `count` elements of U, starting on the cache line half a page (mod 4 KiB) past
  // `other`, for scratch that a kernel reads or writes in step with `other`. Zen 4 ran the
  // streaming kernels up to 1.6x slower with their two operands within about 512 bytes of each
  // other, mod 4 KiB (gemm.cpp: run_dot, run_rowstream), and where the allocator puts scratch
  // and tensors is luck.
  template <typename U>
  U* get_half_a_page_from(const void* other, size_t count) {
    const auto base = reinterpret_cast<uintptr_t>(get<char>(count * sizeof(U) + kPageBytes));
    const uintptr_t want = (reinterpret_cast<uintptr_t>(other) + kPageBytes / 2) % kPageBytes / 64 * 64;
    return reinterpret_cast<U*>(base + (want - base) % kPageBytes);
  }

  // Whether a and b lie within `bytes` of each other, mod 4 KiB.
  static bool near_mod_page(const void* a, const void* b, uintptr_t bytes) {
    const uintptr_t d = (reinterpret_cast<uintptr_t>(a) - reinterpret_cast<uintptr_t>(b)) % kPageBytes;
    return d < bytes || kPageBytes - d < bytes;
  }

 private:
  static constexpr uintptr_t kPageBytes = 4096;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace linear_ext::cpu
