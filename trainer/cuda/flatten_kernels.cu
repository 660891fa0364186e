// Flatten's kernels (flatten_kernels.h): each thread writes one output element (coalesced
// writes; the reads gather).
#include "trainer/cuda/flatten_kernels.h"

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void flatten_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                       int64_t n, FlattenDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    y[i] = x[flatten_source(i, d)];
  }
}

__global__ void flatten_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                        int64_t n, FlattenDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < n;
       j += stride) {
    dx[j] = dy[flatten_target(j, d)];
  }
}

}  // namespace

void flatten_forward_nhwc(const float* x, float* y, int64_t n, const FlattenDims& d,
                          cudaStream_t stream) {
  flatten_forward_kernel<<<grid_for(static_cast<size_t>(n), kThreads), kThreads, 0, stream>>>(x, y,
                                                                                              n, d);
  ALEXNET_CUDA_CHECK_LAUNCH("flattening NHWC activations");
}

void flatten_backward_nhwc(const float* dy, float* dx, int64_t n, const FlattenDims& d,
                           cudaStream_t stream) {
  flatten_backward_kernel<<<grid_for(static_cast<size_t>(n), kThreads), kThreads, 0, stream>>>(
      dy, dx, n, d);
  ALEXNET_CUDA_CHECK_LAUNCH("unflattening the gradient to NHWC");
}

}  // namespace alexnet::trainer::cuda
