// Picks the micro-kernels for this CPU once per process: the widest ISA the CPU (and OS) supports,
// or the one named by LINEAR_EXT_CPU_ISA.
#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

#include "cpu/kernels/kernels.h"

namespace linear_ext::cpu {
namespace {

bool cpu_supports(const std::string& isa) {
  if (isa == "generic") return true;
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512") return __builtin_cpu_supports("avx512f");
  return false;
}

const IsaKernels& detect() {
  if (const char* forced = std::getenv("LINEAR_EXT_CPU_ISA"); forced && *forced) {
    const std::string isa = forced;
    TORCH_CHECK(isa == "generic" || isa == "avx2" || isa == "avx512",
                "LINEAR_EXT_CPU_ISA must be one of generic, avx2, avx512; got '", isa, "'");
    TORCH_CHECK(cpu_supports(isa), "LINEAR_EXT_CPU_ISA=", isa, " but this CPU does not support ", isa);
    if (isa == "avx512") return kAvx512Kernels;
    if (isa == "avx2") return kAvx2Kernels;
    return kGenericKernels;
  }
  if (cpu_supports("avx512")) return kAvx512Kernels;
  if (cpu_supports("avx2")) return kAvx2Kernels;
  return kGenericKernels;
}

}  // namespace

const IsaKernels& cpu_kernels() {
  static const IsaKernels& selected = detect();
  return selected;
}

const Bf16PairKernels* bf16_pair_kernels() {
  static const Bf16PairKernels* selected = [] {
    const char* allowed = std::getenv("LINEAR_EXT_CPU_BF16_DOT");
    const bool off = allowed && std::string(allowed) == "0";
    return !off && &cpu_kernels() == &kAvx512Kernels && __builtin_cpu_supports("avx512bf16") ? &kAvx512Bf16PairKernels
                                                                                               : nullptr;
  }();
  return selected;
}

}  // namespace linear_ext::cpu
