// Adaptive average pooling for the CUDA backend on NHWC activations (PyTorch's bins:
// trainer/adaptive_avg_pool_math.h), own kernels (adaptive_avg_pool_kernels.cu).
#include <memory>
#include <stdexcept>
#include <string>

#include "trainer/cuda/adaptive_avg_pool_kernels.h"
#include "trainer/cuda/cuda_ops.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaAdaptiveAvgPool final : public AdaptiveAvgPoolOp {
 public:
  CudaAdaptiveAvgPool(CudaContext& ctx, int64_t batch, AdaptivePoolDims dims)
      : ctx_(ctx),
        outputs_(batch * dims.out_h * dims.out_w * dims.channels),
        inputs_(batch * dims.height * dims.width * dims.channels),
        dims_(dims) {}

  void forward(const float* x, float* y) override {
    adaptive_avg_pool_forward_nhwc(x, y, outputs_, dims_, ctx_.stream());
  }

  void backward(const float* dy, float* dx) override {
    adaptive_avg_pool_backward_nhwc(dy, dx, inputs_, dims_, ctx_.stream());
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
