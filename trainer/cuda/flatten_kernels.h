// Flatten's kernels (flatten_kernels.cu; the mapping: trainer/flatten_math.h), asynchronous on
// `stream`: NHWC [N, H, W, C] <-> [N, C * H * W] in PyTorch's (C, H, W) order, n elements.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/flatten_math.h"

namespace alexnet::trainer::cuda {

void flatten_forward_nhwc(const float* x, float* y, int64_t n, const FlattenDims& d,
                          cudaStream_t stream);
void flatten_backward_nhwc(const float* dy, float* dx, int64_t n, const FlattenDims& d,
                           cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
