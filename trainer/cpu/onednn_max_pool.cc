// oneDNN max pooling over NHWC activations, matching the reference (trainer/cpu/reference_ops.h):
// padding never wins.
#include <stdexcept>
#include <string>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

std::string describe(const Pool2dShape& s) {
  return "max pool " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) + "/" +
         std::to_string(s.stride) + " pad " + std::to_string(s.pad) + " on " +
         std::to_string(s.height) + "x" + std::to_string(s.width) + "x" +
         std::to_string(s.channels) + " (batch " + std::to_string(s.batch) + ")";
}

// oneDNN's max pooling skips padded points, so padding never wins, as with the reference's -inf
// padding (the test checks it with all-negative inputs, where a zero padding would win). The
// workspace records which element of each window won; backward routes dy there.
// One known difference: oneDNN's maximum skips NaN (a window holding a NaN and numbers yields the
// largest number), where the reference, like PyTorch, propagates it. Only a diverged run feeds
// NaN to a pool; matching the reference would take a scan of every input plus a loop fallback
// (with its own argmax for backward) for that rare case.
class OneDnnMaxPool final : public MaxPoolOp {
 public:
  explicit OneDnnMaxPool(const Pool2dShape& s) {
    validate(s);  // the reference's rules, checked once at creation rather than every call
    const std::string what = "creating " + describe(s);
    const memory::desc x_md = nhwc_desc(s.batch, s.channels, s.height, s.width);
    const memory::desc y_md = nhwc_desc(s.batch, s.channels, s.out_height(), s.out_width());
    const memory::dims strides{s.stride, s.stride}, kernel{s.kernel, s.kernel};
    // Symmetric padding: oneDNN requires (H + 2 pad - kernel) / stride + 1 == OH, the same
    // truncating division as Pool2dShape::out_height(), so both leave the bottom and right
    // padding partly unused when the stride does not divide the span.
    const memory::dims pad{s.pad, s.pad};
    using Fwd = dnnl::pooling_forward;
    using Bwd = dnnl::pooling_backward;
    const auto train_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(Fwd::desc(prop_kind::forward_training, algorithm::pooling_max, x_md,
                                      y_md, strides, kernel, pad, pad),
                            scratchpad_attr(), engine()),
        what);
    const auto infer_pd = ALEXNET_DNNL_CHECK(
        Fwd::primitive_desc(Fwd::desc(prop_kind::forward_inference, algorithm::pooling_max, x_md,
                                      y_md, strides, kernel, pad, pad),
                            scratchpad_attr(), engine()),
        what);
    const auto bwd_pd = ALEXNET_DNNL_CHECK(
        Bwd::primitive_desc(
            Bwd::desc(algorithm::pooling_max, x_md, y_md, strides, kernel, pad, pad),
            scratchpad_attr(), engine(), train_pd),
        what);
    train_ = ALEXNET_DNNL_CHECK(Fwd(train_pd), what);
    infer_ = ALEXNET_DNNL_CHECK(Fwd(infer_pd), what);
    backward_ = ALEXNET_DNNL_CHECK(Bwd(bwd_pd), what);
    workspace_ = ALEXNET_DNNL_CHECK(memory(train_pd.workspace_desc(), engine()), what);
    x_ = unbound(x_md, what);
    y_ = unbound(y_md, what);
    dy_ = unbound(y_md, what);
    dx_ = unbound(x_md, what);
    train_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}, {DNNL_ARG_WORKSPACE, workspace_}};
    infer_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}};
    backward_args_ = {
        {DNNL_ARG_DIFF_DST, dy_}, {DNNL_ARG_DIFF_SRC, dx_}, {DNNL_ARG_WORKSPACE, workspace_}};
    train_args_.add_scratchpad(train_pd.scratchpad_desc(), engine());
    infer_args_.add_scratchpad(infer_pd.scratchpad_desc(), engine());
    backward_args_.add_scratchpad(bwd_pd.scratchpad_desc(), engine());
    what_ = "running " + describe(s);
  }

  void forward(const float* x, float* y, bool training) override {
    x_.set_data_handle(handle(x));
    y_.set_data_handle(y);
    if (training) {
      run(train_, train_args_, what_);
      have_workspace_ = true;
    } else {
      run(infer_, infer_args_, what_);
    }
  }

  void backward(const float* dy, float* dx) override {
    // An unwritten workspace holds arbitrary window offsets; backward would scatter through them.
    if (!have_workspace_) throw std::logic_error("max_pool: backward before a training forward");
    dy_.set_data_handle(handle(dy));
    dx_.set_data_handle(dx);
    run(backward_, backward_args_, what_);
  }

 private:
  std::string what_;  // what a failing call was doing, for its error
  dnnl::primitive train_, infer_, backward_;
  memory workspace_, x_, y_, dy_, dx_;
  Args train_args_, infer_args_, backward_args_;
  bool have_workspace_ = false;
};

}  // namespace

std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape) {
  return std::make_unique<OneDnnMaxPool>(shape);
}

}  // namespace alexnet::trainer::onednn
