// Softmax cross-entropy for the oneDNN CPU backend: its own loops (oneDNN 2.x has no loss
// primitive).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/cpu/onednn_ops.h"
#include "trainer/softmax_cross_entropy_math.h"

namespace alexnet::trainer::onednn {
namespace {

// Mean softmax cross-entropy with label smoothing, as reference::softmax_cross_entropy: per row
// a stable log-softmax (the row's maximum subtracted before exp), exponentials in float, sums in
// double; dlogits = (softmax - target) / N with target = (1 - eps) one-hot + eps / classes.
class OneDnnSoftmaxCrossEntropy final : public SoftmaxCrossEntropyOp {
 public:
  OneDnnSoftmaxCrossEntropy(int64_t batch, int64_t classes, double smoothing)
      : batch_(batch), classes_(classes), smoothing_(smoothing) {
    if (batch <= 0 || classes <= 0) {
      throw std::invalid_argument("softmax_cross_entropy: batch and classes must be positive");
    }
    if (!(smoothing >= 0 && smoothing <= 1)) {
      throw std::invalid_argument("softmax_cross_entropy: label smoothing must be in [0, 1], got " +
                                  std::to_string(smoothing));
    }
    scratch_.resize(static_cast<size_t>(classes));  // the exponentials when dlogits is null
  }

  LossResult forward_backward(const float* logits, const int32_t* labels, float* dlogits,
                              float dlogits_scale) override {
    for (int64_t n = 0; n < batch_; ++n) {
      if (!label_in_range(labels[n], classes_)) {
        throw std::invalid_argument("softmax_cross_entropy: label " + std::to_string(labels[n]) +
                                    " of sample " + std::to_string(n) + " is outside [0, " +
                                    std::to_string(classes_) + ")");
      }
    }
    const int64_t C = classes_;
    const double uniform = smoothing_ / static_cast<double>(C);
    const float inv_batch = dlogits_scale / static_cast<float>(batch_);
    LossResult r;
    double total = 0;
    for (int64_t n = 0; n < batch_; ++n) {
      const float* z = logits + n * C;
      float* e = dlogits != nullptr ? dlogits + n * C : scratch_.data();
      const int32_t label = labels[n];
      // A NaN anywhere in the row reaches the sum (exp(NaN) is NaN, whatever the maximum is),
      // and through it the loss and every gradient of the row, as in the reference.
      float largest = z[0];
      for (int64_t c = 1; c < C; ++c) largest = std::max(largest, z[c]);
      double sum = 0, sum_z = 0;
      for (int64_t c = 0; c < C; ++c) {
        e[c] = std::exp(z[c] - largest);
        sum += e[c];
        sum_z += z[c];
      }
      const double log_sum_exp = largest + std::log(sum);
      // -sum_c target_c log p_c, with log p_c = z_c - log_sum_exp and the targets' sum 1.
      total -= (1 - smoothing_) * (z[label] - log_sum_exp) +
               uniform * (sum_z - static_cast<double>(C) * log_sum_exp);
      if (dlogits != nullptr) {
        const float inv_sum = static_cast<float>(1 / sum);
        const float off = static_cast<float>(uniform), on = static_cast<float>(1 - smoothing_);
        for (int64_t c = 0; c < C; ++c) e[c] = (e[c] * inv_sum - off) * inv_batch;
        e[label] -= on * inv_batch;
      }
      // Top-k as the reference counts it: the classes ranked strictly above the label's logit
      // (ties favour the label; a NaN label logit ranks first, as no comparison holds).
      const int64_t above = count_above_label(z, C, z[label]);
      r.top1 += ranks_within(above, 1);
      r.top5 += ranks_within(above, 5);
    }
    r.loss = total / static_cast<double>(batch_);
    return r;
  }

 private:
  int64_t batch_, classes_;
  double smoothing_;
  std::vector<float> scratch_;
};

}  // namespace

std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(int64_t batch, int64_t classes,
                                                                  double label_smoothing) {
  return std::make_unique<OneDnnSoftmaxCrossEntropy>(batch, classes, label_smoothing);
}

}  // namespace alexnet::trainer::onednn
