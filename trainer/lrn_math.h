// Local response normalization's arithmetic, written once for the reference ops
// (trainer/cpu/reference_ops.cc), the oneDNN backend's loops (trainer/cpu/onednn_lrn.cc) and the
// CUDA kernels (trainer/cuda/lrn_kernels.cu). The paper's form (trainer/op_shapes.h):
//   y[c] = x[c] * d[c]^-beta,  d[c] = k + alpha * sum_{c2 in window(c)} x[c2]^2,
//   window(c) = [c - size/2, c + (size-1)/2] clipped to [0, channels),
// with alpha per element (PyTorch's alpha / size). The window bounds, the denominator and the
// gradient's final combination are shared by all three; how each sums and raises to -beta is
// its own (the reference in double; the oneDNN loops vectorized, with beta = 0.75 as square
// roots; the kernels per element with powf, below).
#pragma once

#include <math.h>

#include "trainer/host_device.h"

namespace alexnet::trainer {

// The window of channel c reaches lrn_below(size) channels down and lrn_above(size) up. Channel
// c is in the window of c2 exactly for c2 in [c - lrn_above(size), c + lrn_below(size)] (the
// mirrored window, which backward gathers over).
template <typename I>
ALEXNET_HOST_DEVICE inline I lrn_below(I size) {
  return size / 2;
}
template <typename I>
ALEXNET_HOST_DEVICE inline I lrn_above(I size) {
  return (size - 1) / 2;
}
// [first, last] of channel c's window (`below` down, `above` up) clipped to [0, channels).
template <typename I>
ALEXNET_HOST_DEVICE inline I lrn_clip_first(I c, I below) {
  return c - below < 0 ? I(0) : c - below;
}
template <typename I>
ALEXNET_HOST_DEVICE inline I lrn_clip_last(I c, I above, I channels) {
  return c + above > channels - 1 ? channels - 1 : c + above;
}

// d = k + alpha * (the window's sum of squares).
template <typename T>
ALEXNET_HOST_DEVICE inline T lrn_denominator_of(T sum_of_squares, T k, T alpha) {
  return k + alpha * sum_of_squares;
}

// dx[c] = dy[c] d[c]^-beta - 2 alpha beta x[c] sum_{c2 : c in window(c2)} dy[c2] x[c2]
// d[c2]^(-beta-1): `direct` is the first term, `through` the sum (dy[c] reaches x[c] directly,
// and every x of its window through d[c]).
template <typename T>
ALEXNET_HOST_DEVICE inline T lrn_input_grad(T direct, T two_alpha_beta, T x, T through) {
  return direct - two_alpha_beta * x * through;
}

// ---- Per element, as the CUDA kernels compute it (one thread per output; also their CPU test).

struct LrnParams {
  int channels = 1, size = 5;
  float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
};

ALEXNET_HOST_DEVICE inline int lrn_first(const LrnParams& p, int c) {
  return lrn_clip_first(c, lrn_below(p.size));
}
ALEXNET_HOST_DEVICE inline int lrn_last(const LrnParams& p, int c) {
  return lrn_clip_last(c, lrn_above(p.size), p.channels);
}

// d[c] for one pixel's channels xp[0, channels).
ALEXNET_HOST_DEVICE inline float lrn_denominator(const LrnParams& p, const float* xp, int c) {
  float sum = 0;
  for (int c2 = lrn_first(p, c); c2 <= lrn_last(p, c); ++c2) sum += xp[c2] * xp[c2];
  return lrn_denominator_of(sum, p.k, p.alpha);
}

ALEXNET_HOST_DEVICE inline float lrn_forward_at(const LrnParams& p, const float* xp, int c) {
  return xp[c] * powf(lrn_denominator(p, xp, c), -p.beta);
}

// dx[c] (lrn_input_grad), recomputing the denominators of the mirrored window.
ALEXNET_HOST_DEVICE inline float lrn_backward_at(const LrnParams& p, const float* xp,
                                                 const float* gp, int c) {
  const float direct = gp[c] * powf(lrn_denominator(p, xp, c), -p.beta);
  const int lo = lrn_clip_first(c, lrn_above(p.size));
  const int hi = lrn_clip_last(c, lrn_below(p.size), p.channels);
  float through = 0;
  for (int c2 = lo; c2 <= hi; ++c2) {
    through += gp[c2] * xp[c2] * powf(lrn_denominator(p, xp, c2), -p.beta - 1);
  }
  return lrn_input_grad(direct, 2 * p.alpha * p.beta, xp[c], through);
}

}  // namespace alexnet::trainer
