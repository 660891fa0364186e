// LinearOp on oneDNN: an inner product forward (training) primitive for [N, I] x [O, I]^T, and
// two matmul primitives for backward, made once, on PyTorch's plain [O, I] weights.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::memory;

// The weights stay in PyTorch's `oi` layout. A blocked layout would mean reordering the whole
// matrix on every call, and a fully connected layer's weights are its biggest operand (AlexNet's
// fc6 holds 38M weights against 0.3M inputs at batch 32), so the reorder would cost about as much
// as the product itself; oneDNN's GEMM-based inner product runs on plain weights directly.
//
// Backward runs as matmuls (dx = dy w, dw = dy^T x) rather than inner product backward: on
// AVX-512, oneDNN 2.6 runs inner product backward through its jit sgemm, which mallocs packing
// blocks (72 KiB per thread) inside every call whenever an operand is not transposed, outside
// any scratchpad (forward, x w^T, does not); its brgemm matmul (AVX-512) takes the same plain
// operands and keeps its copies in the user-managed scratchpad. The price: backward data copies
// w into the kernel's blocks in every call (fc6: 151 MB, bench/RESULTS.md "Linear backward");
// on AVX2 matmul is the same jit sgemm, whose blocks stay under 64 KiB there. The bias
// gradient, a column sum of dy, is a loop.
class OneDnnLinear final : public LinearOp {
 public:
  OneDnnLinear(int64_t batch, int64_t in, int64_t out, bool bias)
      : bias_(bias), batch_(batch), out_(out) {
    const std::string layer =
        "linear " + std::to_string(batch) + "x" + std::to_string(in) + " -> " + std::to_string(out);
    if (batch <= 0 || in <= 0 || out <= 0) {
      throw std::invalid_argument("linear: sizes must be positive (" + layer + ")");
    }
    std::string what = "creating the forward primitive of " + layer;
    const auto f32 = memory::data_type::f32;
    dnnl::engine& eng = engine();
    const memory::desc x_md({batch, in}, f32, memory::format_tag::nc);
    const memory::desc y_md({batch, out}, f32, memory::format_tag::nc);
    const memory::desc w_md({out, in}, f32, memory::format_tag::oi);
    const memory::desc b_md({out}, f32, memory::format_tag::x);

    using Fwd = dnnl::inner_product_forward;
    const auto training = dnnl::prop_kind::forward_training;
    const auto fwd_pd =
        ALEXNET_DNNL_CHECK(Fwd::primitive_desc(bias ? Fwd::desc(training, x_md, w_md, b_md, y_md)
                                                    : Fwd::desc(training, x_md, w_md, y_md),
                                               scratchpad_attr(), eng),
                           what);
    // dy^T: the same bytes as dy, read as [O, N] (strides 1, O).
    const memory::desc dy_t_md({out, batch}, f32, memory::format_tag::ba);
    what = "creating the backward-data matmul of " + layer;
    const auto bwd_data_pd = ALEXNET_DNNL_CHECK(
        dnnl::matmul::primitive_desc(dnnl::matmul::desc(y_md, w_md, x_md), scratchpad_attr(), eng),
        what);
    what = "creating the backward-weights matmul of " + layer;
    const auto bwd_weights_pd =
        ALEXNET_DNNL_CHECK(dnnl::matmul::primitive_desc(dnnl::matmul::desc(dy_t_md, x_md, w_md),
                                                        scratchpad_attr(), eng),
                           what);

    what = "creating the memory objects of " + layer;
    // The caller's buffers: memory objects made once, pointed at each call's data. x_ is also
    // dx, y_ also dy, w_ also dw, b_ also db.
    x_ = unbound(x_md, what);
    y_ = unbound(y_md, what);
    w_ = unbound(w_md, what);
    dy_t_ = unbound(dy_t_md, what);
    if (bias) b_ = unbound(b_md, what);

    what = "creating the primitives of " + layer;
    forward_ = ALEXNET_DNNL_CHECK(Fwd(fwd_pd), what);
    forward_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, y_}};
    if (bias) forward_args_.insert({DNNL_ARG_BIAS, b_});
    backward_data_ = ALEXNET_DNNL_CHECK(dnnl::matmul(bwd_data_pd), what);
    backward_data_args_ = {{DNNL_ARG_SRC, y_}, {DNNL_ARG_WEIGHTS, w_}, {DNNL_ARG_DST, x_}};
    backward_weights_ = ALEXNET_DNNL_CHECK(dnnl::matmul(bwd_weights_pd), what);
    backward_weights_args_ = {{DNNL_ARG_SRC, dy_t_}, {DNNL_ARG_WEIGHTS, x_}, {DNNL_ARG_DST, w_}};
    forward_args_.add_scratchpad(fwd_pd.scratchpad_desc(), eng);
    backward_data_args_.add_scratchpad(bwd_data_pd.scratchpad_desc(), eng);
    backward_weights_args_.add_scratchpad(bwd_weights_pd.scratchpad_desc(), eng);
  }

  void forward(const float* x, const float* w, const float* b, float* y) override {
    check_bias(b, "forward", "b");
    point(x_, x);
    point(w_, w);
    if (bias_) point(b_, b);
    point(y_, y);
    run(forward_, forward_args_, "running linear forward");
  }

  void backward_data(const float* dy, const float* w, float* dx) override {
    point(y_, dy);
    point(w_, w);
    point(x_, dx);
    run(backward_data_, backward_data_args_, "running linear backward data");
  }

  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    check_bias(db, "backward_weights", "db");
    point(x_, x);
    point(dy_t_, dy);
    point(w_, dw);
    run(backward_weights_, backward_weights_args_, "running linear backward weights");
    if (bias_) {
      // db[o] = sum_n dy[n, o], rows added in order (vectorized over o).
      std::fill(db, db + out_, 0.0f);
      for (int64_t n = 0; n < batch_; ++n) {
        const float* row = dy + n * out_;
        for (int64_t o = 0; o < out_; ++o) db[o] += row[o];
      }
    }
  }

 private:
  // The bias pointer must be there exactly when the op was made with a bias.
  void check_bias(const float* p, const char* function, const char* name) const {
    if ((p != nullptr) != bias_) {
      throw std::invalid_argument(
          std::string("linear ") + function + ": " + name +
          (bias_ ? " is null but the layer has a bias" : " is given but the layer has no bias"));
    }
  }

  bool bias_;
  int64_t batch_, out_;
  memory x_, y_, w_, b_, dy_t_;
  dnnl::primitive forward_, backward_data_, backward_weights_;
  Args forward_args_, backward_data_args_, backward_weights_args_;
};

}  // namespace

std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out, bool bias) {
  return std::make_unique<OneDnnLinear>(batch, in, out, bias);
}

}  // namespace alexnet::trainer::onednn
