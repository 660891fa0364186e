// The optimizer's element-wise update kernel (optimizer_update_kernels.cu; the arithmetic:
// trainer/optimizer_math.h), asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "trainer/optimizer_math.h"

namespace alexnet::trainer::cuda {

// OptimizerUpdateOp::update's contract (trainer/backend.h) over n elements of device memory.
void optimizer_update(UpdateRule rule, bool coupled_decay, const UpdateCoefficients& c,
                      float* params, const float* grads, float* first, float* second, size_t n,
                      cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
