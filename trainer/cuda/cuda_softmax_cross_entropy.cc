// Mean softmax cross-entropy with label smoothing for the CUDA backend: cuDNN's log-softmax,
// then own kernels (softmax_cross_entropy_kernels.cu) for the loss, the gradient and the labels'
// ranks; the results come back through pinned memory.
#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"
#include "trainer/cuda/softmax_cross_entropy_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaSoftmaxCrossEntropy final : public SoftmaxCrossEntropyOp {
 public:
  CudaSoftmaxCrossEntropy(CudaContext& ctx, int64_t batch, int64_t classes, double smoothing)
      : ctx_(ctx),
        batch_(batch),
        classes_(classes),
        smoothing_(smoothing),
        // [N, classes, 1, 1]: CUDNN_SOFTMAX_MODE_INSTANCE normalizes over each row's classes.
        rows_(plan::nchw_tensor(batch, classes, 1, 1, "softmax_cross_entropy"), CUDNN_DATA_FLOAT),
        log_p_(ctx.allocate(static_cast<size_t>(batch * classes) * sizeof(float),
                            "the loss's log-probabilities")),
        row_loss_(ctx.allocate(static_cast<size_t>(batch) * sizeof(double), "the per-row losses")),
        row_above_(ctx.allocate(static_cast<size_t>(batch) * sizeof(int), "the labels' ranks")),
        totals_(ctx.allocate(sizeof(LossTotals), "the loss totals")),
        host_totals_(ctx.pinned(sizeof(LossTotals))) {}

  LossResult forward_backward(const float* logits, const int32_t* labels, float* dlogits,
                              float dlogits_scale) override {
    const float one = 1, zero = 0;
    auto* log_p = static_cast<float*>(log_p_.get());
    ALEXNET_CUDNN_CHECK(
        cudnnSoftmaxForward(ctx_.cudnn(), CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                            rows_.get(), logits, &zero, rows_.get(), log_p),
        "computing the loss's log-softmax");
    auto* row_loss = static_cast<double*>(row_loss_.get());
    auto* row_above = static_cast<int*>(row_above_.get());
    softmax_cross_entropy_rows(logits, log_p, labels, dlogits, row_loss, row_above, batch_,
                               classes_, smoothing_, dlogits_scale, ctx_.stream());
    auto* totals = static_cast<LossTotals*>(totals_.get());
    softmax_cross_entropy_totals(row_loss, row_above, labels, batch_, totals, ctx_.stream());
    ALEXNET_CUDA_CHECK(cudaMemcpyAsync(host_totals_.get(), totals, sizeof(LossTotals),
                                       cudaMemcpyDeviceToHost, ctx_.stream()),
                       "copying the loss to the host");
    ALEXNET_CUDA_CHECK(cudaStreamSynchronize(ctx_.stream()), "waiting for the loss");
    const LossTotals& t = *static_cast<const LossTotals*>(host_totals_.get());
    if (t.bad_sample >= 0) {
      // As the reference backend's message.
      throw std::invalid_argument("softmax_cross_entropy: label " + std::to_string(t.bad_label) +
                                  " of sample " + std::to_string(t.bad_sample) +
                                  " is outside [0, " + std::to_string(classes_) + ")");
    }
    LossResult r;
    r.loss = t.loss_sum / static_cast<double>(batch_);
    r.top1 = t.top1;
    r.top5 = t.top5;
    return r;
  }

 private:
  CudaContext& ctx_;
  int64_t batch_, classes_;
  double smoothing_;
  TensorDescriptor rows_;
  DeviceBuffer log_p_;      // float [N, classes]
  DeviceBuffer row_loss_;   // double [N]
  DeviceBuffer row_above_;  // int [N]
  DeviceBuffer totals_;     // LossTotals
  PinnedBuffer host_totals_;
};

}  // namespace

std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(CudaContext& ctx, int64_t batch,
                                                                  int64_t classes,
                                                                  double label_smoothing) {
  const char* op = "softmax_cross_entropy: ";
  if (batch <= 0 || batch > INT_MAX) {
    throw std::invalid_argument(op + std::string("batch must be in [1, 2^31), got ") +
                                std::to_string(batch));
  }
  if (classes <= 0 || classes > INT_MAX) {
    throw std::invalid_argument(op + std::string("classes must be in [1, 2^31), got ") +
                                std::to_string(classes));
  }
  if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
    throw std::invalid_argument(op + std::string("label smoothing must be in [0, 1], got ") +
                                std::to_string(label_smoothing));
  }
  return std::make_unique<CudaSoftmaxCrossEntropy>(ctx, batch, classes, label_smoothing);
}

}  // namespace alexnet::trainer::cuda
