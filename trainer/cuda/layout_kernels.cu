// Batched transposes (layout_kernels.h). Filters are small (AlexNet's largest, conv4's 1.3 M
// elements), so one thread per element with coalesced writes is enough.
#include <cstdint>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/layout_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

template <typename T>
__global__ void transpose_kernel(const T* x, T* y, int64_t batch, int64_t rows, int64_t cols) {
  const int64_t total = batch * rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // i indexes y [batch, cols, rows].
    const int64_t r = i % rows;
    const int64_t c = (i / rows) % cols;
    const int64_t b = i / (rows * cols);
    y[i] = x[(b * rows + r) * cols + c];
  }
}

}  // namespace

void transpose_batched(const void* x, void* y, int64_t batch, int64_t rows, int64_t cols,
                       size_t element_bytes, cudaStream_t stream) {
  const int64_t total = batch * rows * cols;
  if (total <= 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks64 = (total + kThreads - 1) / kThreads;
  const int blocks = static_cast<int>(blocks64 < 65536 ? blocks64 : 65536);
  if (element_bytes == 4) {
    transpose_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint32_t*>(x),
                                                      static_cast<uint32_t*>(y), batch, rows, cols);
  } else if (element_bytes == 2) {
    transpose_kernel<<<blocks, kThreads, 0, stream>>>(static_cast<const uint16_t*>(x),
                                                      static_cast<uint16_t*>(y), batch, rows, cols);
  } else {
    io::throw_call_error("CUDA", "transpose_batched", __FILE__, __LINE__, "transposing a filter",
                         "unsupported element size " + std::to_string(element_bytes));
  }
  ALEXNET_CUDA_CHECK_LAUNCH("transposing a filter");
}

}  // namespace alexnet::trainer::cuda
