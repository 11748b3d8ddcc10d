// The per-ISA CPU kernels: micro-kernels, packing routines and skinny dot-product kernels. Every
// GEMM layout runs on these; the blocking loops around them (cpu/gemm.cpp) are ISA-independent.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

namespace linear_ext::cpu {

// A micro-kernel computes one MR×NR tile of C from two panels:
//   C_out[i][j] = (C_in ? C_in[i][j] : 0) + Σ_{p<kc} A[p·MR + i] · B[p·ldb + j] + (bias ? bias[j] : 0)
// for i < m ≤ MR and j < n ≤ NR. A is an MR-row sliver packed k-major (zero-padded to MR). B is
// either a packed NR-column sliver (ldb = NR, zero-padded, 64-byte aligned) or, for skinny GEMMs
// that use each B element about once, NR full columns of the unpacked row-major operand (ldb =
// its row stride; edge slivers are always packed). C is row-major with the given
// leading dimensions; only its m×n corner is read or written, and C_in may alias C_out.
// The sum over p runs in order with one FMA per step, so a tile's bits do not depend on threading.
template <typename acc_t>
using MicroKernelFn = void (*)(int64_t kc, const acc_t* a, const acc_t* b, int64_t ldb, const acc_t* c_in,
                               int64_t ldc_in, acc_t* c_out, int64_t ldc_out, const acc_t* bias, int m, int n);

// A micro-kernel that also packs B: b is NR full columns of a row-major B (ldb its row stride),
// and each of its kc rows is stored to b_packed (NR apart, the packed-sliver layout) as it is read.
// The sliver is packed while its first tile of C is computed, where the loads from L3 or memory
// overlap the FMAs, instead of in a pass of its own.
template <typename acc_t>
using PackingMicroKernelFn = void (*)(int64_t kc, const acc_t* a, const acc_t* b, int64_t ldb, acc_t* b_packed,
                                      const acc_t* c_in, int64_t ldc_in, acc_t* c_out, int64_t ldc_out,
                                      const acc_t* bias, int m, int n);

// A micro-kernel reading A in place: `a` is MR rows of a row-major A (lda apart) rather than a
// packed sliver, and only its first m rows are read. Otherwise as MicroKernelFn.
template <typename acc_t>
using RowMajorAMicroKernelFn = void (*)(int64_t kc, const acc_t* a, int64_t lda, const acc_t* b, int64_t ldb,
                                        const acc_t* c_in, int64_t ldc_in, acc_t* c_out, int64_t ldc_out,
                                        const acc_t* bias, int m, int n);

// A micro-kernel reading A in place and packing B: a as for RowMajorAMicroKernelFn, b and b_packed
// as for PackingMicroKernelFn.
template <typename acc_t>
using RowMajorAPackingMicroKernelFn = void (*)(int64_t kc, const acc_t* a, int64_t lda, const acc_t* b, int64_t ldb,
                                               acc_t* b_packed, const acc_t* c_in, int64_t ldc_in, acc_t* c_out,
                                               int64_t ldc_out, const acc_t* bias, int m, int n);

// narrow[v] (null where an ISA has none) is the same kernel over the first (v + 1)·vec columns of
// the NR-wide sliver only: the edge sliver of a C whose width is not a multiple of NR then costs
// what its columns need (784 = 16·48 + 16 columns: a 16-wide last tile, not a third of a 48-wide one).
template <typename acc_t>
struct MicroKernel {
  MicroKernelFn<acc_t> run;
  int mr, nr;
  int vec;  // columns per vector register
  MicroKernelFn<acc_t> narrow[2];
  PackingMicroKernelFn<acc_t> run_packing_b;  // MR×NR, null where an ISA has none
  // row_major_a[v]: the kernel over (v + 1)·vec columns reading A in place; up to NR, the rest
  // null (all of them where an ISA has none).
  RowMajorAMicroKernelFn<acc_t> row_major_a[3];
  RowMajorAPackingMicroKernelFn<acc_t> row_major_a_packing_b;  // MR×NR, null where an ISA has none
  // few_rows[r] / row_major_a_few_rows[r]: run / row_major_a[NR / vec - 1] over only the first
  // 2·(r + 1) rows of the tile (null where an ISA has none): the last row sliver of rows that are
  // not a multiple of MR then costs what its rows need (batch 128 = 21·6 + 2 rows: a 2-row last
  // sliver, not a third of a 6-row one). A packed A sliver still holds MR rows per k-step.
  MicroKernelFn<acc_t> few_rows[3];
  RowMajorAMicroKernelFn<acc_t> row_major_a_few_rows[3];

  // The kernel for an m×n tile (m ≤ mr, n ≤ nr).
  MicroKernelFn<acc_t> for_tile(int m, int n) const {
    if (n < nr) {
      const int v = vectors(n) - 1;
      return v < 2 && narrow[v] ? narrow[v] : run;
    }
    const MicroKernelFn<acc_t> shorter = for_rows(few_rows, m);
    return shorter ? shorter : run;
  }
  RowMajorAMicroKernelFn<acc_t> row_major_a_for_tile(int m, int n) const {
    const RowMajorAMicroKernelFn<acc_t> shorter = n == nr ? for_rows(row_major_a_few_rows, m) : nullptr;
    return shorter ? shorter : row_major_a[vectors(n) - 1];
  }

 private:
  int vectors(int n) const { return (n + vec - 1) / vec; }
  // The few-rows kernel of `table` for an m-row tile; null for a full one, or where there is none.
  template <typename Fn>
  Fn for_rows(const Fn (&table)[3], int m) const {
    const int r = (m + 1) / 2 - 1;
    return m < mr && r < 3 ? table[r] : nullptr;
  }
};

// Packs `width` vectors of kc elements each, converted to acc_t, into ceil(width / R) k-major
// slivers of R vectors, one after another:
//   dst[(i / R)·R·kc + p·R + i % R] = src[i·vs + p·ks], zero-padded up to a multiple of R.
// A-slivers are rows of A (vs = A's row stride), B-slivers columns of B (vs = B's column stride).
// With sums (the bias grad's row sums of A = dYᵀ), sums[i] += each packed value of vector i, in k
// order, for i < width: added as the values are packed, not in a second pass over the slivers.
template <typename T, typename acc_t>
using PackFn = void (*)(const T* src, int64_t vs, int64_t ks, int64_t width, int R, int64_t kc, acc_t* dst,
                        acc_t* sums);

// Skinny forward (few rows of X, both operands contiguous along k), one dot product per output:
//   y[i·ldy + j] = Σ_{p<k} x[i·ldx + p] · w[j·ldw + p] + (bias ? bias[j] : 0)   for i < m, j < n,
// summed in acc_t (vector lanes, then lanes added in a fixed order) and rounded to T once. With
// several blocks of X rows (up to kDotChunkedMaxRows rows), k is walked in chunks of about kc
// (block_sizes.h: dot_kc), deep enough to amortise the parked accumulators, shallow enough for a
// block of W rows to stay in L1; the bits do not depend on kc. w_streams: W is too large for L3
// (block_sizes.h: streams_b) and is read from memory once, which favours fewer rows of W per block.
template <typename T, typename acc_t>
using DotKernelFn = void (*)(int64_t m, int64_t n, int64_t k, int64_t kc, bool w_streams, const T* x, int64_t ldx,
                             const T* w, int64_t ldw, const acc_t* bias, T* y, int64_t ldy);
constexpr int64_t kDotChunkedMaxRows = 16;

// Where the skinny forward runs the dot kernels rather than the packed loops (gemm.cpp): at m rows
// of X (1 ≤ m ≤ kDotChunkedMaxRows) when K > min_k[m], and whenever W streams from memory, where the
// packed loops' few-row chunks of W ran 1.5-6x slower at any K (Zen 4, AVX-512 and AVX2). Each dot
// product ends in a reduction across lanes, a cost per output that the packed loops avoid by
// packing W; where the two cross depends on the dot block for m rows and on each path's rate for
// the dtype, so every ISA and dtype carries its own, measured (isa_<name>.cpp).
struct DotMinDepth {
  int16_t min_k[kDotChunkedMaxRows + 1];  // by rows of X; [0] unused
};

// min_k[m] = per_row · m.
constexpr DotMinDepth dot_min_depth_per_row(int per_row) {
  DotMinDepth d{};
  for (int m = 0; m <= kDotChunkedMaxRows; ++m) d.min_k[m] = static_cast<int16_t>(per_row * m);
  return d;
}

// Zen 3 (AVX2, float32, 1 thread, 2-16 rows × 1024 outputs), and the default: K at or below 8 per
// row ran 10-140% faster packed (8 × 4096 × K = 10: 3x), above it 5-100% faster as dot products.
constexpr DotMinDepth kDotMinDepthZen3 = dot_min_depth_per_row(8);

// Fewest rows of A, row-major B (unit column stride), each B row read once in address order:
//   y[i·ldy + j] = Σ_{p<k} a[i·a_rs + p·a_cs] · b[p·ldb + j] + (bias ? bias[j] : 0)   for i < m, j < n,
// summed in `acc` (m·rowstream_acc_stride(n) acc_t of scratch) and rounded to T once: in p order,
// but for outputs of at most four vectors, whose k may be dealt round-robin to up to four partial
// sums (added in a fixed order; the order depends on m and n only). Rows of A are taken in blocks
// of up to kRowStreamMaxRows, each loading a B vector once; gemm.cpp runs it for up to that many
// rows, and for up to kSkinnyRows when B streams from memory.
// b_streams: B is too large for L3 (block_sizes.h: streams_b) and is read from memory once.
// y null: nothing is stored, the sums (without bias) stay in acc, rows rowstream_acc_stride(n) apart.
template <typename T, typename acc_t>
using RowStreamFn = void (*)(int64_t m, int64_t n, int64_t k, bool b_streams, const T* a, int64_t a_rs, int64_t a_cs,
                             const T* b, int64_t ldb, const acc_t* bias, T* y, int64_t ldy, acc_t* acc);
constexpr int64_t kRowStreamMaxRows = 8;

// The row stride of RowStreamFn's acc: one cache line past n, so that the rows of a page-multiple
// width do not all fall in the same L1 sets as B's rows (8 rows × 4096 columns measured ~30% faster
// than with rows n apart), and so that a last partial vector of columns can be one whole vector.
template <typename acc_t>
constexpr int64_t rowstream_acc_stride(int64_t n) {
  return n + 64 / static_cast<int64_t>(sizeof(acc_t));
}

// How the streaming kernels (dot products, row streaming) read the operand that passes through them
// once, from memory: each row they read is prefetched some bytes ahead of use (within that distance
// of its end, the same row of the next block), into the cache that `locality` names
// (__builtin_prefetch's: 3 for L1, 2 for L2). Every ISA's vector traits carry one (V::stream),
// measured on the CPUs that ISA was tuned on (isa_<name>.cpp).
struct StreamTuning {
  int locality;
  int dot_prefetch_bytes;        // ahead in each row of W (the dot kernels)
  int rowstream_prefetch_bytes;  // ahead in each row of B (the row-streaming sweeps)
  // Rows of B per sweep when A has one or two rows (more rows' broadcasts fill the registers with
  // four): more concurrent streams for the memory system to overlap.
  int rowstream_few_rows_group;
  // Rows of B per sweep, at any rows of A, where the FMAs take A's values as broadcast memory
  // operands (rowstream_sweep), for a B that streams from memory or 16-bit values; 0 where the ISA
  // has no such operand.
  int rowstream_operand_group;
};

// Zen 3 (the AVX2 kernels), and the default: into L1, 256-512 bytes ahead measured 5-10% faster
// than 1024 for the batch-1 forward and input grad (4096²), and 2048 slower still. AVX2 has no
// broadcast operand: separate broadcast loads measured 0.82-0.98x at 3-8 rows (Zen 4).
constexpr StreamTuning kL1StreamTuning = {3, 512, 512, 4, 0};

// dst[i·ld_dst + j] = src[i·ld_src + j] rounded to T (to nearest, ties to even, as c10's
// conversions: NaN stays NaN, subnormals and overflow to ±Inf as IEEE), for i < m, j < n: a tile of
// a 16-bit GEMM's float sums to its output. One call per tile rather than per row: a bfloat16 weight
// grad at batch 1-16 × 4096², where each value is a few multiply-adds, ran 1.14-1.22x as fast on 1
// thread and 1.27-1.35x on 2 (its output's pages mapped; 1.08-1.15x on fresh pages), the MNIST
// 784→512 and 512→256 weight grads 1.03-1.20x (Zen 4, one process alternating both).
template <typename T, typename acc_t>
using RoundFn = void (*)(const acc_t* src, int64_t ld_src, int64_t m, int64_t n, T* dst, int64_t ld_dst);

// The routines for one source dtype T (accumulating in acc_t); `round` is null where T == acc_t.
template <typename T, typename acc_t>
struct TypeKernels {
  PackFn<T, acc_t> pack;
  DotKernelFn<T, acc_t> dot;
  DotMinDepth dot_min_depth;
  RowStreamFn<T, acc_t> rowstream;
  RoundFn<T, acc_t> round;
};

// Everything one ISA provides.
struct IsaKernels {
  const char* isa;
  MicroKernel<float> f32;
  MicroKernel<double> f64;
  TypeKernels<float, float> for_f32;
  TypeKernels<double, double> for_f64;
  TypeKernels<c10::BFloat16, float> for_bf16;
  TypeKernels<c10::Half, float> for_f16;

  template <typename acc_t>
  const MicroKernel<acc_t>& micro_kernel() const {
    if constexpr (sizeof(acc_t) == sizeof(float)) {
      return f32;
    } else {
      return f64;
    }
  }

  template <typename T>
  const auto& for_type() const {
    if constexpr (std::is_same_v<T, float>) {
      return for_f32;
    } else if constexpr (std::is_same_v<T, double>) {
      return for_f64;
    } else if constexpr (std::is_same_v<T, c10::BFloat16>) {
      return for_bf16;
    } else {
      static_assert(std::is_same_v<T, c10::Half>, "linear_ext CPU kernels support float, double, bfloat16, half");
      return for_f16;
    }
  }
};

// The packed GEMM loops for bfloat16 on a dot-product instruction that takes two k-steps at once
// (isa_avx512_bf16.cpp): `pack` stores each pair of k-steps as one 32-bit word, a sliver kc/2
// (rounded up) words deep, and `uk` consumes one such word per k-step. gemm.cpp then counts the
// micro-kernel's k-steps, and the slivers' depth, in pairs.
// `dot` is the skinny forward's dot kernel on the same instruction: rows of X and W, contiguous
// along k, are read as pairs where they lie; dot_min_depth goes with these packed loops.
// `rowstream` interleaves pairs of B's rows in registers (outputs of at most 64 columns, the narrow
// ones of rowstream_simd.h, stay on the float32 kernel).
struct Bf16PairKernels {
  MicroKernel<float> uk;
  PackFn<c10::BFloat16, float> pack;
  DotKernelFn<c10::BFloat16, float> dot;
  RowStreamFn<c10::BFloat16, float> rowstream;
  DotMinDepth dot_min_depth;
};

// Defined in isa_<name>.cpp, each compiled for its ISA only.
extern const IsaKernels kGenericKernels;
extern const IsaKernels kAvx2Kernels;
extern const IsaKernels kAvx512Kernels;
extern const Bf16PairKernels kAvx512Bf16PairKernels;

// The best kernels this CPU runs, detected once. LINEAR_EXT_CPU_ISA=generic|avx2|avx512 forces
// a path (tests use it to cover each one); asking for one the CPU lacks is an error.
const IsaKernels& cpu_kernels();

// The pair kernels where cpu_kernels() is the AVX-512 set and the CPU has AVX512_BF16, else null;
// LINEAR_EXT_CPU_BF16_DOT=0 turns them off (their subnormal handling: isa_avx512_bf16.cpp).
const Bf16PairKernels* bf16_pair_kernels();

}  // namespace linear_ext::cpu
