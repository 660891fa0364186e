// Local response normalization over NHWC activations, in the paper's form (trainer/op_shapes.h),
// matching reference::lrn_forward / lrn_backward.
//
// Own kernels (lrn_kernels.cu), not cudnnLRNCrossChannel*: cuDNN's window is
// [c - (n-1)/2, c + n - 1 - (n-1)/2] (cudnn_ops.h), which for even sizes reaches one channel
// further up than ours ([c - size/2, c + (size-1)/2]); it accepts sizes up to 16 only
// (CUDNN_LRN_MAX_N) and k >= 1e-5; and it normalizes across dimension 1, with no documented
// support for channels-last strides. The kernels compute the reference's form for every shape and
// need no transposes, no workspace and nothing kept between forward and backward (backward
// recomputes from x, as backend.h's interface gives it x).
#include <memory>
#include <string>

#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_plan.h"
#include "trainer/cuda/lrn_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaLrn final : public LrnOp {
 public:
  CudaLrn(CudaContext& ctx, const LrnShape& s) : ctx_(ctx), pixels_(s.batch * s.height * s.width) {
    validate(s);  // the reference's rules
    const std::string op = "lrn";
    params_.channels = plan::to_int(op, "channels", s.channels);
    params_.size = plan::to_int(op, "size", s.size);
    params_.alpha = static_cast<float>(s.alpha);  // per element, as op_shapes.h's
    params_.beta = static_cast<float>(s.beta);
    params_.k = static_cast<float>(s.k);
  }

  void forward(const float* x, float* y, bool /*training*/) override {
    lrn_forward_nhwc(params_, pixels_, x, y, ctx_.stream());
  }

  void backward(const float* x, const float* dy, float* dx) override {
    lrn_backward_nhwc(params_, pixels_, x, dy, dx, ctx_.stream());
  }

 private:
  CudaContext& ctx_;
  int64_t pixels_;
  LrnParams params_;
};

}  // namespace

std::unique_ptr<LrnOp> make_lrn(CudaContext& ctx, const LrnShape& shape) {
  return std::make_unique<CudaLrn>(ctx, shape);
}

}  // namespace alexnet::trainer::cuda
