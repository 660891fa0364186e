// Block-wide sums in a fixed order (a shared-memory tree), so that a reduction gives the same bits
// on every run: the deterministic building block of the loss and sum-of-squares kernels.
#pragma once

namespace alexnet::trainer::cuda {

// The sum of `value` over the kThreads threads of the block (blockDim.x == kThreads, a power of
// two), returned to every thread. `shared` holds kThreads elements; every thread must call.
template <int kThreads, typename T>
__device__ T block_sum(T value, T* shared) {
  static_assert((kThreads & (kThreads - 1)) == 0, "kThreads must be a power of two");
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();  // shared may be reused by the caller's next reduction
  return total;
}

// As block_sum, with the minimum.
template <int kThreads, typename T>
__device__ T block_min(T value, T* shared) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) {
      const T other = shared[threadIdx.x + stride];
      if (other < shared[threadIdx.x]) shared[threadIdx.x] = other;
    }
    __syncthreads();
  }
  const T least = shared[0];
  __syncthreads();
  return least;
}

// A grid-stride loop's grid for n elements: enough blocks to fill the device a few times over,
// at most kMaxBlocks.
inline unsigned grid_for(size_t n, int threads, unsigned max_blocks = 4096) {
  const size_t blocks = (n + static_cast<size_t>(threads) - 1) / static_cast<size_t>(threads);
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks));
}

}  // namespace alexnet::trainer::cuda
