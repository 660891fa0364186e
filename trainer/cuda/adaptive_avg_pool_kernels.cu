// Adaptive average pooling on NHWC activations (PyTorch's bins; adaptive_pool_math.h), forward
// and backward, one thread per output (forward) or input (backward) element.
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/adaptive_pool_math.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/cuda/cuda_ops.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void adaptive_avg_pool_forward(const float* __restrict__ x, float* __restrict__ y,
                                          int64_t n, AdaptivePoolDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n;
       o += stride) {
    y[o] = adaptive_avg_pool_output(x, o, d);
  }
}

__global__ void adaptive_avg_pool_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                           int64_t n, AdaptivePoolDims d) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dx[i] = adaptive_avg_pool_input_grad(dy, i, d);
  }
}

class CudaAdaptiveAvgPool final : public AdaptiveAvgPoolOp {
 public:
  CudaAdaptiveAvgPool(CudaContext& ctx, int64_t batch, AdaptivePoolDims dims)
      : ctx_(ctx),
        outputs_(batch * dims.out_h * dims.out_w * dims.channels),
        inputs_(batch * dims.height * dims.width * dims.channels),
        dims_(dims) {}

  void forward(const float* x, float* y) override {
    adaptive_avg_pool_forward<<<grid_for(static_cast<size_t>(outputs_), kThreads), kThreads, 0,
                                ctx_.stream()>>>(x, y, outputs_, dims_);
    ALEXNET_CUDA_CHECK_LAUNCH("adaptive average pooling forward");
  }

  void backward(const float* dy, float* dx) override {
    adaptive_avg_pool_backward<<<grid_for(static_cast<size_t>(inputs_), kThreads), kThreads, 0,
                                 ctx_.stream()>>>(dy, dx, inputs_, dims_);
    ALEXNET_CUDA_CHECK_LAUNCH("adaptive average pooling backward");
  }

 private:
  CudaContext& ctx_;
  int64_t outputs_, inputs_;
  AdaptivePoolDims dims_;
};

}  // namespace

std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(CudaContext& ctx, int64_t batch,
                                                          int64_t channels, int64_t height,
                                                          int64_t width, int64_t out_h,
                                                          int64_t out_w) {
  if (batch <= 0 || channels <= 0 || height <= 0 || width <= 0 || out_h <= 0 || out_w <= 0) {
    throw std::invalid_argument("adaptive_avg_pool: every size must be positive, got batch " +
                                std::to_string(batch) + ", " + std::to_string(channels) + "x" +
                                std::to_string(height) + "x" + std::to_string(width) + " -> " +
                                std::to_string(out_h) + "x" + std::to_string(out_w));
  }
  return std::make_unique<CudaAdaptiveAvgPool>(
      ctx, batch, AdaptivePoolDims{channels, height, width, out_h, out_w});
}

}  // namespace alexnet::trainer::cuda
