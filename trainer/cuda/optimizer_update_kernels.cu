// The optimizer's element-wise update on the device (optimizer_update_kernels.h): the element
// functions of trainer/optimizer_math.h (LARS and LAMB per layer, their norms summed between
// launches by the backend), compiled without FMA contraction (CMakeLists) so that
// every operation rounds as in the host loops of trainer/optimizer.cc and the results are the same
// bits.
#include "trainer/cuda/optimizer_update_kernels.h"

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/block_reduce.cuh"

namespace alexnet::trainer::cuda {
namespace {

constexpr int kThreads = 256;

template <UpdateRule kRule, bool kDecay>
__device__ inline void update_element(float& p, float g, float* first, float* second, size_t i,
                                      const UpdateCoefficients& c) {
  if constexpr (kRule == UpdateRule::kSgdPlain) {
    sgd_plain_element<kDecay>(p, g, c);
  } else if constexpr (kRule == UpdateRule::kSgdPyTorch) {
    sgd_pytorch_element<kDecay, false>(p, g, first[i], c);
  } else if constexpr (kRule == UpdateRule::kSgdPyTorchNesterov) {
    sgd_pytorch_element<kDecay, true>(p, g, first[i], c);
  } else if constexpr (kRule == UpdateRule::kSgdPaper) {
    sgd_paper_element<kDecay, false>(p, g, first[i], c);
  } else if constexpr (kRule == UpdateRule::kSgdPaperNesterov) {
    sgd_paper_element<kDecay, true>(p, g, first[i], c);
  } else if constexpr (kRule == UpdateRule::kAdam) {
    adam_element<kDecay>(p, g, first[i], second[i], c);
  } else if constexpr (kRule == UpdateRule::kLars) {
    lars_element<kDecay>(p, g, first[i], c);
  } else if constexpr (kRule == UpdateRule::kLambMoments) {
    p = lamb_moments_element<kDecay>(p, g, first[i], second[i], c);  // p: w in, r out
  } else {
    lamb_apply_element(p, g, c);  // g: r
  }
}

// The host applies decoupled decay as a separate pass (p[i] *= factor) before the update; doing
// it first for the element here gives the same value, in one pass.
template <UpdateRule kRule, bool kDecay>
__global__ void update_kernel(float* __restrict__ params, const float* __restrict__ grads,
                              float* __restrict__ first, float* __restrict__ second, size_t n,
                              UpdateCoefficients c, bool decoupled) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float p = params[i];
    if (decoupled) p *= c.decoupled_factor;
    update_element<kRule, kDecay>(p, grads[i], first, second, i, c);
    params[i] = p;
  }
}

template <UpdateRule kRule>
void launch(bool coupled_decay, cudaStream_t stream, float* params, const float* grads,
            float* first, float* second, size_t n, const UpdateCoefficients& c) {
  const bool decoupled = c.decoupled_factor != 1;
  const unsigned blocks = grid_for(n, kThreads);
  if (coupled_decay) {
    update_kernel<kRule, true>
        <<<blocks, kThreads, 0, stream>>>(params, grads, first, second, n, c, decoupled);
  } else {
    update_kernel<kRule, false>
        <<<blocks, kThreads, 0, stream>>>(params, grads, first, second, n, c, decoupled);
  }
  ALEXNET_CUDA_CHECK_LAUNCH("the optimizer update");
}

}  // namespace

void optimizer_update(UpdateRule rule, bool coupled_decay, const UpdateCoefficients& c,
                      float* params, const float* grads, float* first, float* second, size_t n,
                      cudaStream_t stream) {
  if (n == 0) return;
  switch (rule) {
    case UpdateRule::kSgdPlain:
      return launch<UpdateRule::kSgdPlain>(coupled_decay, stream, params, grads, first, second, n,
                                           c);
    case UpdateRule::kSgdPyTorch:
      return launch<UpdateRule::kSgdPyTorch>(coupled_decay, stream, params, grads, first, second, n,
                                             c);
    case UpdateRule::kSgdPyTorchNesterov:
      return launch<UpdateRule::kSgdPyTorchNesterov>(coupled_decay, stream, params, grads, first,
                                                     second, n, c);
    case UpdateRule::kSgdPaper:
      return launch<UpdateRule::kSgdPaper>(coupled_decay, stream, params, grads, first, second, n,
                                           c);
    case UpdateRule::kSgdPaperNesterov:
      return launch<UpdateRule::kSgdPaperNesterov>(coupled_decay, stream, params, grads, first,
                                                   second, n, c);
    case UpdateRule::kAdam:
      return launch<UpdateRule::kAdam>(coupled_decay, stream, params, grads, first, second, n, c);
    case UpdateRule::kLars:
      return launch<UpdateRule::kLars>(coupled_decay, stream, params, grads, first, second, n, c);
    case UpdateRule::kLambMoments:
      return launch<UpdateRule::kLambMoments>(coupled_decay, stream, params, grads, first, second,
                                              n, c);
    case UpdateRule::kLambApply:
      return launch<UpdateRule::kLambApply>(coupled_decay, stream, params, grads, first, second, n,
                                            c);
  }
}

}  // namespace alexnet::trainer::cuda
