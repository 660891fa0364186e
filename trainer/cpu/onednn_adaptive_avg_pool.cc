// Adaptive average pooling for the oneDNN CPU backend over NHWC activations, matching the
// reference (trainer/cpu/reference_ops.h): PyTorch's bins [floor(i * H / oh), ceil((i + 1) * H /
// oh)).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "trainer/adaptive_avg_pool_math.h"
#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;

using shape_check::require_positive;

// PyTorch's adaptive average pooling, three ways by shape: a copy when the output is the input's
// size (torchvision AlexNet's 6x6 -> 6x6 at 224x224); one oneDNN average pooling when the bins
// are uniform (H % oh == 0 and W % ow == 0, bins of H/oh x W/ow without overlap or padding);
// otherwise plain loops over the overlapping bins, vectorized along the contiguous channels.
class OneDnnAdaptiveAvgPool final : public AdaptiveAvgPoolOp {
 public:
  OneDnnAdaptiveAvgPool(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow)
      : n_(n), c_(c), h_(h), w_(w), oh_(oh), ow_(ow) {
    const char* op = "adaptive_avg_pool";
    require_positive(op, "batch", n);
    require_positive(op, "channels", c);
    require_positive(op, "height", h);
    require_positive(op, "width", w);
    require_positive(op, "out_h", oh);
    require_positive(op, "out_w", ow);
    const std::string shape = std::to_string(h) + "x" + std::to_string(w) + "x" +
                              std::to_string(c) + " -> " + std::to_string(oh) + "x" +
                              std::to_string(ow) + " (batch " + std::to_string(n) + ")";
    if (oh == h && ow == w) {
      mode_ = Mode::kCopy;
    } else if (h % oh == 0 && w % ow == 0) {
      mode_ = Mode::kOnednn;
      make_primitives("creating adaptive average pool " + shape);
    } else {
      mode_ = Mode::kLoop;
      for (int64_t i = 0; i < oh; ++i) {
        h_bins_.push_back({adaptive_bin_start(i, h, oh), adaptive_bin_end(i, h, oh)});
      }
      for (int64_t i = 0; i < ow; ++i) {
        w_bins_.push_back({adaptive_bin_start(i, w, ow), adaptive_bin_end(i, w, ow)});
      }
    }
    what_ = "running adaptive average pool " + shape;
  }

  void forward(const float* x, float* y) override {
    switch (mode_) {
      case Mode::kCopy:
        if (x != y) std::memmove(y, x, bytes(n_ * h_ * w_ * c_));
        return;
      case Mode::kOnednn:
        x_.set_data_handle(handle(x));
        y_.set_data_handle(y);
        run(forward_, forward_args_, what_);
        return;
      case Mode::kLoop:
        forward_loop(x, y);
        return;
    }
  }

  void backward(const float* dy, float* dx) override {
    switch (mode_) {
      case Mode::kCopy:
        if (dy != dx) std::memmove(dx, dy, bytes(n_ * h_ * w_ * c_));
        return;
      case Mode::kOnednn:
        dy_.set_data_handle(handle(dy));
        dx_.set_data_handle(dx);
        run(backward_, backward_args_, what_);
        return;
      case Mode::kLoop:
        backward_loop(dy, dx);
        return;
    }
  }

 private:
  enum class Mode { kCopy, kOnednn, kLoop };
  struct Bin {
    int64_t begin, end;
  };

  static size_t bytes(int64_t floats) { return static_cast<size_t>(floats) * sizeof(float); }

  void make_primitives(const std::string& what) {
    const memory::desc x_md = nhwc_desc(n_, c_, h_, w_), y_md = nhwc_desc(n_, c_, oh_, ow_);
    const memory::dims kernel{h_ / oh_, w_ / ow_}, none{0, 0};
    using Fwd = dnnl::pooling_forward;
    using Bwd = dnnl::pooling_backward;
    // No padding, so excluding it changes nothing; it names the intent (divide by the bin size).
    const auto fwd_pd =
        ALEXNET_DNNL_CHECK(Fwd::primitive_desc(Fwd::desc(prop_kind::forward_training,
                                                         algorithm::pooling_avg_exclude_padding,
                                                         x_md, y_md, kernel, kernel, none, none),
                                               scratchpad_attr(), engine()),
                           what);
    const auto bwd_pd =
        ALEXNET_DNNL_CHECK(Bwd::primitive_desc(Bwd::desc(algorithm::pooling_avg_exclude_padding,
                                                         x_md, y_md, kernel, kernel, none, none),
                                               scratchpad_attr(), engine(), fwd_pd),
                           what);
    forward_ = ALEXNET_DNNL_CHECK(Fwd(fwd_pd), what);
    backward_ = ALEXNET_DNNL_CHECK(Bwd(bwd_pd), what);
    x_ = unbound(x_md, what);
    y_ = unbound(y_md, what);
    dy_ = unbound(y_md, what);
    dx_ = unbound(x_md, what);
    forward_args_ = {{DNNL_ARG_SRC, x_}, {DNNL_ARG_DST, y_}};
    backward_args_ = {{DNNL_ARG_DIFF_DST, dy_}, {DNNL_ARG_DIFF_SRC, dx_}};
    forward_args_.add_scratchpad(fwd_pd.scratchpad_desc(), engine());
    backward_args_.add_scratchpad(bwd_pd.scratchpad_desc(), engine());
  }

  // [N, H, W, C] -> [N, OH, OW, C]: each output pixel sums its bin's rows of C channels.
  void forward_loop(const float* x, float* y) const {
    const int64_t C = c_;
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t oh = 0; oh < oh_; ++oh) {
        const Bin hb = h_bins_[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < ow_; ++ow) {
          const Bin wb = w_bins_[static_cast<size_t>(ow)];
          float* out = y + ((n * oh_ + oh) * ow_ + ow) * C;
          std::fill(out, out + C, 0.0f);
          for (int64_t ih = hb.begin; ih < hb.end; ++ih) {
            for (int64_t iw = wb.begin; iw < wb.end; ++iw) {
              const float* in = x + ((n * h_ + ih) * w_ + iw) * C;
              for (int64_t c = 0; c < C; ++c) out[c] += in[c];
            }
          }
          const auto count = static_cast<float>((hb.end - hb.begin) * (wb.end - wb.begin));
          for (int64_t c = 0; c < C; ++c) out[c] /= count;
        }
      }
    }
  }

  // Bins overlap when the sizes do not divide, so an input may receive several contributions.
  void backward_loop(const float* dy, float* dx) const {
    const int64_t C = c_;
    std::fill(dx, dx + n_ * h_ * w_ * C, 0.0f);
    for (int64_t n = 0; n < n_; ++n) {
      for (int64_t oh = 0; oh < oh_; ++oh) {
        const Bin hb = h_bins_[static_cast<size_t>(oh)];
        for (int64_t ow = 0; ow < ow_; ++ow) {
          const Bin wb = w_bins_[static_cast<size_t>(ow)];
          const float* g = dy + ((n * oh_ + oh) * ow_ + ow) * C;
          const auto count = static_cast<float>((hb.end - hb.begin) * (wb.end - wb.begin));
          for (int64_t ih = hb.begin; ih < hb.end; ++ih) {
            for (int64_t iw = wb.begin; iw < wb.end; ++iw) {
              float* in = dx + ((n * h_ + ih) * w_ + iw) * C;
              for (int64_t c = 0; c < C; ++c) in[c] += g[c] / count;
            }
          }
        }
      }
    }
  }

  int64_t n_, c_, h_, w_, oh_, ow_;
  Mode mode_ = Mode::kCopy;
  std::string what_;  // what a failing call was doing, for its error
  std::vector<Bin> h_bins_, w_bins_;
  dnnl::primitive forward_, backward_;
  memory x_, y_, dy_, dx_;
  Args forward_args_, backward_args_;
};

}  // namespace

std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                          int64_t height, int64_t width,
                                                          int64_t out_h, int64_t out_w) {
  return std::make_unique<OneDnnAdaptiveAvgPool>(batch, channels, height, width, out_h, out_w);
}

}  // namespace alexnet::trainer::onednn
