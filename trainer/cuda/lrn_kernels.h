// LRN across channels over NHWC activations (the math: trainer/lrn_math.h), asynchronous on
// `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/lrn_math.h"

namespace alexnet::trainer::cuda {

// pixels = N * H * W; x, y, dy, dx [pixels, channels].
void lrn_forward_nhwc(const LrnParams& p, int64_t pixels, const float* x, float* y,
                      cudaStream_t stream);
void lrn_backward_nhwc(const LrnParams& p, int64_t pixels, const float* x, const float* dy,
                       float* dx, cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
