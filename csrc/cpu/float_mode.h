// Worker threads compute with the calling thread's floating-point mode.
//
// torch.set_flush_denormal sets flush-to-zero / denormals-are-zero (x86 MXCSR) on the calling
// thread only; OpenMP workers keep their own. A GEMM split over threads would then round some
// blocks differently from others, and its result would depend on the thread count. FloatMode
// captures the caller's mode; a FloatModeScope applies it in a worker and restores the worker's.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define LINEAR_EXT_HAS_MXCSR 1
#endif

namespace linear_ext::cpu {

class FloatMode {
 public:
#if LINEAR_EXT_HAS_MXCSR
  static FloatMode current() { return FloatMode(_mm_getcsr() & kFlushBits); }

 private:
  friend class FloatModeScope;
  static constexpr unsigned kFlushBits = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  explicit FloatMode(unsigned bits) : bits_(bits) {}
  unsigned bits_;
#else
  static FloatMode current() { return FloatMode(); }
#endif
};

class FloatModeScope {
 public:
#if LINEAR_EXT_HAS_MXCSR
  explicit FloatModeScope(FloatMode mode) : saved_(_mm_getcsr()) {
    _mm_setcsr((saved_ & ~FloatMode::kFlushBits) | mode.bits_);
  }
  ~FloatModeScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  explicit FloatModeScope(FloatMode) {}
#endif
  FloatModeScope(const FloatModeScope&) = delete;
  FloatModeScope& operator=(const FloatModeScope&) = delete;
};

}  // namespace linear_ext::cpu
