// What every CUDA op of one backend shares: the device, the stream all of them run on in order,
// the cuDNN and cuBLAS handles bound to it, the precision, and one workspace for cuDNN and cuBLAS
// that grows only while ops are being made (never inside a training step). Ops run one after
// another on the one stream, so they can share the workspace.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <memory>
#include <string>

#include "trainer/backend.h"
#include "trainer/backend_options.h"

namespace alexnet::trainer::cuda {

// Device memory owned by an op (cudaFree on destruction).
struct DeviceFree {
  void operator()(void* p) const noexcept;
};
using DeviceBuffer = std::unique_ptr<void, DeviceFree>;
// Pinned host memory (cudaFreeHost on destruction).
struct PinnedFree {
  void operator()(void* p) const noexcept;
};
using PinnedBuffer = std::unique_ptr<void, PinnedFree>;

class CudaContext {
 public:
  // Makes the stream and handles on `device` (-1: the current one); throws on any failure.
  CudaContext(int device, const BackendOptions& options);
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  Precision precision() const { return options_.precision; }
  bool allow_tf32() const { return options_.allow_tf32; }
  size_t conv_workspace_limit() const { return options_.conv_workspace_bytes; }
  const cudaDeviceProp& properties() const { return properties_; }

  // cudaMalloc, checked; `what` names the memory in the error ("conv1's bf16 weights").
  DeviceBuffer allocate(size_t bytes, const std::string& what);
  // Grows the shared workspace to at least `bytes` (at op creation only); workspace() is then
  // valid until the next reserve_workspace().
  void reserve_workspace(size_t bytes);
  void* workspace() const { return workspace_.get(); }
  size_t workspace_size() const { return workspace_size_; }

  // Pinned host memory, e.g. for the loss op's small results (cudaMallocHost).
  PinnedBuffer pinned(size_t bytes);

 private:
  void release() noexcept;  // handles, stream and workspace, whichever exist

  int device_ = 0;
  BackendOptions options_;
  cudaDeviceProp properties_{};
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer workspace_;
  size_t workspace_size_ = 0;
};

// cuDNN's element type for a precision (fp32: CUDNN_DATA_FLOAT, bf16: CUDNN_DATA_BFLOAT16, fp16:
// CUDNN_DATA_HALF), and the bytes of one element.
cudnnDataType_t cudnn_data_type(Precision precision);
size_t element_bytes(Precision precision);

}  // namespace alexnet::trainer::cuda
