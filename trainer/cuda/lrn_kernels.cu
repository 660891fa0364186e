// LRN kernels (lrn_kernels.h): one thread per output element; a pixel's channels are contiguous,
// so neighbouring threads read neighbouring channels and the window's re-reads hit the cache.
// Backward recomputes the denominators of the window's window (size^2 squares per element)
// rather than keeping them from forward: no state between the passes, and LRN is a small part of
// the step.
#include "io/cuda/cuda_check.h"
#include "trainer/cuda/lrn_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65536 ? blocks : 65536);
}

__global__ void lrn_forward_kernel(LrnParams p, int64_t total, const float* x, float* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % p.channels);
    y[i] = lrn_forward_at(p, x + (i - c), c);
  }
}

__global__ void lrn_backward_kernel(LrnParams p, int64_t total, const float* x, const float* dy,
                                    float* dx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(i % p.channels);
    dx[i] = lrn_backward_at(p, x + (i - c), dy + (i - c), c);
  }
}

}  // namespace

void lrn_forward_nhwc(const LrnParams& p, int64_t pixels, const float* x, float* y,
                      cudaStream_t stream) {
  const int64_t total = pixels * p.channels;
  if (total <= 0) return;
  lrn_forward_kernel<<<grid_for(total), kThreads, 0, stream>>>(p, total, x, y);
  ALEXNET_CUDA_CHECK_LAUNCH("running LRN forward");
}

void lrn_backward_nhwc(const LrnParams& p, int64_t pixels, const float* x, const float* dy,
                       float* dx, cudaStream_t stream) {
  const int64_t total = pixels * p.channels;
  if (total <= 0) return;
  lrn_backward_kernel<<<grid_for(total), kThreads, 0, stream>>>(p, total, x, dy, dx);
  ALEXNET_CUDA_CHECK_LAUNCH("running LRN backward");
}

}  // namespace alexnet::trainer::cuda
