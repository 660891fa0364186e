// Softmax cross-entropy's per-class arithmetic, given the log-probabilities of a row: written once
// for the reference ops (trainer/cpu/reference_ops.cc, in whose double precision it computes),
// the CUDA loss kernel (trainer/cuda/softmax_cross_entropy_kernels.cu) and, for the label checks
// and top-k counting, the oneDNN backend's loop (trainer/cpu/onednn_softmax_cross_entropy.cc,
// which sums the loss in its own vectorizable form).
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
template <typename L>
ALEXNET_HOST_DEVICE inline double loss_term(double target, L log_p) {
  return target != 0 ? -target * static_cast<double>(log_p) : 0.0;
}

// d(mean loss)/d(logit c) times the loss scale: (p - target) / batch in double, rounded to the
// gradient's type T before it scales (as the reference backend scales its float gradient).
template <typename T, typename L>
ALEXNET_HOST_DEVICE inline T loss_gradient(L log_p, double target, int64_t batch, T scale) {
  const T g =
      static_cast<T>((exp(static_cast<double>(log_p)) - target) / static_cast<double>(batch));
  return g * scale;
}

// Top-k counting, as the CPU backends: a sample is right at k when fewer than k classes have a
// logit strictly above the label's (ties favour the label).
ALEXNET_HOST_DEVICE inline bool ranks_within(int64_t classes_above, int64_t k) {
  return classes_above < k;
}

// The classes of a row with a logit strictly above the label's (a NaN label logit ranks first, as
// no comparison holds). The CUDA kernel counts the same comparisons spread over a block.
template <typename T>
ALEXNET_HOST_DEVICE inline int64_t count_above_label(const T* row, int64_t classes, T label_logit) {
  int64_t above = 0;
  for (int64_t c = 0; c < classes; ++c) above += row[c] > label_logit;
  return above;
}

}  // namespace alexnet::trainer
