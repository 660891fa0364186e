// Local response normalization across the channels of one NHWC pixel, written once for the CUDA
// kernels (lrn_kernels.cu) and the CPU tests. The paper's form (trainer/op_shapes.h):
//   y[c] = x[c] * d[c]^-beta,  d[c] = k + alpha * sum_{c2 in window(c)} x[c2]^2,
//   window(c) = [c - size/2, c + (size-1)/2] clipped to [0, channels),
// with alpha per element (PyTorch's alpha / size). Float arithmetic throughout.
#pragma once

#include <math.h>

#include "trainer/host_device.h"

namespace alexnet::trainer {

struct LrnParams {
  int channels = 1, size = 5;
  float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
};

ALEXNET_HOST_DEVICE inline int lrn_first(const LrnParams& p, int c) {
  const int first = c - p.size / 2;
  return first < 0 ? 0 : first;
}
ALEXNET_HOST_DEVICE inline int lrn_last(const LrnParams& p, int c) {
  const int last = c + (p.size - 1) / 2;
  return last > p.channels - 1 ? p.channels - 1 : last;
}

// d[c] for one pixel's channels xp[0, channels).
ALEXNET_HOST_DEVICE inline float lrn_denominator(const LrnParams& p, const float* xp, int c) {
  float sum = 0;
  for (int c2 = lrn_first(p, c); c2 <= lrn_last(p, c); ++c2) sum += xp[c2] * xp[c2];
  return p.k + p.alpha * sum;
}

ALEXNET_HOST_DEVICE inline float lrn_forward_at(const LrnParams& p, const float* xp, int c) {
  return xp[c] * powf(lrn_denominator(p, xp, c), -p.beta);
}

// dx[c] = dy[c] d[c]^-beta - 2 alpha beta x[c] sum_{c2 : c in window(c2)} dy[c2] x[c2]
// d[c2]^(-beta-1): dy[c] reaches x[c] directly, and every x of its window through d[c].
// c is in window(c2) exactly for c2 in [c - (size-1)/2, c + size/2].
ALEXNET_HOST_DEVICE inline float lrn_backward_at(const LrnParams& p, const float* xp,
                                                 const float* gp, int c) {
  const float direct = gp[c] * powf(lrn_denominator(p, xp, c), -p.beta);
  int lo = c - (p.size - 1) / 2, hi = c + p.size / 2;
  lo = lo < 0 ? 0 : lo;
  hi = hi > p.channels - 1 ? p.channels - 1 : hi;
  float through = 0;
  for (int c2 = lo; c2 <= hi; ++c2) {
    through += gp[c2] * xp[c2] * powf(lrn_denominator(p, xp, c2), -p.beta - 1);
  }
  return direct - 2 * p.alpha * p.beta * xp[c] * through;
}

}  // namespace alexnet::trainer
