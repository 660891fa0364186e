// Batch normalization with cuDNN (spatial mode: per channel over N and the spatial positions)
// over NHWC [N, spatial, C] activations, described as N x C x 1 x spatial.
//
// Semantics as PyTorch's (which calls these same functions): cuDNN's exponentialAverageFactor is
// PyTorch's momentum (running = (1 - f) running + f batch), and cuDNN's running variance is the
// unbiased one; it normalizes with the biased batch variance and saves mean and 1 / sqrt(var + eps)
// for backward, which are the reference's save_mean / save_invstd. backward() uses the saved
// statistics of the last training forward, which must have seen the same x.
// CUDNN_BATCHNORM_SPATIAL, not _PERSISTENT: cuDNN documents that the persistent kernels may
// overflow for some inputs.
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr cudnnBatchNormMode_t kMode = CUDNN_BATCHNORM_SPATIAL;

// What creating the op needs: positive sizes and cuDNN's minimum eps (CUDNN_BN_MIN_EPSILON,
// beyond the reference's eps >= 0). The reference's rules, validate(BatchNormShape), are training's
// (more than one value per channel) and wait for forward_training: one sample is fine at inference.
void validate_for_creation(const BatchNormShape& s) {
  const std::string op = "batch_norm";
  plan::require_positive(op, "batch", s.batch);
  plan::require_positive(op, "channels", s.channels);
  plan::require_positive(op, "spatial", s.spatial);
  if (!(s.eps >= CUDNN_BN_MIN_EPSILON)) {
    plan::fail(op, "eps must be at least cuDNN's minimum " + std::to_string(CUDNN_BN_MIN_EPSILON));
  }
}

std::string describe(const BatchNormShape& s) {
  return "batch norm over " + std::to_string(s.channels) + " channels x " +
         std::to_string(s.spatial) + " positions (batch " + std::to_string(s.batch) + ")";
}

class CudaBatchNorm final : public BatchNormOp {
 public:
  CudaBatchNorm(CudaContext& ctx, const BatchNormShape& s)
      : ctx_(ctx),
        s_((validate_for_creation(s), s)),
        x_desc_(plan::batch_norm_tensor(s), CUDNN_DATA_FLOAT),
        what_("running " + describe(s)) {
    ALEXNET_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param_desc_.get(), x_desc_.get(), kMode),
                        "creating " + describe(s));
    const auto bytes = static_cast<size_t>(s.channels) * sizeof(float);
    save_mean_ = ctx.allocate(bytes, "batch norm's saved mean");
    save_invstd_ = ctx.allocate(bytes, "batch norm's saved 1/std");
  }

  void forward_training(const float* x, const float* gamma, const float* beta, float* y,
                        float* running_mean, float* running_var) override {
    validate(s_);  // the reference's rules: more than one value per channel
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
                            ctx_.cudnn(), kMode, &one, &zero, x_desc_.get(), x, x_desc_.get(), y,
                            param_desc_.get(), gamma, beta, s_.momentum, running_mean, running_var,
                            s_.eps, save_mean_.get(), save_invstd_.get()),
                        what_ + " (training)");
    trained_ = true;
  }

  void forward_inference(const float* x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, float* y) override {
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
                            ctx_.cudnn(), kMode, &one, &zero, x_desc_.get(), x, x_desc_.get(), y,
                            param_desc_.get(), gamma, beta, running_mean, running_var, s_.eps),
                        what_ + " (inference)");
  }

  void backward(const float* x, const float* dy, const float* gamma, float* dx, float* dgamma,
                float* dbeta) override {
    if (!trained_) throw std::logic_error("batch_norm: backward before a training forward");
    const float one = 1, zero = 0;  // overwrite dx, dgamma and dbeta
    ALEXNET_CUDNN_CHECK(cudnnBatchNormalizationBackward(
                            ctx_.cudnn(), kMode, &one, &zero, &one, &zero, x_desc_.get(), x,
                            x_desc_.get(), dy, x_desc_.get(), dx, param_desc_.get(), gamma, dgamma,
                            dbeta, s_.eps, save_mean_.get(), save_invstd_.get()),
                        what_ + " (backward)");
  }

 private:
  CudaContext& ctx_;
  BatchNormShape s_;
  TensorDescriptor x_desc_;
  TensorDescriptor param_desc_;  // 1 x C x 1 x 1, derived by cuDNN
  std::string what_;
  DeviceBuffer save_mean_, save_invstd_;  // [C] of the last training forward
  bool trained_ = false;
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batch_norm(CudaContext& ctx, const BatchNormShape& shape) {
  return std::make_unique<CudaBatchNorm>(ctx, shape);
}

}  // namespace alexnet::trainer::cuda
