// Conv2dOp on oneDNN: convolution forward (training), backward data and backward weights
// primitives made once for the layer's shape, over NHWC activations and PyTorch's OIHW weights.
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::memory;

// Let oneDNN pick the weights' layout (format_tag::any: a channel-blocked one for its JIT
// kernels) and reorder PyTorch's OIHW into it on every call. With NHWC activations
// oneDNN 2.6 has no optimized kernel for plain OIHW weights and falls back to its reference loops:
// measured with bench/onednn_ops_bench.cc on AlexNet's five conv layers (2-core AVX2 VM, batch 4),
// 0.3 GFLOP/s with plain weights against 15-50 GFLOP/s with `any` (JIT direct kernels, GEMM for
// conv1's 3 input channels). The reorder is cheap beside the convolution: the weights are small
// next to the activations, and the buffers it writes are allocated here, once.
constexpr bool kOneDnnChoosesWeightsLayout = true;

std::string describe(const Conv2dShape& s) {
  return "conv " + std::to_string(s.out_channels) + "x" + std::to_string(s.in_channels) + "x" +
         std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) + "/" +
         std::to_string(s.stride_h) + "x" + std::to_string(s.stride_w) + " pad " +
         std::to_string(s.pad_h) + "x" + std::to_string(s.pad_w) + " groups " +
         std::to_string(s.groups) + " on " + std::to_string(s.batch) + "x" +
         std::to_string(s.height) + "x" + std::to_string(s.width) + "x" +
         std::to_string(s.in_channels);
}

class OneDnnConv2d final : public Conv2dOp {
 public:
  OneDnnConv2d(const Conv2dShape& s, bool bias) : bias_(bias) {
    validate(s);  // the reference's rules, so that both backends reject the same shapes
    const std::string layer = describe(s);
    std::string what = "creating the forward primitive of " + layer;
    const auto f32 = memory::data_type::f32;
    const auto tag = memory::format_tag::any;
    dnnl::engine& eng = engine();

    const memory::desc x_md({s.batch, s.in_channels, s.height, s.width}, f32,
                            memory::format_tag::nhwc);
    const memory::desc y_md({s.batch, s.out_channels, s.out_height(), s.out_width()}, f32,
                            memory::format_tag::nhwc);
    const memory::desc b_md({s.out_channels}, f32, memory::format_tag::x);
    // Grouped weights are [G, O/G, I/G, KH, KW] to oneDNN, the same bytes as PyTorch's
    // [O, I/G, KH, KW] (output channels are group-major in both).
    const memory::desc user_w_md =
        s.groups == 1 ? memory::desc({s.out_channels, s.in_channels, s.kernel_h, s.kernel_w}, f32,
                                     memory::format_tag::oihw)
                      : memory::desc({s.groups, s.out_channels / s.groups, s.in_channels / s.groups,
                                      s.kernel_h, s.kernel_w},
                                     f32, memory::format_tag::goihw);
    const memory::desc w_md =
        kOneDnnChoosesWeightsLayout ? memory::desc(user_w_md.dims(), f32, tag) : user_w_md;
    const memory::dims strides{s.stride_h, s.stride_w}, pad{s.pad_h, s.pad_w};

    // Direct rather than convolution_auto: oneDNN may pick Winograd for 3x3 kernels where it has
    // one, trading accuracy (its transforms lose a few bits) for speed.
    const auto direct = dnnl::algorithm::convolution_direct;
    const auto fwd_pd = ALEXNET_DNNL_CHECK(
        dnnl::convolution_forward::primitive_desc(
            bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, direct, x_md,
                                                   w_md, b_md, y_md, strides, pad, pad)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, direct, x_md,
                                                   w_md, y_md, strides, pad, pad),
            scratchpad_attr(), eng),
        what);
    what = "creating the backward-data primitive of " + layer;
    const auto bwd_data_pd = ALEXNET_DNNL_CHECK(
        dnnl::convolution_backward_data::primitive_desc(
            dnnl::convolution_backward_data::desc(direct, x_md, w_md, y_md, strides, pad, pad),
            scratchpad_attr(), eng, fwd_pd),
        what);
    what = "creating the backward-weights primitive of " + layer;
    const auto bwd_weights_pd =
        ALEXNET_DNNL_CHECK(dnnl::convolution_backward_weights::primitive_desc(
                               bias ? dnnl::convolution_backward_weights::desc(
                                          direct, x_md, w_md, b_md, y_md, strides, pad, pad)
                                    : dnnl::convolution_backward_weights::desc(
                                          direct, x_md, w_md, y_md, strides, pad, pad),
                               scratchpad_attr(), eng, fwd_pd),
                           what);
    what = "creating the memory objects of " + layer;

    // The caller's buffers: memory objects made once, pointed at each call's data.
    x_ = unbound(x_md, what);
    y_ = unbound(y_md, what);
    user_w_ = unbound(user_w_md, what);
    if (bias) b_ = unbound(b_md, what);

    // The weights in each primitive's layout, with the reorders into (and out of) it. Forward
    // and backward data may want different layouts; they share a buffer when they agree.
    what = "creating the weights buffers and reorders of " + layer;
    memory fwd_w = user_w_, bwd_data_w = user_w_, diff_w = user_w_;
    if (fwd_pd.weights_desc() != user_w_md) {
      fwd_w = ALEXNET_DNNL_CHECK(memory(fwd_pd.weights_desc(), eng), what);  // allocated once
      fwd_reorder_ = make_reorder(user_w_, fwd_w, fwd_reorder_args_, what);
    }
    if (bwd_data_pd.weights_desc() == fwd_pd.weights_desc()) {
      bwd_data_w = fwd_w;
      bwd_data_reorder_ = fwd_reorder_;
      bwd_data_reorder_args_ = fwd_reorder_args_;
    } else if (bwd_data_pd.weights_desc() != user_w_md) {
      bwd_data_w = ALEXNET_DNNL_CHECK(memory(bwd_data_pd.weights_desc(), eng), what);
      bwd_data_reorder_ = make_reorder(user_w_, bwd_data_w, bwd_data_reorder_args_, what);
    }
    if (bwd_weights_pd.diff_weights_desc() != user_w_md) {
      diff_w = ALEXNET_DNNL_CHECK(memory(bwd_weights_pd.diff_weights_desc(), eng), what);
      diff_w_reorder_ = make_reorder(diff_w, user_w_, diff_w_reorder_args_, what);
    }

    what = "creating the primitives of " + layer;
    forward_ = ALEXNET_DNNL_CHECK(dnnl::convolution_forward(fwd_pd), what);
    forward_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, fwd_w}, {DNNL_ARG_DST, y_}};
    if (bias) forward_args_.insert({DNNL_ARG_BIAS, b_});
    backward_data_ = ALEXNET_DNNL_CHECK(dnnl::convolution_backward_data(bwd_data_pd), what);
    backward_data_args_ = {
        {DNNL_ARG_DIFF_DST, y_}, {DNNL_ARG_WEIGHTS, bwd_data_w}, {DNNL_ARG_DIFF_SRC, x_}};
    backward_weights_ =
        ALEXNET_DNNL_CHECK(dnnl::convolution_backward_weights(bwd_weights_pd), what);
    backward_weights_args_ = {
        {DNNL_ARG_SRC, x_}, {DNNL_ARG_DIFF_DST, y_}, {DNNL_ARG_DIFF_WEIGHTS, diff_w}};
    if (bias) backward_weights_args_.insert({DNNL_ARG_DIFF_BIAS, b_});
    forward_args_.add_scratchpad(fwd_pd.scratchpad_desc(), eng);
    backward_data_args_.add_scratchpad(bwd_data_pd.scratchpad_desc(), eng);
    backward_weights_args_.add_scratchpad(bwd_weights_pd.scratchpad_desc(), eng);
  }

  void forward(const float* x, const float* w, const float* b, float* y) override {
    check_bias(b, "forward", "b");
    point(x_, x);
    point(user_w_, w);
    if (bias_) point(b_, b);
    point(y_, y);
    run(fwd_reorder_, fwd_reorder_args_, "reordering the weights for conv forward");
    run(forward_, forward_args_, "running conv forward");
  }

  void backward_data(const float* dy, const float* w, float* dx) override {
    point(y_, dy);
    point(user_w_, w);
    point(x_, dx);
    run(bwd_data_reorder_, bwd_data_reorder_args_, "reordering the weights for conv backward data");
    run(backward_data_, backward_data_args_, "running conv backward data");
  }

  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    check_bias(db, "backward_weights", "db");
    point(x_, x);
    point(y_, dy);
    point(user_w_, dw);
    if (bias_) point(b_, db);
    run(backward_weights_, backward_weights_args_, "running conv backward weights");
    run(diff_w_reorder_, diff_w_reorder_args_, "reordering the weight gradient to OIHW");
  }

 private:
  // The bias pointer must be there exactly when the op was made with a bias.
  void check_bias(const float* p, const char* function, const char* name) const {
    if ((p != nullptr) != bias_) {
      throw std::invalid_argument(
          std::string("conv2d ") + function + ": " + name +
          (bias_ ? " is null but the layer has a bias" : " is given but the layer has no bias"));
    }
  }

  bool bias_;
  // One memory object per caller buffer: x_ is also dx, y_ also dy, user_w_ also dw, b_ also db
  // (forward and backward never run at the same time on one op).
  memory x_, y_, user_w_, b_;
  dnnl::primitive forward_, backward_data_, backward_weights_;
  dnnl::primitive fwd_reorder_, bwd_data_reorder_, diff_w_reorder_;  // empty when not needed
  Args forward_args_, backward_data_args_, backward_weights_args_;
  Args fwd_reorder_args_, bwd_data_reorder_args_, diff_w_reorder_args_;
};

}  // namespace

std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool bias) {
  return std::make_unique<OneDnnConv2d>(shape, bias);
}

}  // namespace alexnet::trainer::onednn
