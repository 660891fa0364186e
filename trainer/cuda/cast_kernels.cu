// fp32 <-> bf16 / fp16 conversion kernels: grid-stride loops, round to nearest even (NaN stays
// NaN, overflow goes to Inf as the _rn intrinsics define).
#include "trainer/cuda/cast_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <string>

#include "trainer/cuda/block_reduce.cuh"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__device__ inline void convert(float x, __nv_bfloat16& y) { y = __float2bfloat16_rn(x); }
__device__ inline void convert(float x, __half& y) { y = __float2half_rn(x); }
__device__ inline void convert(__nv_bfloat16 x, float& y) { y = __bfloat162float(x); }
__device__ inline void convert(__half x, float& y) { y = __half2float(x); }

template <typename From, typename To>
__global__ void cast_kernel(const From* __restrict__ x, To* __restrict__ y, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    convert(x[i], y[i]);
  }
}

template <typename From, typename To>
void launch(const void* x, void* y, size_t n, cudaStream_t stream, const char* what) {
  if (n == 0) return;
  cast_kernel<From, To><<<grid_for(n, kThreads), kThreads, 0, stream>>>(static_cast<const From*>(x),
                                                                        static_cast<To*>(y), n);
  // Not ALEXNET_CUDA_CHECK_LAUNCH: this library (alexnet_cuda_cast, also linked by comm/) does not
  // link trainer/cuda/cuda_check.cc; the message has the same shape.
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA kernel launch failed at " __FILE__ " while ") +
                             what + ": " + cudaGetErrorString(status));
  }
}

}  // namespace

void cast_from_float(const float* x, void* y, size_t n, Precision to, cudaStream_t stream) {
  switch (to) {
    case Precision::kBFloat16:
      return launch<float, __nv_bfloat16>(x, y, n, stream, "casting fp32 to bf16");
    case Precision::kFloat16:
      return launch<float, __half>(x, y, n, stream, "casting fp32 to fp16");
    case Precision::kFloat32:
      break;
  }
  throw std::invalid_argument("cast_from_float: the target must be bf16 or fp16");
}

void cast_to_float(const void* x, float* y, size_t n, Precision from, cudaStream_t stream) {
  switch (from) {
    case Precision::kBFloat16:
      return launch<__nv_bfloat16, float>(x, y, n, stream, "casting bf16 to fp32");
    case Precision::kFloat16:
      return launch<__half, float>(x, y, n, stream, "casting fp16 to fp32");
    case Precision::kFloat32:
      break;
  }
  throw std::invalid_argument("cast_to_float: the source must be bf16 or fp16");
}

}  // namespace alexnet::trainer::cuda
