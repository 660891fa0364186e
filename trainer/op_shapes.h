// The shapes and hyper-parameters of AlexNet's operations, shared by the reference ops and every
// backend (activations are [N, C, H, W] logically; a backend may store them channels-last).
#pragma once

#include <cstdint>
#include <string>

namespace alexnet::trainer {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, out_channels = 1;
  int64_t height = 1, width = 1;  // input
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // zero padding on both sides
  int64_t groups = 1;            // in_channels and out_channels divisible by groups
  // 0 when the kernel does not fit (C++ division truncates toward zero: check the span first).
  int64_t out_height() const {
    int64_t span = height + 2 * pad_h - kernel_h;
    return span < 0 ? 0 : span / stride_h + 1;
  }
  int64_t out_width() const {
    int64_t span = width + 2 * pad_w - kernel_w;
    return span < 0 ? 0 : span / stride_w + 1;
  }
};

struct Pool2dShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1;
  int64_t kernel = 3, stride = 2, pad = 0;  // AlexNet's overlapping pool: 3x3, stride 2
  // 0 when the kernel does not fit; pad must be at most kernel / 2 (as PyTorch requires).
  int64_t out_height() const {
    int64_t span = height + 2 * pad - kernel;
    return span < 0 ? 0 : span / stride + 1;
  }
  int64_t out_width() const {
    int64_t span = width + 2 * pad - kernel;
    return span < 0 ? 0 : span / stride + 1;
  }
};

// Local response normalization across channels, the paper's form:
//   y[c] = x[c] / (k + alpha * sum_{c' in window(c)} x[c']^2)^beta,
// window(c) = [c - size/2, c + (size-1)/2] clipped to the channels. PyTorch's
// nn.LocalResponseNorm(size, alpha_t, beta, k) is this with alpha = alpha_t / size; Caffe's
// LRN layer likewise divides its alpha by size. The paper: size 5, alpha 1e-4, beta 0.75, k 2.
struct LrnShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1;
  int64_t size = 5;
  double alpha = 1e-4, beta = 0.75, k = 2.0;
};

// Batch normalization over N, H, W per channel (spatial = H * W; 1 for a [N, C] input).
// Training: normalizes with the batch's mean and biased variance, stores them in save_mean and
// save_invstd (1 / sqrt(var + eps)), and updates running_mean / running_var as PyTorch does
// (unbiased variance, running = (1 - momentum) * running + momentum * batch). Training needs
// more than one value per channel (batch * spatial > 1).
struct BatchNormShape {
  int64_t batch = 1, channels = 1, spatial = 1;
  double eps = 1e-5, momentum = 0.1;
};

// The reference's rules for each shape, shared by the reference ops and every backend so that all
// reject the same shapes with the same messages: std::invalid_argument with one line naming the op
// and the problem ("conv2d: stride_h must be positive, got 0"). Sizes must be positive, padding
// non-negative, groups must divide the channels and the kernel fit the padded input; pooling also
// needs pad <= kernel / 2 and a plane small enough for int32 argmax indices. The batch norm rules
// are training's: they include more than one value per channel and a non-negative eps.
void validate(const Conv2dShape& s);
void validate(const Pool2dShape& s);
void validate(const LrnShape& s);
void validate(const BatchNormShape& s);

// The checks those rules are made of, for the arguments of other operations (linear, dropout,
// adaptive pooling, the loss): each throws std::invalid_argument("op: what").
namespace shape_check {
[[noreturn]] void fail(const char* op, const std::string& what);
void require_positive(const char* op, const char* name, int64_t value);      // value > 0
void require_non_negative(const char* op, const char* name, int64_t value);  // value >= 0
}  // namespace shape_check

// What a dropout mask is a function of (with the element index): trainer/dropout_math.h.
struct DropoutKey {
  uint64_t seed = 0, step = 0;
  uint32_t rank = 0, layer = 0;
};

}  // namespace alexnet::trainer
