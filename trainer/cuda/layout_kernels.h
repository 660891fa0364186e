// Batched transposes on the device, for the convolution's filters: PyTorch's [O, I/g, KH, KW]
// parameters to cuDNN's NHWC filter format [O, KH, KW, I/g] and back.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace alexnet::trainer::cuda {

// y[b, c, r] = x[b, r, c] for x [batch, rows, cols]; element_bytes 2 or 4 (bits are copied).
// Asynchronous on `stream`.
void transpose_batched(const void* x, void* y, int64_t batch, int64_t rows, int64_t cols,
                       size_t element_bytes, cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
