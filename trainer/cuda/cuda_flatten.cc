// Flatten for the CUDA backend on NHWC activations: [N, H, W, C] -> [N, C * H * W] in PyTorch's
// (C, H, W) order, and the gradient back; own kernels (flatten_kernels.cu).
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/flatten_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaFlatten final : public FlattenOp {
 public:
  CudaFlatten(CudaContext& ctx, int64_t batch, FlattenDims dims)
      : ctx_(ctx), n_(batch * dims.channels * dims.height * dims.width), dims_(dims) {}

  void forward(const float* x, float* y) override {
    // One pixel per sample (AlexNet's 1x1 case) or one channel: the layouts agree, a copy.
    if (dims_.height * dims_.width == 1 || dims_.channels == 1) return copy(x, y);
    flatten_forward_nhwc(x, y, n_, dims_, ctx_.stream());
  }

  void backward(const float* dy, float* dx) override {
    if (dims_.height * dims_.width == 1 || dims_.channels == 1) return copy(dy, dx);
    flatten_backward_nhwc(dy, dx, n_, dims_, ctx_.stream());
  }

 private:
  void copy(const float* from, float* to) {
    ALEXNET_CUDA_CHECK(cudaMemcpyAsync(to, from, static_cast<size_t>(n_) * sizeof(float),
                                       cudaMemcpyDeviceToDevice, ctx_.stream()),
                       "copying through flatten");
  }

  CudaContext& ctx_;
  int64_t n_;
  FlattenDims dims_;
};

}  // namespace

std::unique_ptr<FlattenOp> make_flatten(CudaContext& ctx, int64_t batch, int64_t channels,
                                        int64_t height, int64_t width) {
  if (batch <= 0 || channels <= 0 || height <= 0 || width <= 0) {
    throw std::invalid_argument(
        "flatten: batch, channels, height and width must be positive, got " +
        std::to_string(batch) + "x" + std::to_string(channels) + "x" + std::to_string(height) +
        "x" + std::to_string(width));
  }
  return std::make_unique<CudaFlatten>(ctx, batch, FlattenDims{channels, height, width});
}

}  // namespace alexnet::trainer::cuda
