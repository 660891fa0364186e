// Dropout's kernels (dropout_kernels.cu), asynchronous on `stream`: the mask of
// trainer/dropout_math.h, kept as one byte per element for backward.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace alexnet::trainer::cuda {

// y = x * (scale or 0) and mask = 1 where kept, over n elements; key is dropout_stream()'s.
void dropout_forward(const float* x, float* y, uint8_t* mask, int64_t n, uint64_t key,
                     uint32_t threshold, float scale, cudaStream_t stream);
void dropout_backward(const float* dy, float* dx, const uint8_t* mask, int64_t n, float scale,
                      cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
