// Inverted dropout with the mask of trainer/dropout_hash.h (the same bits as the CPU backends for
// the same key), kept as one byte per element for backward.
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/dropout_hash.h"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

// A multiply by scale or 0, not a select, as the reference and PyTorch: a dropped NaN or Inf stays
// NaN instead of hiding as 0.
__global__ void dropout_forward(const float* __restrict__ x, float* __restrict__ y,
                                uint8_t* __restrict__ mask, int64_t n, uint64_t stream,
                                uint32_t threshold, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const bool keep = dropout_keep(stream, static_cast<uint64_t>(i), threshold);
    mask[i] = keep ? 1 : 0;
    y[i] = x[i] * (keep ? scale : 0.0f);
  }
}

__global__ void dropout_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                 const uint8_t* __restrict__ mask, int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
  }
}

class CudaDropout final : public DropoutOp {
 public:
  CudaDropout(CudaContext& ctx, int64_t n, double p)
      : ctx_(ctx),
        n_(n),
        // p = 1 gives 2^24, which no 24-bit draw reaches: everything is dropped.
        threshold_(static_cast<uint32_t>(std::llround(p * 16777216.0))),
        // p = 1 scales by 0 rather than inf, as PyTorch, which returns zeros.
        scale_(static_cast<float>(p < 1 ? 1 / (1 - p) : 0)),
        mask_(ctx.allocate(static_cast<size_t>(n), "dropout's mask")) {}

  void forward(const DropoutKey& key, const float* x, float* y) override {
    if (n_ == 0) return;
    const uint64_t stream = dropout_stream(key.seed, key.step, key.rank, key.layer);
    dropout_forward<<<grid_for(static_cast<size_t>(n_), kThreads), kThreads, 0, ctx_.stream()>>>(
        x, y, static_cast<uint8_t*>(mask_.get()), n_, stream, threshold_, scale_);
    ALEXNET_CUDA_CHECK_LAUNCH("dropout forward");
  }

  void backward(const float* dy, float* dx) override {
    if (n_ == 0) return;
    dropout_backward<<<grid_for(static_cast<size_t>(n_), kThreads), kThreads, 0, ctx_.stream()>>>(
        dy, dx, static_cast<const uint8_t*>(mask_.get()), n_, scale_);
    ALEXNET_CUDA_CHECK_LAUNCH("dropout backward");
  }

 private:
  CudaContext& ctx_;
  int64_t n_;
  uint32_t threshold_;
  float scale_;
  DeviceBuffer mask_;  // uint8 [n]: 1 kept, 0 dropped, from the last forward
};

}  // namespace

std::unique_ptr<DropoutOp> make_dropout(CudaContext& ctx, int64_t elements, double p) {
  if (elements < 0) {
    throw std::invalid_argument("dropout: n must not be negative, got " + std::to_string(elements));
  }
  if (!(p >= 0 && p <= 1)) {
    throw std::invalid_argument("dropout: p must be in [0, 1], got " + std::to_string(p));
  }
  return std::make_unique<CudaDropout>(ctx, elements, p);
}

}  // namespace alexnet::trainer::cuda
