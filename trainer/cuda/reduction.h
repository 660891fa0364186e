// The deterministic sum of squares of a float array (gradient norms, loss scaling's overflow
// check), with its scratch allocated once: a CUDA backend holds one SumOfSquares and calls it.
#pragma once

#include <cstddef>

#include "trainer/cuda/cuda_context.h"

namespace alexnet::trainer::cuda {

class SumOfSquares {
 public:
  // The partial sums' device buffer and the pinned result, for any n.
  explicit SumOfSquares(CudaContext& ctx);
  // sum x[i]^2 over n floats of device memory, in double, on ctx's stream; waits for the result.
  // The same input gives the same bits on every run (fixed grid and fixed-order block trees, no
  // atomics). NaN or Inf when any element is.
  double operator()(const float* x, size_t n);

  // Partial sums: at most this many blocks in the first pass.
  static constexpr unsigned kMaxBlocks = 1024;

 private:
  CudaContext& ctx_;
  DeviceBuffer partial_;  // double[kMaxBlocks + 1]: the blocks' sums, then the total
  PinnedBuffer result_;   // double
};

}  // namespace alexnet::trainer::cuda
