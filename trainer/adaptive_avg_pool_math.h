// Adaptive average pooling's bins (PyTorch's: bin i of `out` over `in` elements covers
// [floor(i * in / out), ceil((i + 1) * in / out))) and the per-element NHWC forward and backward,
// written once for the CUDA kernels and their CPU tests.
#pragma once

#include <cstdint>

#include "trainer/host_device.h"

namespace alexnet::trainer {

ALEXNET_HOST_DEVICE inline int64_t adaptive_bin_start(int64_t i, int64_t in, int64_t out) {
  return i * in / out;
}
ALEXNET_HOST_DEVICE inline int64_t adaptive_bin_end(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}
// The bins containing element k: [first, last] (bins overlap when in is not a multiple of out).
// start(i) <= k  <=>  i * in < (k + 1) * out;  end(i) > k  <=>  i >= floor(k * out / in).
ALEXNET_HOST_DEVICE inline int64_t adaptive_first_bin(int64_t k, int64_t in, int64_t out) {
  return k * out / in;
}
ALEXNET_HOST_DEVICE inline int64_t adaptive_last_bin(int64_t k, int64_t in, int64_t out) {
  const int64_t last = ((k + 1) * out + in - 1) / in - 1;
  return last < out - 1 ? last : out - 1;
}

struct AdaptivePoolDims {
  int64_t channels, height, width, out_h, out_w;
};

// y at NHWC offset o of [N, out_h, out_w, C]: the mean of its bin of x [N, H, W, C].
ALEXNET_HOST_DEVICE inline float adaptive_avg_pool_output(const float* x, int64_t o,
                                                          const AdaptivePoolDims& d) {
  const int64_t c = o % d.channels;
  int64_t rest = o / d.channels;
  const int64_t ow = rest % d.out_w;
  rest /= d.out_w;
  const int64_t oh = rest % d.out_h, n = rest / d.out_h;
  const int64_t h0 = adaptive_bin_start(oh, d.height, d.out_h);
  const int64_t h1 = adaptive_bin_end(oh, d.height, d.out_h);
  const int64_t w0 = adaptive_bin_start(ow, d.width, d.out_w);
  const int64_t w1 = adaptive_bin_end(ow, d.width, d.out_w);
  float sum = 0;
  for (int64_t h = h0; h < h1; ++h) {
    for (int64_t w = w0; w < w1; ++w) sum += x[((n * d.height + h) * d.width + w) * d.channels + c];
  }
  return sum / static_cast<float>((h1 - h0) * (w1 - w0));
}

// dx at NHWC offset i of [N, H, W, C]: the sum over the bins containing it of dy / bin size
// (written per input element, so no two threads write the same place).
ALEXNET_HOST_DEVICE inline float adaptive_avg_pool_input_grad(const float* dy, int64_t i,
                                                              const AdaptivePoolDims& d) {
  const int64_t c = i % d.channels;
  int64_t rest = i / d.channels;
  const int64_t w = rest % d.width;
  rest /= d.width;
  const int64_t h = rest % d.height, n = rest / d.height;
  const int64_t oh0 = adaptive_first_bin(h, d.height, d.out_h);
  const int64_t oh1 = adaptive_last_bin(h, d.height, d.out_h);
  const int64_t ow0 = adaptive_first_bin(w, d.width, d.out_w);
  const int64_t ow1 = adaptive_last_bin(w, d.width, d.out_w);
  float sum = 0;
  for (int64_t oh = oh0; oh <= oh1; ++oh) {
    const int64_t rows =
        adaptive_bin_end(oh, d.height, d.out_h) - adaptive_bin_start(oh, d.height, d.out_h);
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const int64_t cols =
          adaptive_bin_end(ow, d.width, d.out_w) - adaptive_bin_start(ow, d.width, d.out_w);
      sum += dy[((n * d.out_h + oh) * d.out_w + ow) * d.channels + c] /
             static_cast<float>(rows * cols);
    }
  }
  return sum;
}

}  // namespace alexnet::trainer
