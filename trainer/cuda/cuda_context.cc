// CudaContext: device, stream, cuDNN and cuBLAS handles, shared workspace.
#include "trainer/cuda/cuda_context.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "io/cuda/cuda_check.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr size_t kMinWorkspaceBytes = size_t{32} << 20;

// Makes `device` current for a scope and restores the caller's device: allocations and handle
// work land on the context's own device whatever thread calls (several GPUs per rank).
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) {
      ALEXNET_CUDA_CHECK(cudaSetDevice(device), "selecting CUDA device " + std::to_string(device));
    } else {
      previous_ = -1;
    }
  }
  ~DeviceScope() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

std::string megabytes(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

}  // namespace

void DeviceFree::operator()(void* p) const noexcept {
  if (p != nullptr) cudaFree(p);  // nothing to do about a failure while releasing
}

void PinnedFree::operator()(void* p) const noexcept {
  if (p != nullptr) cudaFreeHost(p);
}

CudaContext::CudaContext(int device, const BackendOptions& options) : options_(options) {
  int count = 0;
  ALEXNET_CUDA_CHECK(cudaGetDeviceCount(&count), "counting CUDA devices");
  if (device < 0) {
    ALEXNET_CUDA_CHECK(cudaGetDevice(&device), "asking for the current CUDA device");
  }
  if (device >= count) {
    throw std::invalid_argument("CUDA device " + std::to_string(device) + " requested, " +
                                std::to_string(count) + " visible (CUDA_VISIBLE_DEVICES applies)");
  }
  device_ = device;
  ALEXNET_CUDA_CHECK(cudaSetDevice(device_), "selecting CUDA device " + std::to_string(device_));
  ALEXNET_CUDA_CHECK(cudaGetDeviceProperties(&properties_, device_), "reading device properties");
  if (options.precision == Precision::kBFloat16 && properties_.major < 8) {
    throw std::invalid_argument(std::string("precision bf16 needs compute capability 8.0 or "
                                            "newer; ") +
                                properties_.name + " has " + std::to_string(properties_.major) +
                                "." + std::to_string(properties_.minor));
  }
  try {
    ALEXNET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                       "creating the compute stream");
    ALEXNET_CUDNN_CHECK(cudnnCreate(&cudnn_), "creating the cuDNN handle");
    ALEXNET_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_), "binding cuDNN to the compute stream");
    ALEXNET_CUBLAS_CHECK(cublasCreate(&cublas_), "creating the cuBLAS handle");
    ALEXNET_CUBLAS_CHECK(cublasSetStream(cublas_, stream_), "binding cuBLAS to the compute stream");
    // Pointer-mode host: alpha and beta are host scalars in every call.
    ALEXNET_CUBLAS_CHECK(cublasSetPointerMode(cublas_, CUBLAS_POINTER_MODE_HOST),
                         "setting cuBLAS pointer mode");
  } catch (...) {
    release();  // the destructor does not run for a constructor that throws
    throw;
  }
}

CudaContext::~CudaContext() { release(); }

void CudaContext::release() noexcept {
  // Release in reverse; errors here cannot be reported usefully (the process may be ending after a
  // device failure). The handles belong to this context's device, which another thread's (or
  // another backend's) work may have left not current.
  int current = -1;
  const bool restore = cudaGetDevice(&current) == cudaSuccess && current != device_;
  if (restore) cudaSetDevice(device_);
  workspace_.reset();
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (cudnn_ != nullptr) cudnnDestroy(cudnn_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
  cublas_ = nullptr;
  cudnn_ = nullptr;
  stream_ = nullptr;
  if (restore) cudaSetDevice(current);
}

DeviceBuffer CudaContext::allocate(size_t bytes, const std::string& what) {
  // On this context's device whatever the calling thread has current.
  DeviceScope scope(device_);
  void* p = nullptr;
  ALEXNET_CUDA_CHECK(
      cudaMalloc(&p, bytes == 0 ? 1 : bytes),
      "allocating " + megabytes(bytes) + " for " + what + " on device " + std::to_string(device_));
  return DeviceBuffer(p);
}

void CudaContext::reserve_workspace(size_t bytes) {
  if (bytes <= workspace_size_) return;
  // The workspace also replaces cuBLAS's own (cublasSetWorkspace below): never hand cuBLAS less
  // than its documented recommendation (32 MiB on Hopper, 4 MiB before), or a convolution whose
  // algorithms need a few kB would starve the classifier's GEMMs.
  bytes = std::max(bytes, kMinWorkspaceBytes);
  // The old workspace may still be in use by queued work of ops made earlier.
  ALEXNET_CUDA_CHECK(cudaStreamSynchronize(stream_), "waiting before growing the workspace");
  workspace_.reset();
  workspace_ = allocate(bytes, "the cuDNN/cuBLAS workspace");
  workspace_size_ = bytes;
  ALEXNET_CUBLAS_CHECK(cublasSetWorkspace(cublas_, workspace_.get(), workspace_size_),
                       "giving cuBLAS the shared workspace");
}

PinnedBuffer CudaContext::pinned(size_t bytes) {
  void* p = nullptr;
  ALEXNET_CUDA_CHECK(cudaMallocHost(&p, bytes == 0 ? 1 : bytes),
                     "allocating " + megabytes(bytes) + " of pinned host memory");
  return PinnedBuffer(p);
}

cudnnDataType_t cudnn_data_type(Precision precision) {
  switch (precision) {
    case Precision::kFloat32:
      return CUDNN_DATA_FLOAT;
    case Precision::kBFloat16:
      return CUDNN_DATA_BFLOAT16;
    case Precision::kFloat16:
      return CUDNN_DATA_HALF;
  }
  return CUDNN_DATA_FLOAT;
}

size_t element_bytes(Precision precision) { return precision == Precision::kFloat32 ? 4 : 2; }

}  // namespace alexnet::trainer::cuda
