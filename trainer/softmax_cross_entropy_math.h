// Softmax cross-entropy's per-class arithmetic, given the log-probabilities of a row: written once
// for the CUDA loss kernel and its CPU tests, in the reference's double precision
// (trainer/cpu/reference_ops.cc).
#pragma once

#include <cmath>
#include <cstdint>

#include "trainer/host_device.h"

namespace alexnet::trainer {

ALEXNET_HOST_DEVICE inline bool label_in_range(int32_t label, int64_t classes) {
  return label >= 0 && label < classes;
}

// PyTorch's smoothed target: (1 - eps) one-hot + eps / classes (`uniform` = eps / classes).
ALEXNET_HOST_DEVICE inline double smoothed_target(int64_t c, int32_t label, double smoothing,
                                                  double uniform) {
  return (c == label ? 1 - smoothing : 0) + uniform;
}

// Class c's share of the row's loss, -target * log p. A zero target contributes nothing, even
// where log p is -inf (where 0 * -inf would be NaN).
ALEXNET_HOST_DEVICE inline double loss_term(double target, float log_p) {
  return target != 0 ? -target * static_cast<double>(log_p) : 0.0;
}

// d(mean loss)/d(logit c) times the loss scale: (p - target) / batch, rounded to float as the
// reference does before it scales.
ALEXNET_HOST_DEVICE inline float loss_gradient(float log_p, double target, int64_t batch,
                                               float scale) {
  const float g =
      static_cast<float>((exp(static_cast<double>(log_p)) - target) / static_cast<double>(batch));
  return g * scale;
}

// Top-k counting, as the CPU backends: a sample is right at k when fewer than k classes have a
// logit strictly above the label's (ties favour the label).
ALEXNET_HOST_DEVICE inline bool ranks_within(int64_t classes_above, int64_t k) {
  return classes_above < k;
}

}  // namespace alexnet::trainer
