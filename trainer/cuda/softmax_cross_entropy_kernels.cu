// Softmax cross-entropy's kernels (softmax_cross_entropy_kernels.h).
#include "trainer/cuda/softmax_cross_entropy_kernels.h"

#include <climits>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/softmax_cross_entropy_math.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

// Block `row`: row_loss[row] = sum_c -target_c log p_c; row_above[row] = classes with a logit
// strictly above the label's (INT_MAX: the label is out of range); dlogits (when not null) =
// (p - target) / batch * scale.
__global__ void loss_rows_kernel(const float* __restrict__ logits, const float* __restrict__ log_p,
                                 const int32_t* __restrict__ labels, float* __restrict__ dlogits,
                                 double* __restrict__ row_loss, int* __restrict__ row_above,
                                 int64_t batch, int64_t classes, double smoothing, float scale) {
  __shared__ double loss_shared[kThreads];
  __shared__ int count_shared[kThreads];
  const int64_t row = blockIdx.x;
  const int32_t label = labels[row];
  if (!label_in_range(label, classes)) {  // the same for the whole block: no barrier is skipped
    if (threadIdx.x == 0) {
      row_loss[row] = 0;
      row_above[row] = INT_MAX;
    }
    return;
  }
  const float* z = logits + row * classes;
  const float* lp = log_p + row * classes;
  const float label_logit = z[label];
  const double uniform = smoothing / static_cast<double>(classes);
  double loss = 0;
  int above = 0;
  for (int64_t c = threadIdx.x; c < classes; c += kThreads) {
    const double target = smoothed_target(c, label, smoothing, uniform);
    loss += loss_term(target, lp[c]);
    above += z[c] > label_logit;
    if (dlogits != nullptr) dlogits[row * classes + c] = loss_gradient(lp[c], target, batch, scale);
  }
  loss = block_sum<kThreads>(loss, loss_shared);
  above = block_sum<kThreads>(above, count_shared);
  if (threadIdx.x == 0) {
    row_loss[row] = loss;
    row_above[row] = above;
  }
}

// One block: the batch's totals, every row always in the same thread and order.
__global__ void loss_totals_kernel(const double* __restrict__ row_loss,
                                   const int* __restrict__ row_above,
                                   const int32_t* __restrict__ labels, int64_t batch,
                                   LossTotals* __restrict__ totals) {
  __shared__ double loss_shared[kThreads];
  __shared__ long long count_shared[kThreads];
  __shared__ int bad_shared[kThreads];
  double loss = 0;
  long long top1 = 0, top5 = 0;
  int bad = INT_MAX;
  for (int64_t r = threadIdx.x; r < batch; r += kThreads) {
    loss += row_loss[r];
    const int above = row_above[r];
    if (above == INT_MAX) {
      if (r < bad) bad = static_cast<int>(r);
      continue;
    }
    top1 += ranks_within(above, 1);
    top5 += ranks_within(above, 5);
  }
  loss = block_sum<kThreads>(loss, loss_shared);
  top1 = block_sum<kThreads>(top1, count_shared);
  top5 = block_sum<kThreads>(top5, count_shared);
  bad = block_min<kThreads>(bad, bad_shared);
  if (threadIdx.x == 0) {
    totals->loss_sum = loss;
    totals->top1 = top1;
    totals->top5 = top5;
    totals->bad_sample = bad == INT_MAX ? -1 : bad;
    totals->bad_label = bad == INT_MAX ? 0 : labels[bad];
  }
}

}  // namespace

void softmax_cross_entropy_rows(const float* logits, const float* log_p, const int32_t* labels,
                                float* dlogits, double* row_loss, int* row_above, int64_t batch,
                                int64_t classes, double smoothing, float scale,
                                cudaStream_t stream) {
  loss_rows_kernel<<<static_cast<unsigned>(batch), kThreads, 0, stream>>>(
      logits, log_p, labels, dlogits, row_loss, row_above, batch, classes, smoothing, scale);
  ALEXNET_CUDA_CHECK_LAUNCH("the softmax cross-entropy rows");
}

void softmax_cross_entropy_totals(const double* row_loss, const int* row_above,
                                  const int32_t* labels, int64_t batch, LossTotals* totals,
                                  cudaStream_t stream) {
  loss_totals_kernel<<<1, kThreads, 0, stream>>>(row_loss, row_above, labels, batch, totals);
  ALEXNET_CUDA_CHECK_LAUNCH("the softmax cross-entropy totals");
}

}  // namespace alexnet::trainer::cuda
