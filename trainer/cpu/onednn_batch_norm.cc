// oneDNN batch normalization over [N, C, spatial] activations stored NHWC ([N, spatial, C]),
// matching reference::batch_norm_*: batch statistics in training with PyTorch's running
// estimates, running statistics at inference.
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::memory;
using dnnl::normalization_flags;

void require_positive(const char* name, int64_t value) {
  if (value <= 0) {
    throw std::invalid_argument(std::string("batch_norm: ") + name + " must be positive, got " +
                                std::to_string(value));
  }
}

// gamma and beta are separate [C] vectors (use_scale | use_shift, oneDNN 2.3 and later), so the
// caller's parameter arrays are used in place, with no packing into use_scaleshift's [2, C].
// oneDNN's training forward returns the batch mean and the biased variance, which normalize;
// both are kept for backward, which recomputes 1 / sqrt(var + eps) as the reference's saved
// invstd.
class OneDnnBatchNorm final : public BatchNormOp {
 public:
  explicit OneDnnBatchNorm(const BatchNormShape& s) : s_(s) {
    require_positive("batch", s.batch);
    require_positive("channels", s.channels);
    require_positive("spatial", s.spatial);
    if (!(s.eps >= 0)) throw std::invalid_argument("batch_norm: eps must not be negative");
    const std::string shape = "batch norm of " + std::to_string(s.channels) + " channels x " +
                              std::to_string(s.spatial) + " (batch " + std::to_string(s.batch) +
                              ")";
    const std::string what = "creating " + shape;
    // [N, spatial, C] is NHWC with H = spatial, W = 1.
    const memory::desc x_md({s.batch, s.channels, s.spatial, 1}, memory::data_type::f32,
                            memory::format_tag::nhwc);
    const memory::desc c_md({s.channels}, memory::data_type::f32, memory::format_tag::a);
    const auto eps = static_cast<float>(s.eps);
    const auto affine = normalization_flags::use_scale | normalization_flags::use_shift;
    using Fwd = dnnl::batch_normalization_forward;
    using Bwd = dnnl::batch_normalization_backward;
    const auto train_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(Fwd::desc(dnnl::prop_kind::forward_training, x_md, eps, affine),
                            scratchpad_attr(), engine()),
        what);
    const auto infer_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(Fwd::desc(dnnl::prop_kind::forward_inference, x_md, eps,
                                      affine | normalization_flags::use_global_stats),
                            scratchpad_attr(), engine()),
        what);
    // prop_kind::backward (not backward_data): also the gradients of scale and shift.
    const auto bwd_pd = ALEXNET_DNNL_CHECK(
        Bwd::primitive_desc(Bwd::desc(dnnl::prop_kind::backward, x_md, x_md, eps, affine),
                            scratchpad_attr(), engine(), train_pd),
        what);
    train_ = ALEXNET_DNNL_CHECK(Fwd(train_pd), what);
    infer_ = ALEXNET_DNNL_CHECK(Fwd(infer_pd), what);
    backward_ = ALEXNET_DNNL_CHECK(Bwd(bwd_pd), what);
    mean_ = ALEXNET_DNNL_CHECK(memory(c_md, engine()), what);
    var_ = ALEXNET_DNNL_CHECK(memory(c_md, engine()), what);
    // Backward's argument check lists the shift as an input whenever use_shift is set, though
    // the gradients do not depend on it and the interface does not pass beta: a buffer of our
    // own stands in, so that no caller's (possibly freed) beta is ever bound.
    backward_shift_ = ALEXNET_DNNL_CHECK(memory(c_md, engine()), what);
    std::memset(backward_shift_.get_data_handle(), 0, c_md.get_size());
    auto unbound = [&](const memory::desc& md) {
      return ALEXNET_DNNL_CHECK(memory(md, engine(), DNNL_MEMORY_NONE), what);
    };
    x_ = unbound(x_md);
    y_ = unbound(x_md);
    dy_ = unbound(x_md);
    dx_ = unbound(x_md);
    gamma_ = unbound(c_md);
    beta_ = unbound(c_md);
    running_mean_ = unbound(c_md);
    running_var_ = unbound(c_md);
    dgamma_ = unbound(c_md);
    dbeta_ = unbound(c_md);
    train_args_ = {{DNNL_ARG_SRC, x_},      {DNNL_ARG_DST, y_},     {DNNL_ARG_SCALE, gamma_},
                   {DNNL_ARG_SHIFT, beta_}, {DNNL_ARG_MEAN, mean_}, {DNNL_ARG_VARIANCE, var_}};
    infer_args_ = {{DNNL_ARG_SRC, x_},
                   {DNNL_ARG_DST, y_},
                   {DNNL_ARG_SCALE, gamma_},
                   {DNNL_ARG_SHIFT, beta_},
                   {DNNL_ARG_MEAN, running_mean_},
                   {DNNL_ARG_VARIANCE, running_var_}};
    backward_args_ = {{DNNL_ARG_SRC, x_},           {DNNL_ARG_DIFF_DST, dy_},
                      {DNNL_ARG_SCALE, gamma_},     {DNNL_ARG_SHIFT, backward_shift_},
                      {DNNL_ARG_MEAN, mean_},       {DNNL_ARG_VARIANCE, var_},
                      {DNNL_ARG_DIFF_SRC, dx_},     {DNNL_ARG_DIFF_SCALE, dgamma_},
                      {DNNL_ARG_DIFF_SHIFT, dbeta_}};
    train_args_.add_scratchpad(train_pd.scratchpad_desc(), engine());
    infer_args_.add_scratchpad(infer_pd.scratchpad_desc(), engine());
    backward_args_.add_scratchpad(bwd_pd.scratchpad_desc(), engine());
    what_ = "running " + shape;
  }

  void forward_training(const float* x, const float* gamma, const float* beta, float* y,
                        float* running_mean, float* running_var) override {
    const int64_t m = s_.batch * s_.spatial;
    // As PyTorch: the unbiased variance of a single value divides by zero.
    if (m < 2) throw std::invalid_argument("batch_norm: training needs more than one value");
    x_.set_data_handle(handle(x));
    gamma_.set_data_handle(handle(gamma));
    beta_.set_data_handle(handle(beta));
    y_.set_data_handle(y);
    run(train_, train_args_, what_);
    // PyTorch's running estimates, in double as the reference: the mean, and the variance made
    // unbiased (m / (m - 1)) since it estimates the population's.
    const auto* mean = static_cast<const float*>(mean_.get_data_handle());
    const auto* var = static_cast<const float*>(var_.get_data_handle());
    const double momentum = s_.momentum;
    const double bessel = static_cast<double>(m) / static_cast<double>(m - 1);
    for (int64_t c = 0; c < s_.channels; ++c) {
      running_mean[c] = static_cast<float>((1 - momentum) * running_mean[c] + momentum * mean[c]);
      running_var[c] =
          static_cast<float>((1 - momentum) * running_var[c] + momentum * (var[c] * bessel));
    }
    have_statistics_ = true;
  }

  void forward_inference(const float* x, const float* gamma, const float* beta,
                         const float* running_mean, const float* running_var, float* y) override {
    x_.set_data_handle(handle(x));
    gamma_.set_data_handle(handle(gamma));
    beta_.set_data_handle(handle(beta));
    running_mean_.set_data_handle(handle(running_mean));
    running_var_.set_data_handle(handle(running_var));
    y_.set_data_handle(y);
    run(infer_, infer_args_, what_);
  }

  // Uses the statistics of the last training forward, which must have seen the same x.
  void backward(const float* x, const float* dy, const float* gamma, float* dx, float* dgamma,
                float* dbeta) override {
    if (!have_statistics_) throw std::logic_error("batch_norm: backward before a training forward");
    x_.set_data_handle(handle(x));
    dy_.set_data_handle(handle(dy));
    gamma_.set_data_handle(handle(gamma));
    dx_.set_data_handle(dx);
    dgamma_.set_data_handle(dgamma);
    dbeta_.set_data_handle(dbeta);
    run(backward_, backward_args_, what_);
  }

 private:
  BatchNormShape s_;
  std::string what_;  // what a failing call was doing, for its error
  dnnl::primitive train_, infer_, backward_;
  memory mean_, var_;      // [C] batch mean and biased variance of the last training forward
  memory backward_shift_;  // [C] zeros, never read
  memory x_, y_, dy_, dx_, gamma_, beta_, running_mean_, running_var_, dgamma_, dbeta_;
  Args train_args_, infer_args_, backward_args_;
  bool have_statistics_ = false;
};

}  // namespace

std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape) {
  return std::make_unique<OneDnnBatchNorm>(shape);
}

}  // namespace alexnet::trainer::onednn
