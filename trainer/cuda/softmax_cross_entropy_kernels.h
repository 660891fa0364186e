// Softmax cross-entropy's kernels (softmax_cross_entropy_kernels.cu; the per-class arithmetic:
// trainer/softmax_cross_entropy_math.h), asynchronous on `stream`: one block per row for the
// loss, the gradient and the label's rank, then one block that adds the rows in a fixed order
// (deterministic) and checks the labels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace alexnet::trainer::cuda {

// What the final kernel hands back to the host.
struct LossTotals {
  double loss_sum;
  long long top1, top5;
  int bad_sample;  // the first sample whose label is outside [0, classes); -1: none
  int bad_label;
};

// From the logits and cuDNN's log-softmax log_p [batch, classes]: row_loss[row] = sum_c -target_c
// log p_c; row_above[row] = classes with a logit strictly above the label's (INT_MAX: the label
// is out of range); dlogits (when not null) = (p - target) / batch * scale.
void softmax_cross_entropy_rows(const float* logits, const float* log_p, const int32_t* labels,
                                float* dlogits, double* row_loss, int* row_above, int64_t batch,
                                int64_t classes, double smoothing, float scale,
                                cudaStream_t stream);
// The batch's totals into device memory `totals`.
void softmax_cross_entropy_totals(const double* row_loss, const int* row_above,
                                  const int32_t* labels, int64_t batch, LossTotals* totals,
                                  cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
