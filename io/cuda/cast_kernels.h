// fp32 <-> bf16 / fp16 conversion kernels (round to nearest even), for the mixed-precision ops and
// 16-bit gradient all-reduces. Asynchronous on `stream`; n may be 0.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "io/numeric/precision.h"

namespace alexnet::cuda {

// y (to's type, bf16 or fp16) = x.
void cast_from_float(const float* x, void* y, size_t n, numeric::Precision to, cudaStream_t stream);
// y = x (from's type, bf16 or fp16).
void cast_to_float(const void* x, float* y, size_t n, numeric::Precision from, cudaStream_t stream);

}  // namespace alexnet::cuda
