// Adaptive average pooling's kernels (adaptive_avg_pool_kernels.h): one thread per output
// (forward) or input (backward) element, so no two threads write the same place.
#include "trainer/cuda/adaptive_avg_pool_kernels.h"

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void adaptive_avg_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                                 int64_t n, AdaptivePoolDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n;
       o += stride) {
    y[o] = adaptive_avg_pool_output(x, o, d);
  }
}

__global__ void adaptive_avg_pool_backward_kernel(const float* __restrict__ dy,
                                                  float* __restrict__ dx, int64_t n,
                                                  AdaptivePoolDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dx[i] = adaptive_avg_pool_input_grad(dy, i, d);
  }
}

}  // namespace

void adaptive_avg_pool_forward_nhwc(const float* x, float* y, int64_t outputs,
                                    const AdaptivePoolDims& d, cudaStream_t stream) {
  adaptive_avg_pool_forward_kernel<<<grid_for(static_cast<size_t>(outputs), kThreads), kThreads, 0,
                                     stream>>>(x, y, outputs, d);
  ALEXNET_CUDA_CHECK_LAUNCH("adaptive average pooling forward");
}

void adaptive_avg_pool_backward_nhwc(const float* dy, float* dx, int64_t inputs,
                                     const AdaptivePoolDims& d, cudaStream_t stream) {
  adaptive_avg_pool_backward_kernel<<<grid_for(static_cast<size_t>(inputs), kThreads), kThreads, 0,
                                      stream>>>(dy, dx, inputs, d);
  ALEXNET_CUDA_CHECK_LAUNCH("adaptive average pooling backward");
}

}  // namespace alexnet::trainer::cuda
