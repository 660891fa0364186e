// The oneDNN backend's light ops: ReLU, flatten (NHWC to PyTorch's (C, H, W) order, a oneDNN
// reorder) and softmax cross-entropy.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::memory;

// ReLU as plain loops, not oneDNN's eltwise_relu: oneDNN 2.6's JIT ReLU computes max(x, 0),
// which turns a NaN into 0, and its use-dst backward gives 0 where the output is NaN. The
// reference (and PyTorch) let a NaN through both ways, so that a diverging run shows up in the
// loss instead of being silently zeroed. The loops are memory-bound either way and vectorize at
// -O3 (compare and blend); every element is read before it is written, so y may alias x and dx
// may alias y or dy.
class OneDnnRelu final : public ReluOp {
 public:
  explicit OneDnnRelu(int64_t n) : n_(n) {
    if (n < 0) throw std::invalid_argument("relu: n must not be negative");
  }
  void forward(const float* x, float* y) override {
    for (int64_t i = 0; i < n_; ++i) y[i] = (x[i] > 0 || std::isnan(x[i])) ? x[i] : 0.0f;
  }
  void backward(const float* y, const float* dy, float* dx) override {
    // As PyTorch's threshold_backward: zero where y <= 0, so a NaN output passes dy on.
    // dy is loaded unconditionally: a load under the condition would keep the loop scalar.
    for (int64_t i = 0; i < n_; ++i) {
      const float g = dy[i];
      dx[i] = y[i] <= 0 ? 0.0f : g;
    }
  }

 private:
  int64_t n_;
};

// NHWC [N, H, W, C] to [N, C * H * W] in (C, H, W) order is a reorder from an `nhwc` memory
// descriptor to an `nchw` one over the same logical [N, C, H, W] tensor; backward is the reverse
// reorder. A transpose cannot run in place, so x and y (dy and dx) must not be the same buffer.
class OneDnnFlatten final : public FlattenOp {
 public:
  OneDnnFlatten(int64_t batch, int64_t channels, int64_t height, int64_t width) {
    const std::string shape = std::to_string(batch) + "x" + std::to_string(height) + "x" +
                              std::to_string(width) + "x" + std::to_string(channels);
    if (batch <= 0 || channels <= 0 || height <= 0 || width <= 0) {
      throw std::invalid_argument("flatten: sizes must be positive, got " + shape);
    }
    const memory::dims dims{batch, channels, height, width};
    const auto f32 = memory::data_type::f32;
    dnnl::engine& eng = engine();
    std::string what = "creating the memory objects of flatten " + shape;
    // Memory objects without buffers, pointed at the caller's arrays on each call.
    nhwc_ = ALEXNET_DNNL_CHECK(memory({dims, f32, memory::format_tag::nhwc}, eng, DNNL_MEMORY_NONE),
                               what);
    nchw_ = ALEXNET_DNNL_CHECK(memory({dims, f32, memory::format_tag::nchw}, eng, DNNL_MEMORY_NONE),
                               what);
    what = "creating the forward reorder of flatten " + shape;
    forward_ = make_reorder(nhwc_, nchw_, forward_args_, what);
    what = "creating the backward reorder of flatten " + shape;
    backward_ = make_reorder(nchw_, nhwc_, backward_args_, what);
  }

  void forward(const float* x, float* y) override {
    if (x == y) throw std::invalid_argument("flatten forward: x and y must not be one buffer");
    point(nhwc_, x);
    point(nchw_, y);
    run(forward_, forward_args_, "running flatten forward");
  }
  void backward(const float* dy, float* dx) override {
    if (dy == dx) throw std::invalid_argument("flatten backward: dy and dx must not be one buffer");
    point(nchw_, dy);
    point(nhwc_, dx);
    run(backward_, backward_args_, "running flatten backward");
  }

 private:
  // oneDNN takes void*; the op only reads what the caller passes as const.

  memory nhwc_, nchw_;
  dnnl::reorder forward_, backward_;
  Args forward_args_, backward_args_;
};

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
      if (labels[n] < 0 || labels[n] >= classes_) {
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
      const float target = z[label];
      int64_t above = 0;
      for (int64_t c = 0; c < C; ++c) above += z[c] > target;
      r.top1 += above < 1;
      r.top5 += above < 5;
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

std::unique_ptr<ReluOp> make_relu(int64_t elements) {
  return std::make_unique<OneDnnRelu>(elements);
}

std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                        int64_t width) {
  return std::make_unique<OneDnnFlatten>(batch, channels, height, width);
}

std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(int64_t batch, int64_t classes,
                                                                  double label_smoothing) {
  return std::make_unique<OneDnnSoftmaxCrossEntropy>(batch, classes, label_smoothing);
}

}  // namespace alexnet::trainer::onednn
