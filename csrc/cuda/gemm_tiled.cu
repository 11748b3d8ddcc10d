// A first correct CUDA GEMM: one shared-memory tiled kernel for every dtype and layout.
//
// Shapes: C (M×N) = A (M×K) · B (K×N) [+ bias], A and B strided (gemm_problem.h).
// Tiling: a block of NUM_THREADS = (BM/TM)·(BN/TN) threads computes a BM×BN tile of C, marching
// over K in BK-deep steps; each step stages an A tile (BM×BK) and a B tile (BK×BN) in shared
// memory, converted to acc_t, and each thread accumulates a TM×TN register tile.
// Global loads walk the tile along whichever operand dimension is unit-stride, so a warp reads
// consecutive addresses for row-major and column-major (transposed) operands alike.
// Row sums (the bias grad of the weight-grad GEMM) are added up by the blocks of the first
// column of tiles, from the A tiles they stage anyway: thread i sums row i in k order.
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include "cuda/gemm.cuh"

namespace linear_ext::cuda {
namespace {

constexpr int BM = 64, BN = 64, BK = 16, TM = 4, TN = 4;
constexpr int NUM_THREADS = (BM / TM) * (BN / TN);
static_assert(NUM_THREADS >= BM, "row sums need one thread per tile row");

// tile[k][x] = V(k0 + k, x0 + x) for an operand viewed as (k, x), zero outside it. Consecutive
// threads take consecutive elements along V's unit-stride dimension (coalesced reads); the +1 row
// pad keeps the stores conflict-free when that dimension is k.
template <int KT, int XT, typename T, typename acc_t>
__device__ void stage_tile(const MatrixRef<T>& v, int64_t k0, int64_t x0, acc_t (*tile)[XT + 1]) {
  const bool x_contig = v.layout.cs == 1;
  for (int e = threadIdx.x; e < KT * XT; e += NUM_THREADS) {
    const int k = x_contig ? e / XT : e % KT;
    const int x = x_contig ? e % XT : e / KT;
    const int64_t gk = k0 + k, gx = x0 + x;
    tile[k][x] = (gk < v.layout.rows && gx < v.layout.cols)
                     ? static_cast<acc_t>(v.base[gk * v.layout.rs + gx * v.layout.cs])
                     : acc_t(0);
  }
}

template <typename T>
__global__ void __launch_bounds__(NUM_THREADS) gemm_tiled_kernel(GemmProblem<T> p) {
  using acc_t = at::opmath_type<T>;
  // As[k][m] = A(m0 + m, k0 + k) and Bs[k][n] = B(k0 + k, n0 + n).
  __shared__ acc_t As[BK][BM + 1];
  __shared__ acc_t Bs[BK][BN + 1];

  const int64_t M = p.m(), N = p.n(), K = p.k();
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM, n0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tx = threadIdx.x % (BN / TN), ty = threadIdx.x / (BN / TN);
  const bool sum_rows = p.row_sums != nullptr && blockIdx.y == 0 && threadIdx.x < BM;
  const MatrixRef<T> a_km = p.a.transposed();  // A viewed as (k, m)

  acc_t acc[TM][TN] = {};
  acc_t row_sum = 0;
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    stage_tile<BK, BM>(a_km, k0, m0, As);
    stage_tile<BK, BN>(p.b, k0, n0, Bs);
    __syncthreads();
    if (sum_rows)
      for (int k = 0; k < BK; ++k) row_sum += As[k][threadIdx.x];
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      acc_t a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[k][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[k][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty * TM + i;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx * TN + j;
      if (m < M && n < N) {
        acc_t v = acc[i][j];
        if (p.bias) v += static_cast<acc_t>(p.bias[n]);
        p.c[m * p.ldc + n] = static_cast<T>(v);
      }
    }
  }
  if (sum_rows && m0 + threadIdx.x < M) p.row_sums[m0 + threadIdx.x] = static_cast<T>(row_sum);
}

}  // namespace

template <typename T>
void gemm(const GemmProblem<T>& problem, cudaStream_t stream) {
  const int64_t M = problem.m(), N = problem.n();
  if (M == 0) return;
  // M tiles on grid.x (up to 2³¹-1); N tiles on grid.y, at least one so that row sums are
  // produced even when N == 0.
  const int64_t n_tiles = std::max<int64_t>(1, (N + BN - 1) / BN);
  TORCH_CHECK(n_tiles <= 65535, "linear_ext CUDA GEMM: N=", N, " exceeds the supported ", 65535 * BN, " columns");
  const dim3 grid(static_cast<unsigned>((M + BM - 1) / BM), static_cast<unsigned>(n_tiles));
  gemm_tiled_kernel<T><<<grid, NUM_THREADS, 0, stream>>>(problem);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void gemm<float>(const GemmProblem<float>&, cudaStream_t);
template void gemm<double>(const GemmProblem<double>&, cudaStream_t);
template void gemm<c10::BFloat16>(const GemmProblem<c10::BFloat16>&, cudaStream_t);
template void gemm<c10::Half>(const GemmProblem<c10::Half>&, cudaStream_t);

}  // namespace linear_ext::cuda
