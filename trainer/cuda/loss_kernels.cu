// Mean softmax cross-entropy with label smoothing: cuDNN's log-softmax, then one block per row for
// the loss, the gradient and the label's rank, then one block that adds the rows in a fixed order
// (deterministic) and checks the labels; the results come back through pinned memory.
#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"
#include "trainer/cuda/loss_math.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

// What the final kernel hands back to the host.
struct LossTotals {
  double loss_sum;
  long long top1, top5;
  int bad_sample;  // the first sample whose label is outside [0, classes); -1: none
  int bad_label;
};

// Block `row`: row_loss[row] = sum_c -target_c log p_c; row_above[row] = classes with a logit
// strictly above the label's (INT_MAX: the label is out of range); dlogits (when not null) =
// (p - target) / batch * scale.
__global__ void loss_rows(const float* __restrict__ logits, const float* __restrict__ log_p,
                          const int32_t* __restrict__ labels, float* __restrict__ dlogits,
                          double* __restrict__ row_loss, int* __restrict__ row_above, int64_t batch,
                          int64_t classes, double smoothing, float scale) {
  __shared__ double loss_shared[kThreads];
  __shared__ int count_shared[kThreads];
  const int64_t row = blockIdx.x;
  const int32_t label = labels[row];
  if (!label_in_range(label, classes)) {  // the same for the whole block: no barrier is skipped
    if (threadIdx.x == 0) {
      row_loss[row] = 0;
      row_above[row] = INT_MAX;
    }
    return;
  }
  const float* z = logits + row * classes;
  const float* lp = log_p + row * classes;
  const float label_logit = z[label];
  const double uniform = smoothing / static_cast<double>(classes);
  double loss = 0;
  int above = 0;
  for (int64_t c = threadIdx.x; c < classes; c += kThreads) {
    const double target = smoothed_target(c, label, smoothing, uniform);
    loss += loss_term(target, lp[c]);
    above += z[c] > label_logit;
    if (dlogits != nullptr) dlogits[row * classes + c] = loss_gradient(lp[c], target, batch, scale);
  }
  loss = block_sum<kThreads>(loss, loss_shared);
  above = block_sum<kThreads>(above, count_shared);
  if (threadIdx.x == 0) {
    row_loss[row] = loss;
    row_above[row] = above;
  }
}

// One block: the batch's totals, every row always in the same thread and order.
__global__ void loss_totals(const double* __restrict__ row_loss, const int* __restrict__ row_above,
                            const int32_t* __restrict__ labels, int64_t batch,
                            LossTotals* __restrict__ totals) {
  __shared__ double loss_shared[kThreads];
  __shared__ long long count_shared[kThreads];
  __shared__ int bad_shared[kThreads];
  double loss = 0;
  long long top1 = 0, top5 = 0;
  int bad = INT_MAX;
  for (int64_t r = threadIdx.x; r < batch; r += kThreads) {
    loss += row_loss[r];
    const int above = row_above[r];
    if (above == INT_MAX) {
      if (r < bad) bad = static_cast<int>(r);
      continue;
    }
    top1 += ranks_within(above, 1);
    top5 += ranks_within(above, 5);
  }
  loss = block_sum<kThreads>(loss, loss_shared);
  top1 = block_sum<kThreads>(top1, count_shared);
  top5 = block_sum<kThreads>(top5, count_shared);
  bad = block_min<kThreads>(bad, bad_shared);
  if (threadIdx.x == 0) {
    totals->loss_sum = loss;
    totals->top1 = top1;
    totals->top5 = top5;
    totals->bad_sample = bad == INT_MAX ? -1 : bad;
    totals->bad_label = bad == INT_MAX ? 0 : labels[bad];
  }
}

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
    loss_rows<<<static_cast<unsigned>(batch_), kThreads, 0, ctx_.stream()>>>(
        logits, log_p, labels, dlogits, row_loss, row_above, batch_, classes_, smoothing_,
        dlogits_scale);
    ALEXNET_CUDA_CHECK_LAUNCH("the softmax cross-entropy rows");
    auto* totals = static_cast<LossTotals*>(totals_.get());
    loss_totals<<<1, kThreads, 0, ctx_.stream()>>>(row_loss, row_above, labels, batch_, totals);
    ALEXNET_CUDA_CHECK_LAUNCH("the softmax cross-entropy totals");
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
