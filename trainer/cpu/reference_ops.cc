// The plain reference of every AlexNet operation: nested loops straight from the definitions.
#include "trainer/cpu/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/adaptive_avg_pool_math.h"
#include "trainer/dropout_math.h"
#include "trainer/lrn_math.h"
#include "trainer/relu_math.h"
#include "trainer/softmax_cross_entropy_math.h"

namespace alexnet::trainer::reference {
namespace {

// Sums over many terms (a convolution window, a batch, a channel's statistics) accumulate in
// double, so that the float instantiation differs from the double one only by its final rounding.
using Acc = double;

using shape_check::fail;
using shape_check::require_non_negative;
using shape_check::require_positive;

// Flat offset into a dense [N, C, H, W] array (also [O, I/g, KH, KW] conv weights).
struct Nchw {
  int64_t channels, height, width;
  int64_t operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return ((n * channels + c) * height + h) * width + w;
  }
};

void validate_adaptive(int64_t batch, int64_t channels, int64_t height, int64_t width,
                       int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_avg_pool";
  require_positive(op, "batch", batch);
  require_positive(op, "channels", channels);
  require_positive(op, "height", height);
  require_positive(op, "width", width);
  require_positive(op, "out_h", out_h);
  require_positive(op, "out_w", out_w);
}

void validate_linear(int64_t batch, int64_t in, int64_t out) {
  require_positive("linear", "batch", batch);
  require_positive("linear", "in", in);
  require_positive("linear", "out", out);
}

void validate_dropout(int64_t n, double p) {
  require_non_negative("dropout", "n", n);
  if (!(p >= 0 && p <= 1)) fail("dropout", "p must be in [0, 1], got " + std::to_string(p));
}

// The channels whose squares normalize channel c (trainer/lrn_math.h): [c - size/2,
// c + (size-1)/2], clipped.
int64_t lrn_window_first(const LrnShape& s, int64_t c) {
  return lrn_clip_first(c, lrn_below(s.size));
}
int64_t lrn_window_last(const LrnShape& s, int64_t c) {
  return lrn_clip_last(c, lrn_above(s.size), s.channels);
}

}  // namespace

template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y) {
  validate(s);
  const int64_t OH = s.out_height(), OW = s.out_width();
  const int64_t IG = s.in_channels / s.groups, OG = s.out_channels / s.groups;  // per group
  const Nchw xi{s.in_channels, s.height, s.width}, yi{s.out_channels, OH, OW};
  const Nchw wi{IG, s.kernel_h, s.kernel_w};
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          Acc acc = b ? static_cast<Acc>(b[o]) : 0;
          for (int64_t ic = 0; ic < IG; ++ic) {
            const int64_t c = (o / OG) * IG + ic;  // output o sees only its own group's inputs
            for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
              for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
                const int64_t ih = oh * s.stride_h - s.pad_h + kh;
                const int64_t iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;  // zero pad
                acc +=
                    static_cast<Acc>(x[xi(n, c, ih, iw)]) * static_cast<Acc>(w[wi(o, ic, kh, kw)]);
              }
            }
          }
          y[yi(n, o, oh, ow)] = static_cast<T>(acc);
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx) {
  validate(s);
  const int64_t OH = s.out_height(), OW = s.out_width();
  const int64_t IG = s.in_channels / s.groups, OG = s.out_channels / s.groups;
  const Nchw xi{s.in_channels, s.height, s.width}, yi{s.out_channels, OH, OW};
  const Nchw wi{IG, s.kernel_h, s.kernel_w};
  // The forward loops, with each product's contribution scattered back to the input it read.
  std::vector<Acc> acc(static_cast<size_t>(s.batch * s.in_channels * s.height * s.width), 0);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          const Acc g = dy[yi(n, o, oh, ow)];
          for (int64_t ic = 0; ic < IG; ++ic) {
            const int64_t c = (o / OG) * IG + ic;
            for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
              for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
                const int64_t ih = oh * s.stride_h - s.pad_h + kh;
                const int64_t iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
                acc[static_cast<size_t>(xi(n, c, ih, iw))] +=
                    g * static_cast<Acc>(w[wi(o, ic, kh, kw)]);
              }
            }
          }
        }
      }
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<T>(acc[i]);
}

template <typename T>
void conv2d_backward_weights(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* db) {
  validate(s);
  const int64_t OH = s.out_height(), OW = s.out_width();
  const int64_t IG = s.in_channels / s.groups, OG = s.out_channels / s.groups;
  const Nchw xi{s.in_channels, s.height, s.width}, yi{s.out_channels, OH, OW};
  const Nchw wi{IG, s.kernel_h, s.kernel_w};
  for (int64_t o = 0; o < s.out_channels; ++o) {
    for (int64_t ic = 0; ic < IG; ++ic) {
      const int64_t c = (o / OG) * IG + ic;
      for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
        for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
          Acc acc = 0;
          for (int64_t n = 0; n < s.batch; ++n) {
            for (int64_t oh = 0; oh < OH; ++oh) {
              for (int64_t ow = 0; ow < OW; ++ow) {
                const int64_t ih = oh * s.stride_h - s.pad_h + kh;
                const int64_t iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
                acc +=
                    static_cast<Acc>(dy[yi(n, o, oh, ow)]) * static_cast<Acc>(x[xi(n, c, ih, iw)]);
              }
            }
          }
          dw[wi(o, ic, kh, kw)] = static_cast<T>(acc);
        }
      }
    }
  }
  if (!db) return;
  for (int64_t o = 0; o < s.out_channels; ++o) {
    Acc acc = 0;
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) acc += static_cast<Acc>(dy[yi(n, o, oh, ow)]);
      }
    }
    db[o] = static_cast<T>(acc);
  }
}

template <typename T>
void relu_forward(int64_t n, const T* x, T* y) {
  require_non_negative("relu", "n", n);
  for (int64_t i = 0; i < n; ++i) y[i] = relu_output(x[i]);  // a NaN passes through
}

template <typename T>
void relu_backward(int64_t n, const T* y, const T* dy, T* dx) {
  require_non_negative("relu", "n", n);
  for (int64_t i = 0; i < n; ++i) dx[i] = relu_input_grad(y[i], dy[i]);
}

template <typename T>
void max_pool_forward(const Pool2dShape& s, const T* x, T* y, int32_t* argmax) {
  validate(s);
  const int64_t OH = s.out_height(), OW = s.out_width();
  const Nchw xi{s.channels, s.height, s.width}, yi{s.channels, OH, OW};
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t c = 0; c < s.channels; ++c) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t h0 = oh * s.stride - s.pad, w0 = ow * s.stride - s.pad;
          // As PyTorch's kernel: start from -inf at the window's first in-image element and let
          // only a strictly larger value or a NaN take over, so the first maximum wins ties,
          // padding never wins, and NaN propagates.
          T best = -std::numeric_limits<T>::infinity();
          int64_t best_index = std::max<int64_t>(h0, 0) * s.width + std::max<int64_t>(w0, 0);
          for (int64_t ih = h0; ih < h0 + s.kernel; ++ih) {
            for (int64_t iw = w0; iw < w0 + s.kernel; ++iw) {
              if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
              const T v = x[xi(n, c, ih, iw)];
              if (v > best || std::isnan(v)) {
                best = v;
                best_index = ih * s.width + iw;
              }
            }
          }
          y[yi(n, c, oh, ow)] = best;
          argmax[yi(n, c, oh, ow)] = static_cast<int32_t>(best_index);
        }
      }
    }
  }
}

template <typename T>
void max_pool_backward(const Pool2dShape& s, const T* dy, const int32_t* argmax, T* dx) {
  validate(s);
  const int64_t OH = s.out_height(), OW = s.out_width(), plane = s.height * s.width;
  const Nchw yi{s.channels, OH, OW};
  std::fill(dx, dx + s.batch * s.channels * plane, T(0));
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t c = 0; c < s.channels; ++c) {
      T* dx_plane = dx + (n * s.channels + c) * plane;
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int32_t a = argmax[yi(n, c, oh, ow)];
          if (a < 0 || a >= plane) fail("max_pool", "argmax index out of its plane");
          dx_plane[a] += dy[yi(n, c, oh, ow)];  // at most ceil(kernel / stride)^2 terms
        }
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool_forward(int64_t batch, int64_t channels, int64_t height, int64_t width,
                               int64_t out_h, int64_t out_w, const T* x, T* y) {
  validate_adaptive(batch, channels, height, width, out_h, out_w);
  const Nchw xi{channels, height, width}, yi{channels, out_h, out_w};
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t h0 = adaptive_bin_start(oh, height, out_h),
                        h1 = adaptive_bin_end(oh, height, out_h);
          const int64_t w0 = adaptive_bin_start(ow, width, out_w),
                        w1 = adaptive_bin_end(ow, width, out_w);
          Acc sum = 0;
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) sum += static_cast<Acc>(x[xi(n, c, ih, iw)]);
          }
          y[yi(n, c, oh, ow)] = static_cast<T>(sum / static_cast<Acc>((h1 - h0) * (w1 - w0)));
        }
      }
    }
  }
}

template <typename T>
void adaptive_avg_pool_backward(int64_t batch, int64_t channels, int64_t height, int64_t width,
                                int64_t out_h, int64_t out_w, const T* dy, T* dx) {
  validate_adaptive(batch, channels, height, width, out_h, out_w);
  const Nchw xi{channels, height, width}, yi{channels, out_h, out_w};
  // Bins overlap when the sizes do not divide, so contributions accumulate.
  std::vector<Acc> acc(static_cast<size_t>(batch * channels * height * width), 0);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t oh = 0; oh < out_h; ++oh) {
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t h0 = adaptive_bin_start(oh, height, out_h),
                        h1 = adaptive_bin_end(oh, height, out_h);
          const int64_t w0 = adaptive_bin_start(ow, width, out_w),
                        w1 = adaptive_bin_end(ow, width, out_w);
          const Acc g =
              static_cast<Acc>(dy[yi(n, c, oh, ow)]) / static_cast<Acc>((h1 - h0) * (w1 - w0));
          for (int64_t ih = h0; ih < h1; ++ih) {
            for (int64_t iw = w0; iw < w1; ++iw) acc[static_cast<size_t>(xi(n, c, ih, iw))] += g;
          }
        }
      }
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<T>(acc[i]);
}

template <typename T>
void lrn_forward(const LrnShape& s, const T* x, T* y) {
  validate(s);
  const Nchw xi{s.channels, s.height, s.width};
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t c = 0; c < s.channels; ++c) {
      for (int64_t h = 0; h < s.height; ++h) {
        for (int64_t w = 0; w < s.width; ++w) {
          Acc sum = 0;
          for (int64_t c2 = lrn_window_first(s, c); c2 <= lrn_window_last(s, c); ++c2) {
            const Acc v = x[xi(n, c2, h, w)];
            sum += v * v;
          }
          const Acc scale = lrn_denominator_of<Acc>(sum, s.k, s.alpha);
          y[xi(n, c, h, w)] = static_cast<T>(x[xi(n, c, h, w)] / std::pow(scale, s.beta));
        }
      }
    }
  }
}

template <typename T>
void lrn_backward(const LrnShape& s, const T* x, const T* dy, T* dx) {
  validate(s);
  const Nchw xi{s.channels, s.height, s.width};
  const auto C = static_cast<size_t>(s.channels);
  std::vector<Acc> scale(C), acc(C);
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t h = 0; h < s.height; ++h) {
      for (int64_t w = 0; w < s.width; ++w) {
        for (int64_t c = 0; c < s.channels; ++c) {
          Acc sum = 0;
          for (int64_t c2 = lrn_window_first(s, c); c2 <= lrn_window_last(s, c); ++c2) {
            const Acc v = x[xi(n, c2, h, w)];
            sum += v * v;
          }
          scale[static_cast<size_t>(c)] = lrn_denominator_of<Acc>(sum, s.k, s.alpha);
        }
        // y[c] = x[c] * scale[c]^-beta with scale[c] = k + alpha * sum_{c2 in window(c)} x[c2]^2:
        // dy[c] reaches x[c] directly and every x[c2] of its window through scale[c].
        for (int64_t c = 0; c < s.channels; ++c) {
          const auto i = static_cast<size_t>(c);
          acc[i] = static_cast<Acc>(dy[xi(n, c, h, w)]) * std::pow(scale[i], -s.beta);
        }
        for (int64_t c = 0; c < s.channels; ++c) {
          const auto i = static_cast<size_t>(c);
          const Acc through_scale = -2 * s.alpha * s.beta * static_cast<Acc>(dy[xi(n, c, h, w)]) *
                                    static_cast<Acc>(x[xi(n, c, h, w)]) *
                                    std::pow(scale[i], -s.beta - 1);
          for (int64_t c2 = lrn_window_first(s, c); c2 <= lrn_window_last(s, c); ++c2) {
            acc[static_cast<size_t>(c2)] += through_scale * static_cast<Acc>(x[xi(n, c2, h, w)]);
          }
        }
        for (int64_t c = 0; c < s.channels; ++c) {
          dx[xi(n, c, h, w)] = static_cast<T>(acc[static_cast<size_t>(c)]);
        }
      }
    }
  }
}

template <typename T>
void batch_norm_forward_training(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                                 T* y, T* save_mean, T* save_invstd, T* running_mean,
                                 T* running_var) {
  validate(s);
  const Nchw xi{s.channels, 1, s.spatial};
  const auto m = static_cast<Acc>(s.batch * s.spatial);
  for (int64_t c = 0; c < s.channels; ++c) {
    Acc sum = 0;
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) sum += static_cast<Acc>(x[xi(n, c, 0, i)]);
    }
    const Acc mean = sum / m;
    Acc squares = 0;  // two passes: no cancellation from E[x^2] - E[x]^2
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const Acc d = static_cast<Acc>(x[xi(n, c, 0, i)]) - mean;
        squares += d * d;
      }
    }
    const Acc invstd = 1 / std::sqrt(squares / m + s.eps);  // normalizes with the biased variance
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const Acc xhat = (static_cast<Acc>(x[xi(n, c, 0, i)]) - mean) * invstd;
        y[xi(n, c, 0, i)] = static_cast<T>(xhat * static_cast<Acc>(gamma[c]) + beta[c]);
      }
    }
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    const Acc unbiased_var = squares / (m - 1);  // what the running estimate tracks
    running_mean[c] = static_cast<T>((1 - s.momentum) * running_mean[c] + s.momentum * mean);
    running_var[c] = static_cast<T>((1 - s.momentum) * running_var[c] + s.momentum * unbiased_var);
  }
}

template <typename T>
void batch_norm_forward_inference(const BatchNormShape& s, const T* x, const T* gamma,
                                  const T* beta, const T* running_mean, const T* running_var,
                                  T* y) {
  require_positive("batch_norm", "batch", s.batch);  // one sample is fine at inference
  require_positive("batch_norm", "channels", s.channels);
  require_positive("batch_norm", "spatial", s.spatial);
  const Nchw xi{s.channels, 1, s.spatial};
  for (int64_t c = 0; c < s.channels; ++c) {
    const Acc invstd = 1 / std::sqrt(static_cast<Acc>(running_var[c]) + s.eps);
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const Acc xhat = (static_cast<Acc>(x[xi(n, c, 0, i)]) - running_mean[c]) * invstd;
        y[xi(n, c, 0, i)] = static_cast<T>(xhat * static_cast<Acc>(gamma[c]) + beta[c]);
      }
    }
  }
}

template <typename T>
void batch_norm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta) {
  validate(s);
  const Nchw xi{s.channels, 1, s.spatial};
  const auto m = static_cast<Acc>(s.batch * s.spatial);
  for (int64_t c = 0; c < s.channels; ++c) {
    const Acc mean = save_mean[c], invstd = save_invstd[c];
    Acc sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const Acc g = dy[xi(n, c, 0, i)];
        sum_dy += g;
        sum_dy_xhat += g * (static_cast<Acc>(x[xi(n, c, 0, i)]) - mean) * invstd;
      }
    }
    // Every x moves the mean and the variance too, hence the two batch-wide terms.
    for (int64_t n = 0; n < s.batch; ++n) {
      for (int64_t i = 0; i < s.spatial; ++i) {
        const Acc xhat = (static_cast<Acc>(x[xi(n, c, 0, i)]) - mean) * invstd;
        dx[xi(n, c, 0, i)] = static_cast<T>(
            static_cast<Acc>(gamma[c]) * invstd *
            (static_cast<Acc>(dy[xi(n, c, 0, i)]) - sum_dy / m - xhat * sum_dy_xhat / m));
      }
    }
    dgamma[c] = static_cast<T>(sum_dy_xhat);
    dbeta[c] = static_cast<T>(sum_dy);
  }
}

template <typename T>
void linear_forward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* b,
                    T* y) {
  validate_linear(batch, in, out);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      Acc acc = b ? static_cast<Acc>(b[o]) : 0;
      for (int64_t i = 0; i < in; ++i) {
        acc += static_cast<Acc>(x[n * in + i]) * static_cast<Acc>(w[o * in + i]);
      }
      y[n * out + o] = static_cast<T>(acc);
    }
  }
}

template <typename T>
void linear_backward_data(int64_t batch, int64_t in, int64_t out, const T* dy, const T* w, T* dx) {
  validate_linear(batch, in, out);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t i = 0; i < in; ++i) {
      Acc acc = 0;
      for (int64_t o = 0; o < out; ++o) {
        acc += static_cast<Acc>(dy[n * out + o]) * static_cast<Acc>(w[o * in + i]);
      }
      dx[n * in + i] = static_cast<T>(acc);
    }
  }
}

template <typename T>
void linear_backward_weights(int64_t batch, int64_t in, int64_t out, const T* x, const T* dy, T* dw,
                             T* db) {
  validate_linear(batch, in, out);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      Acc acc = 0;
      for (int64_t n = 0; n < batch; ++n) {
        acc += static_cast<Acc>(dy[n * out + o]) * static_cast<Acc>(x[n * in + i]);
      }
      dw[o * in + i] = static_cast<T>(acc);
    }
  }
  if (!db) return;
  for (int64_t o = 0; o < out; ++o) {
    Acc acc = 0;
    for (int64_t n = 0; n < batch; ++n) acc += static_cast<Acc>(dy[n * out + o]);
    db[o] = static_cast<T>(acc);
  }
}

void dropout_mask(int64_t n, double p, const DropoutKey& key, uint8_t* mask) {
  validate_dropout(n, p);
  const uint32_t threshold = dropout_threshold(p);
  const uint64_t stream = dropout_stream(key.seed, key.step, key.rank, key.layer);
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = dropout_keep(stream, static_cast<uint64_t>(i), threshold) ? 1 : 0;
  }
}

template <typename T>
void dropout_forward(int64_t n, double p, const uint8_t* mask, const T* x, T* y) {
  validate_dropout(n, p);
  const auto scale = static_cast<T>(dropout_scale(p));
  for (int64_t i = 0; i < n; ++i) y[i] = dropout_apply(x[i], mask[i] != 0, scale);
}

template <typename T>
void dropout_backward(int64_t n, double p, const uint8_t* mask, const T* dy, T* dx) {
  validate_dropout(n, p);
  const auto scale = static_cast<T>(dropout_scale(p));
  for (int64_t i = 0; i < n; ++i) dx[i] = dropout_apply(dy[i], mask[i] != 0, scale);
}

template <typename T>
T softmax_cross_entropy(int64_t batch, int64_t classes, const T* logits, const int32_t* labels,
                        double label_smoothing, T* dlogits) {
  const char* op = "softmax_cross_entropy";
  require_positive(op, "batch", batch);
  require_positive(op, "classes", classes);
  if (!(label_smoothing >= 0 && label_smoothing <= 1)) {
    fail(op, "label smoothing must be in [0, 1], got " + std::to_string(label_smoothing));
  }
  for (int64_t n = 0; n < batch; ++n) {
    if (!label_in_range(labels[n], classes)) {
      fail(op, "label " + std::to_string(labels[n]) + " of sample " + std::to_string(n) +
                   " is outside [0, " + std::to_string(classes) + ")");
    }
  }
  const double uniform = label_smoothing / static_cast<double>(classes);
  Acc total = 0;
  for (int64_t n = 0; n < batch; ++n) {
    const T* z = logits + n * classes;
    // Subtracting the row's maximum keeps exp() from overflowing. A NaN anywhere in the row still
    // reaches the sum, and through it the loss and every gradient of the row.
    Acc largest = z[0];
    for (int64_t c = 1; c < classes; ++c) largest = std::max<Acc>(largest, z[c]);
    Acc sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<Acc>(z[c]) - largest);
    const Acc log_sum_exp = largest + std::log(sum);
    for (int64_t c = 0; c < classes; ++c) {
      const Acc target = smoothed_target(c, labels[n], label_smoothing, uniform);
      const Acc log_p = static_cast<Acc>(z[c]) - log_sum_exp;
      total += loss_term(target, log_p);
      dlogits[n * classes + c] = loss_gradient(log_p, target, batch, T(1));
    }
  }
  return static_cast<T>(total / static_cast<Acc>(batch));
}

#define ALEXNET_REFERENCE_INSTANTIATE(T)                                                           \
  template void conv2d_forward<T>(const Conv2dShape&, const T*, const T*, const T*, T*);           \
  template void conv2d_backward_data<T>(const Conv2dShape&, const T*, const T*, T*);               \
  template void conv2d_backward_weights<T>(const Conv2dShape&, const T*, const T*, T*, T*);        \
  template void relu_forward<T>(int64_t, const T*, T*);                                            \
  template void relu_backward<T>(int64_t, const T*, const T*, T*);                                 \
  template void max_pool_forward<T>(const Pool2dShape&, const T*, T*, int32_t*);                   \
  template void max_pool_backward<T>(const Pool2dShape&, const T*, const int32_t*, T*);            \
  template void adaptive_avg_pool_forward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, \
                                             const T*, T*);                                        \
  template void adaptive_avg_pool_backward<T>(int64_t, int64_t, int64_t, int64_t, int64_t,         \
                                              int64_t, const T*, T*);                              \
  template void lrn_forward<T>(const LrnShape&, const T*, T*);                                     \
  template void lrn_backward<T>(const LrnShape&, const T*, const T*, T*);                          \
  template void batch_norm_forward_training<T>(const BatchNormShape&, const T*, const T*,          \
                                               const T*, T*, T*, T*, T*, T*);                      \
  template void batch_norm_forward_inference<T>(const BatchNormShape&, const T*, const T*,         \
                                                const T*, const T*, const T*, T*);                 \
  template void batch_norm_backward<T>(const BatchNormShape&, const T*, const T*, const T*,        \
                                       const T*, const T*, T*, T*, T*);                            \
  template void linear_forward<T>(int64_t, int64_t, int64_t, const T*, const T*, const T*, T*);    \
  template void linear_backward_data<T>(int64_t, int64_t, int64_t, const T*, const T*, T*);        \
  template void linear_backward_weights<T>(int64_t, int64_t, int64_t, const T*, const T*, T*, T*); \
  template void dropout_forward<T>(int64_t, double, const uint8_t*, const T*, T*);                 \
  template void dropout_backward<T>(int64_t, double, const uint8_t*, const T*, T*);                \
  template T softmax_cross_entropy<T>(int64_t, int64_t, const T*, const int32_t*, double, T*);

ALEXNET_REFERENCE_INSTANTIATE(float)
ALEXNET_REFERENCE_INSTANTIATE(double)

#undef ALEXNET_REFERENCE_INSTANTIATE

}  // namespace alexnet::trainer::reference
