// oneDNN local response normalization across channels over NHWC activations, in the paper's form
// (trainer/op_shapes.h), matching reference::lrn_forward / lrn_backward.
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

// y[c] = x[c] / (k + alpha * sum_{window(c)} x^2)^beta, window(c) = [c - size/2, c + (size-1)/2].
//
// oneDNN computes dst = src * (k + alpha' / size * sum src^2)^-beta: it divides its alpha by the
// size, as PyTorch and Caffe do, so it gets alpha' = alpha * size. Its window is
// [c - (size-1)/2, c + (size-1)/2]: the same as ours for odd sizes, but for even sizes it holds
// size - 1 channels (size 4 sums 3 channels and still divides by 4; checked by probing oneDNN
// 2.6.3), where ours holds size channels reaching one further down. Even sizes therefore run
// plain loops over the contiguous channels of each pixel, in double as the reference.
class OnednnLrn final : public LrnOp {
 public:
  explicit OnednnLrn(const LrnShape& s) : s_(s) {
    validate(s);  // the reference's rules
    const std::string shape = "LRN size " + std::to_string(s.size) + " on " +
                              std::to_string(s.height) + "x" + std::to_string(s.width) + "x" +
                              std::to_string(s.channels) + " (batch " + std::to_string(s.batch) +
                              ")";
    if (s.size % 2 == 0) {
      scale_.resize(static_cast<size_t>(s.channels));
      acc_.resize(static_cast<size_t>(s.channels));
    } else {
      make_primitives("creating " + shape);
    }
    what_ = "running " + shape;
  }

  void forward(const float* x, float* y, bool training) override {
    if (s_.size % 2 == 0) return forward_loop(x, y);
    x_.set_data_handle(handle(x));
    y_.set_data_handle(y);
    if (training) {
      run(train_, train_args_, what_);
      have_workspace_ = true;
    } else {
      run(infer_, infer_args_, what_);
    }
  }

  // Uses the workspace of the last training forward, which must have seen the same x.
  void backward(const float* x, const float* dy, float* dx) override {
    if (s_.size % 2 == 0) return backward_loop(x, dy, dx);
    if (needs_workspace_ && !have_workspace_) {
      throw std::logic_error("lrn: backward before a training forward");
    }
    x_.set_data_handle(handle(x));
    dy_.set_data_handle(handle(dy));
    dx_.set_data_handle(dx);
    run(backward_, backward_args_, what_);
  }

 private:
  void make_primitives(const std::string& what) {
    const memory::desc md({s_.batch, s_.channels, s_.height, s_.width}, memory::data_type::f32,
                          memory::format_tag::nhwc);
    const auto size = static_cast<memory::dim>(s_.size);
    const auto alpha = static_cast<float>(s_.alpha * static_cast<double>(s_.size));
    const auto beta = static_cast<float>(s_.beta), k = static_cast<float>(s_.k);
    using Fwd = dnnl::lrn_forward;
    using Bwd = dnnl::lrn_backward;
    const auto across = dnnl::algorithm::lrn_across_channels;
    const auto train_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(
            Fwd::desc(dnnl::prop_kind::forward_training, across, md, size, alpha, beta, k),
            engine()),
        what);
    const auto infer_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(
            Fwd::desc(dnnl::prop_kind::forward_inference, across, md, size, alpha, beta, k),
            engine()),
        what);
    const auto bwd_pd = ALEXNET_DNNL_CHECK(
        Bwd::primitive_desc(Bwd::desc(across, md, md, size, alpha, beta, k), engine(), train_pd),
        what);
    train_ = ALEXNET_DNNL_CHECK(Fwd(train_pd), what);
    infer_ = ALEXNET_DNNL_CHECK(Fwd(infer_pd), what);
    backward_ = ALEXNET_DNNL_CHECK(Bwd(bwd_pd), what);
    // The optimized kernels save each point's denominator here for backward; the reference
    // implementation needs none (an empty workspace) and recomputes from x.
    workspace_ = ALEXNET_DNNL_CHECK(memory(train_pd.workspace_desc(), engine()), what);
    needs_workspace_ = train_pd.workspace_desc().get_size() > 0;
    x_ = ALEXNET_DNNL_CHECK(memory(md, engine(), DNNL_MEMORY_NONE), what);
    y_ = ALEXNET_DNNL_CHECK(memory(md, engine(), DNNL_MEMORY_NONE), what);
    dy_ = ALEXNET_DNNL_CHECK(memory(md, engine(), DNNL_MEMORY_NONE), what);
    dx_ = ALEXNET_DNNL_CHECK(memory(md, engine(), DNNL_MEMORY_NONE), what);
    train_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}, {DNNL_ARG_WORKSPACE, workspace_}};
    infer_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}};
    backward_args_ = {{DNNL_ARG_SRC, x_},
                      {DNNL_ARG_DIFF_DST, dy_},
                      {DNNL_ARG_DIFF_SRC, dx_},
                      {DNNL_ARG_WORKSPACE, workspace_}};
  }

  int64_t first(int64_t c) const { return std::max<int64_t>(0, c - s_.size / 2); }
  int64_t last(int64_t c) const {
    return std::min<int64_t>(s_.channels - 1, c + (s_.size - 1) / 2);
  }
  int64_t pixels() const { return s_.batch * s_.height * s_.width; }

  // k + alpha * (sum of squares over each channel's window) for one pixel's channels.
  void denominators(const float* xp) {
    for (int64_t c = 0; c < s_.channels; ++c) {
      double sum = 0;
      for (int64_t c2 = first(c); c2 <= last(c); ++c2) {
        const double v = xp[c2];
        sum += v * v;
      }
      scale_[static_cast<size_t>(c)] = s_.k + s_.alpha * sum;
    }
  }

  void forward_loop(const float* x, float* y) {
    const int64_t C = s_.channels;
    for (int64_t p = 0; p < pixels(); ++p) {
      const float* xp = x + p * C;
      float* yp = y + p * C;
      denominators(xp);
      for (int64_t c = 0; c < C; ++c) {
        yp[c] = static_cast<float>(xp[c] / std::pow(scale_[static_cast<size_t>(c)], s_.beta));
      }
    }
  }

  // dy[c] reaches x[c] directly and every x[c2] of its window through the denominator of c.
  void backward_loop(const float* x, const float* dy, float* dx) {
    const int64_t C = s_.channels;
    for (int64_t p = 0; p < pixels(); ++p) {
      const float* xp = x + p * C;
      const float* gp = dy + p * C;
      denominators(xp);
      for (int64_t c = 0; c < C; ++c) {
        const auto i = static_cast<size_t>(c);
        acc_[i] = static_cast<double>(gp[c]) * std::pow(scale_[i], -s_.beta);
      }
      for (int64_t c = 0; c < C; ++c) {
        const double through_scale = -2 * s_.alpha * s_.beta * static_cast<double>(gp[c]) *
                                     static_cast<double>(xp[c]) *
                                     std::pow(scale_[static_cast<size_t>(c)], -s_.beta - 1);
        for (int64_t c2 = first(c); c2 <= last(c); ++c2) {
          acc_[static_cast<size_t>(c2)] += through_scale * static_cast<double>(xp[c2]);
        }
      }
      float* dp = dx + p * C;
      for (int64_t c = 0; c < C; ++c) dp[c] = static_cast<float>(acc_[static_cast<size_t>(c)]);
    }
  }

  LrnShape s_;
  std::string what_;                 // what a failing call was doing, for its error
  std::vector<double> scale_, acc_;  // even sizes: one pixel's denominators and gradients
  dnnl::primitive train_, infer_, backward_;
  memory workspace_, x_, y_, dy_, dx_;
  Args train_args_, infer_args_, backward_args_;
  bool needs_workspace_ = false, have_workspace_ = false;
};

}  // namespace

std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) {
  return std::make_unique<OnednnLrn>(shape);
}

}  // namespace alexnet::trainer::onednn
