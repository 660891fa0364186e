// The CUDA backend: cuDNN, cuBLAS and own kernels on one device and one stream
// (trainer/cuda/cuda_context.h), behind the Backend interface of trainer/backend.h.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "trainer/backend.h"
#include "trainer/cuda/cuda_context.h"

namespace alexnet::trainer::cuda {

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

// CUDA devices this process sees (after CUDA_VISIBLE_DEVICES); 0 when there is no driver or no
// device, never an exception.
int device_count();

// The device and stream of a backend made by make_cuda_backend (for the NCCL communicator, which
// orders its all-reduces after the gradients' kernels); std::invalid_argument for other backends.
int backend_device(Backend& backend);
cudaStream_t backend_stream(Backend& backend);
// The whole context (device, stream, handles, pinned memory), for code beside the ops that
// works on the backend's stream (the device augmenter).
CudaContext& backend_context(Backend& backend);
// Makes the backend's device current for the calling thread: every thread that drives a CUDA
// backend (one per device with several GPUs per rank) calls it first.
void make_current(Backend& backend);

}  // namespace alexnet::trainer::cuda
