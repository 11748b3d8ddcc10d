// Grow-only, 64-byte-aligned scratch memory owned by one thread: packing buffers are reused
// across calls instead of being allocated (and page-faulted in) on every GEMM.
#pragma once

#include <c10/util/Exception.h>

#include <cstddef>
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

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace linear_ext::cpu
