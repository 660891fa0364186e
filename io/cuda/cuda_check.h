// Checked CUDA, cuDNN and cuBLAS calls: a failure throws std::runtime_error naming the call, where
// it was, what it was doing and the library's own message (io/call_error.h), e.g.
//   "CUDA call cudaMalloc(&p, bytes) failed at trainer/cuda/cuda_backend.cc:61 while allocating
//    12.6 MB of backend memory: out of memory"
// The context is an expression evaluated only on failure (a string literal or a std::string).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "io/call_error.h"

#define ALEXNET_CUDA_CHECK(call, context)                                           \
  do {                                                                              \
    const cudaError_t alexnet_status_ = (call);                                     \
    if (alexnet_status_ != cudaSuccess) {                                           \
      ::alexnet::io::throw_call_error("CUDA", #call, __FILE__, __LINE__, (context), \
                                      cudaGetErrorString(alexnet_status_));         \
    }                                                                               \
  } while (0)

#define ALEXNET_CUDNN_CHECK(call, context)                                           \
  do {                                                                               \
    const cudnnStatus_t alexnet_status_ = (call);                                    \
    if (alexnet_status_ != CUDNN_STATUS_SUCCESS) {                                   \
      ::alexnet::io::throw_call_error("cuDNN", #call, __FILE__, __LINE__, (context), \
                                      cudnnGetErrorString(alexnet_status_));         \
    }                                                                                \
  } while (0)

#define ALEXNET_CUBLAS_CHECK(call, context)                                           \
  do {                                                                                \
    const cublasStatus_t alexnet_status_ = (call);                                    \
    if (alexnet_status_ != CUBLAS_STATUS_SUCCESS) {                                   \
      ::alexnet::io::throw_call_error("cuBLAS", #call, __FILE__, __LINE__, (context), \
                                      cublasGetStatusString(alexnet_status_));        \
    }                                                                                 \
  } while (0)

// After a kernel launch: launch errors (bad configuration) surface here, at the launch.
#define ALEXNET_CUDA_CHECK_LAUNCH(context) ALEXNET_CUDA_CHECK(cudaGetLastError(), (context))
