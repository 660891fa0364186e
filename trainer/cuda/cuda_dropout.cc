// Inverted dropout for the CUDA backend: own kernels (dropout_kernels.cu; cuDNN's dropout draws
// from its own generator state), the mask of trainer/dropout_math.h, so the same bits as the CPU
// backends for the same key.
#include <memory>
#include <stdexcept>
#include <string>

#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/dropout_kernels.h"
#include "trainer/dropout_math.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaDropout final : public DropoutOp {
 public:
  CudaDropout(CudaContext& ctx, int64_t n, double p)
      : ctx_(ctx),
        n_(n),
        threshold_(dropout_threshold(p)),
        scale_(static_cast<float>(dropout_scale(p))),
        mask_(ctx.allocate(static_cast<size_t>(n), "dropout's mask")) {}

  void forward(const DropoutKey& key, const float* x, float* y) override {
    dropout_forward(x, y, static_cast<uint8_t*>(mask_.get()), n_,
                    dropout_stream(key.seed, key.step, key.rank, key.layer), threshold_, scale_,
                    ctx_.stream());
  }

  void backward(const float* dy, float* dx) override {
    dropout_backward(dy, dx, static_cast<const uint8_t*>(mask_.get()), n_, scale_, ctx_.stream());
  }

 private:
  CudaContext& ctx_;
  int64_t n_;
  uint32_t threshold_;
  float scale_;
  DeviceBuffer mask_;  // uint8 [n]: 1 kept, 0 dropped, from the last forward
};

}  // namespace

std::unique_ptr<DropoutOp> make_dropout(CudaContext& ctx, int64_t elements, double p) {
  if (elements < 0) {
    throw std::invalid_argument("dropout: n must not be negative, got " + std::to_string(elements));
  }
  if (!(p >= 0 && p <= 1)) {
    throw std::invalid_argument("dropout: p must be in [0, 1], got " + std::to_string(p));
  }
  return std::make_unique<CudaDropout>(ctx, elements, p);
}

}  // namespace alexnet::trainer::cuda
