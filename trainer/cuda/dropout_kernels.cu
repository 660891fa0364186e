// Dropout's kernels (dropout_kernels.h): one thread per element, grid-strided.
#include "trainer/cuda/dropout_kernels.h"

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/dropout_math.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void dropout_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                       uint8_t* __restrict__ mask, int64_t n, uint64_t key,
                                       uint32_t threshold, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const bool keep = dropout_keep(key, static_cast<uint64_t>(i), threshold);
    mask[i] = keep ? 1 : 0;
    y[i] = dropout_apply(x[i], keep, scale);
  }
}

__global__ void dropout_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                        const uint8_t* __restrict__ mask, int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dx[i] = dropout_apply(dy[i], mask[i] != 0, scale);
  }
}

}  // namespace

void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t n, uint64_t key,
                     uint32_t threshold, float scale, cudaStream_t stream) {
  if (n == 0) return;
  dropout_forward_kernel<<<grid_for(static_cast<size_t>(n), kThreads), kThreads, 0, stream>>>(
      x, y, mask, n, key, threshold, scale);
  ALEXNET_CUDA_CHECK_LAUNCH("dropout forward");
}

void dropout_backward(const float* dy, float* dx, const uint8_t* mask, int64_t n, float scale,
                      cudaStream_t stream) {
  if (n == 0) return;
  dropout_backward_kernel<<<grid_for(static_cast<size_t>(n), kThreads), kThreads, 0, stream>>>(
      dy, dx, mask, n, scale);
  ALEXNET_CUDA_CHECK_LAUNCH("dropout backward");
}

}  // namespace alexnet::trainer::cuda
