// The reference backend: the plain reference ops behind the Backend interface (NCHW, host
// memory). Slow by design; it lets every test and the model run on the specification itself.
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "trainer/backend.h"
#include "trainer/cpu/reference_ops.h"
#include "trainer/grad_norm.h"
#include "trainer/softmax_cross_entropy_math.h"

namespace alexnet::trainer {
namespace {

namespace ref = reference;

class ReferenceConv2d final : public Conv2dOp {
 public:
  explicit ReferenceConv2d(const Conv2dShape& s) : s_(s) {}
  void forward(const float* x, const float* w, const float* b, float* y) override {
    ref::conv2d_forward(s_, x, w, b, y);
  }
  void backward_data(const float* dy, const float* w, float* dx) override {
    ref::conv2d_backward_data(s_, dy, w, dx);
  }
  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    ref::conv2d_backward_weights(s_, x, dy, dw, db);
  }

 private:
  Conv2dShape s_;
};

class ReferenceLinear final : public LinearOp {
 public:
  ReferenceLinear(int64_t batch, int64_t in, int64_t out) : batch_(batch), in_(in), out_(out) {}
  void forward(const float* x, const float* w, const float* b, float* y) override {
    ref::linear_forward(batch_, in_, out_, x, w, b, y);
  }
  void backward_data(const float* dy, const float* w, float* dx) override {
    ref::linear_backward_data(batch_, in_, out_, dy, w, dx);
  }
  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    ref::linear_backward_weights(batch_, in_, out_, x, dy, dw, db);
  }

 private:
  int64_t batch_, in_, out_;
};

class ReferenceRelu final : public ReluOp {
 public:
  explicit ReferenceRelu(int64_t n) : n_(n) {}
  void forward(const float* x, float* y) override { ref::relu_forward(n_, x, y); }
  void backward(const float* y, const float* dy, float* dx) override {
    ref::relu_backward(n_, y, dy, dx);
  }

 private:
  int64_t n_;
};

class ReferenceMaxPool final : public MaxPoolOp {
 public:
  explicit ReferenceMaxPool(const Pool2dShape& s)
      : s_(s),
        argmax_(static_cast<size_t>(s.batch * s.channels * s.out_height() * s.out_width())) {}
  void forward(const float* x, float* y, bool /*training*/) override {
    ref::max_pool_forward(s_, x, y, argmax_.data());
  }
  void backward(const float* dy, float* dx) override {
    ref::max_pool_backward(s_, dy, argmax_.data(), dx);
  }

 private:
  Pool2dShape s_;
  std::vector<int32_t> argmax_;
};

class ReferenceAdaptiveAvgPool final : public AdaptiveAvgPoolOp {
 public:
  ReferenceAdaptiveAvgPool(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow)
      : n_(n), c_(c), h_(h), w_(w), oh_(oh), ow_(ow) {}
  void forward(const float* x, float* y) override {
    ref::adaptive_avg_pool_forward(n_, c_, h_, w_, oh_, ow_, x, y);
  }
  void backward(const float* dy, float* dx) override {
    ref::adaptive_avg_pool_backward(n_, c_, h_, w_, oh_, ow_, dy, dx);
  }

 private:
  int64_t n_, c_, h_, w_, oh_, ow_;
};

class ReferenceLrn final : public LrnOp {
 public:
  explicit ReferenceLrn(const LrnShape& s) : s_(s) {}
  void forward(const float* x, float* y, bool /*training*/) override { ref::lrn_forward(s_, x, y); }
  void backward(const float* x, const float* dy, float* dx) override {
    ref::lrn_backward(s_, x, dy, dx);
  }

 private:
  LrnShape s_;
};

class ReferenceBatchNorm final : public BatchNormOp {
 public:
  explicit ReferenceBatchNorm(const BatchNormShape& s)
      : s_(s), mean_(static_cast<size_t>(s.channels)), invstd_(static_cast<size_t>(s.channels)) {}
  void forward_training(const float* x, const float* gamma, const float* beta, float* y,
                        float* running_mean, float* running_var) override {
    ref::batch_norm_forward_training(s_, x, gamma, beta, y, mean_.data(), invstd_.data(),
                                     running_mean, running_var);
  }
  void forward_inference(const float* x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, float* y) override {
    ref::batch_norm_forward_inference(s_, x, gamma, beta, running_mean, running_var, y);
  }
  void backward(const float* x, const float* dy, const float* gamma, float* dx, float* dgamma,
                float* dbeta) override {
    ref::batch_norm_backward(s_, x, dy, gamma, mean_.data(), invstd_.data(), dx, dgamma, dbeta);
  }

 private:
  BatchNormShape s_;
  std::vector<float> mean_, invstd_;
};

class ReferenceDropout final : public DropoutOp {
 public:
  ReferenceDropout(int64_t n, double p) : n_(n), p_(p), mask_(static_cast<size_t>(n)) {}
  void forward(const DropoutKey& key, const float* x, float* y) override {
    ref::dropout_mask(n_, p_, key, mask_.data());
    ref::dropout_forward(n_, p_, mask_.data(), x, y);
  }
  void backward(const float* dy, float* dx) override {
    ref::dropout_backward(n_, p_, mask_.data(), dy, dx);
  }

 private:
  int64_t n_;
  double p_;
  std::vector<uint8_t> mask_;
};

// NCHW is already PyTorch's flatten order: a copy (x and y may alias).
class ReferenceFlatten final : public FlattenOp {
 public:
  explicit ReferenceFlatten(int64_t n) : bytes_(static_cast<size_t>(n) * sizeof(float)) {}
  void forward(const float* x, float* y) override {
    if (x != y) std::memmove(y, x, bytes_);
  }
  void backward(const float* dy, float* dx) override {
    if (dy != dx) std::memmove(dx, dy, bytes_);
  }

 private:
  size_t bytes_;
};

class ReferenceSoftmaxCrossEntropy final : public SoftmaxCrossEntropyOp {
 public:
  ReferenceSoftmaxCrossEntropy(int64_t batch, int64_t classes, double smoothing)
      : batch_(batch),
        classes_(classes),
        smoothing_(smoothing),
        scratch_(static_cast<size_t>(batch * classes)) {}
  LossResult forward_backward(const float* logits, const int32_t* labels, float* dlogits,
                              float dlogits_scale) override {
    LossResult r;
    r.loss = ref::softmax_cross_entropy(batch_, classes_, logits, labels, smoothing_,
                                        dlogits != nullptr ? dlogits : scratch_.data());
    if (dlogits != nullptr && dlogits_scale != 1) {
      for (int64_t i = 0; i < batch_ * classes_; ++i) dlogits[i] *= dlogits_scale;
    }
    for (int64_t n = 0; n < batch_; ++n) {
      const float* row = logits + n * classes_;
      const int64_t above = count_above_label(row, classes_, row[labels[n]]);
      r.top1 += ranks_within(above, 1);
      r.top5 += ranks_within(above, 5);
    }
    return r;
  }

 private:
  int64_t batch_, classes_;
  double smoothing_;
  std::vector<float> scratch_;
};

class ReferenceBackend final : public Backend {
 public:
  std::string name() const override { return "reference"; }
  ActivationLayout activation_layout() const override { return ActivationLayout::kNCHW; }
  // Empty copies may come with null pointers (an empty vector's data()): memcpy must not see them.
  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  void fill_zero(void* dst, size_t bytes) override {
    if (bytes != 0) std::memset(dst, 0, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  bool host_memory() const override { return true; }
  double sum_of_squares(const float* x, size_t n) override {
    return trainer::sum_of_squares({x, n});
  }
  void scale(float* x, size_t n, float factor) override { scale_grads({x, n}, factor); }
  void synchronize() override {}

  std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool /*bias*/) override {
    return std::make_unique<ReferenceConv2d>(shape);
  }
  std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out,
                                        bool /*bias*/) override {
    return std::make_unique<ReferenceLinear>(batch, in, out);
  }
  std::unique_ptr<ReluOp> make_relu(int64_t elements) override {
    return std::make_unique<ReferenceRelu>(elements);
  }
  std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape) override {
    return std::make_unique<ReferenceMaxPool>(shape);
  }
  std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                            int64_t height, int64_t width,
                                                            int64_t out_h, int64_t out_w) override {
    return std::make_unique<ReferenceAdaptiveAvgPool>(batch, channels, height, width, out_h, out_w);
  }
  std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) override {
    return std::make_unique<ReferenceLrn>(shape);
  }
  std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape) override {
    return std::make_unique<ReferenceBatchNorm>(shape);
  }
  std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p) override {
    return std::make_unique<ReferenceDropout>(elements, p);
  }
  std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                          int64_t width) override {
    return std::make_unique<ReferenceFlatten>(batch * channels * height * width);
  }
  std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(
      int64_t batch, int64_t classes, double label_smoothing) override {
    return std::make_unique<ReferenceSoftmaxCrossEntropy>(batch, classes, label_smoothing);
  }

 protected:
  void* allocate_raw(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void free(void* p) noexcept override { std::free(p); }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<ReferenceBackend>(); }

}  // namespace alexnet::trainer
