// Adaptive average pooling's kernels (adaptive_avg_pool_kernels.cu; the bins and per-element
// arithmetic: trainer/adaptive_avg_pool_math.h) on NHWC activations, asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/adaptive_avg_pool_math.h"

namespace alexnet::trainer::cuda {

// outputs = N * out_h * out_w * C; inputs = N * H * W * C.
void adaptive_avg_pool_forward_nhwc(const float* x, float* y, int64_t outputs,
                                    const AdaptivePoolDims& d, cudaStream_t stream);
void adaptive_avg_pool_backward_nhwc(const float* dy, float* dx, int64_t inputs,
                                     const AdaptivePoolDims& d, cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
