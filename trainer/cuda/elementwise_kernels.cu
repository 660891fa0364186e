// Whole-buffer kernels of the CUDA backend: the deterministic sum of squares (reduction.h) and
// x *= factor (cuda_ops.h).
#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/reduction.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

// Pass 1: block b sums the squares of its grid-stride share of x into partial[b]. The grid depends
// only on n, so every element always lands in the same block, thread and order.
__global__ void sum_of_squares_blocks(const float* __restrict__ x, size_t n,
                                      double* __restrict__ partial) {
  __shared__ double shared[kThreads];
  double sum = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * kThreads;
  for (size_t i = static_cast<size_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double v = x[i];
    sum += v * v;  // a float squared is exact in double; Inf and NaN carry through
  }
  sum = block_sum<kThreads>(sum, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

// Pass 2: one block adds the partial sums, in a fixed order, into partial[blocks].
__global__ void sum_partials(double* partial, unsigned blocks) {
  __shared__ double shared[kThreads];
  double sum = 0;
  for (unsigned i = threadIdx.x; i < blocks; i += kThreads) sum += partial[i];
  sum = block_sum<kThreads>(sum, shared);
  if (threadIdx.x == 0) partial[blocks] = sum;
}

__global__ void scale_kernel(float* __restrict__ x, size_t n, float factor) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    x[i] *= factor;
  }
}

}  // namespace

SumOfSquares::SumOfSquares(CudaContext& ctx)
    : ctx_(ctx),
      partial_(ctx.allocate((kMaxBlocks + 1) * sizeof(double), "the sum of squares' partial sums")),
      result_(ctx.pinned(sizeof(double))) {}

double SumOfSquares::operator()(const float* x, size_t n) {
  if (n == 0) return 0;
  auto* partial = static_cast<double*>(partial_.get());
  // Four elements a thread at least: the blocks' sums then stay few for small buffers.
  const unsigned blocks = grid_for((n + 3) / 4, kThreads, kMaxBlocks);
  sum_of_squares_blocks<<<blocks, kThreads, 0, ctx_.stream()>>>(x, n, partial);
  ALEXNET_CUDA_CHECK_LAUNCH("summing squares");
  sum_partials<<<1, kThreads, 0, ctx_.stream()>>>(partial, blocks);
  ALEXNET_CUDA_CHECK_LAUNCH("adding the partial sums of squares");
  ALEXNET_CUDA_CHECK(cudaMemcpyAsync(result_.get(), partial + blocks, sizeof(double),
                                     cudaMemcpyDeviceToHost, ctx_.stream()),
                     "copying the sum of squares to the host");
  ALEXNET_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()), "waiting for the sum of squares");
  return *static_cast<const double*>(result_.get());
}

void scale(CudaContext& ctx, float* x, size_t n, float factor) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(x, n, factor);
  ALEXNET_CUDA_CHECK_LAUNCH("scaling a buffer");
}

}  // namespace alexnet::trainer::cuda
