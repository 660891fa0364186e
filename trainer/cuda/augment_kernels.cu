// The GPU data augmentation kernel: one thread per output element (augment_math.h).
#include "trainer/cuda/augment_kernels.h"

#include <stdexcept>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void augment_kernel(const uint8_t* __restrict__ src,
                               const AugmentImage* __restrict__ images, int64_t n,
                               AugmentGeometry g, float* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; o < n;
       o += stride) {
    out[o] = augment_output(src, images, o, g);
  }
}

}  // namespace

void augment_batch(const uint8_t* src, const AugmentImage* images, int64_t batch,
                   const AugmentGeometry& geometry, float* out, cudaStream_t stream) {
  if (geometry.channels <= 0 || geometry.channels > io::kMaxChannels || geometry.crop_h <= 0 ||
      geometry.crop_w <= 0 || geometry.height <= 0 || geometry.width <= 0 || geometry.pad < 0) {
    throw std::invalid_argument("augment_batch: bad geometry");
  }
  const int64_t n = batch * geometry.crop_h * geometry.crop_w * geometry.channels;
  if (n <= 0) return;
  augment_kernel<<<grid_for(static_cast<size_t>(n), kThreads), kThreads, 0, stream>>>(
      src, images, n, geometry, out);
  ALEXNET_CUDA_CHECK_LAUNCH("augmenting a batch");
}

}  // namespace alexnet::trainer::cuda
