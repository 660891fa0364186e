// fp32 <-> bf16 / fp16 conversion kernels: grid-stride loops, round to nearest even (NaN stays
// NaN, overflow goes to Inf as the _rn intrinsics define).
#include "io/cuda/cast_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <stdexcept>

#include "io/cuda/cuda_check.h"

namespace alexnet::cuda {

using numeric::Precision;

namespace {

constexpr int kThreads = 256;
// Grid-stride loops: enough blocks to fill the device a few times over.
constexpr size_t kMaxBlocks = 4096;

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
  const size_t blocks = std::min((n + kThreads - 1) / kThreads, kMaxBlocks);
  cast_kernel<From, To><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<const From*>(x), static_cast<To*>(y), n);
  ALEXNET_CUDA_CHECK_LAUNCH(what);
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

}  // namespace alexnet::cuda
