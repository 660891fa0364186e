// The optimizers' per-element arithmetic, written once for the host loops (trainer/optimizer.cc)
// and the CUDA update kernel (trainer/cuda/optimizer_update_kernels.cu), in torch 1.13's float32
// operation order. Scalars come in as float because torch's CPU kernels round their Python-double
// scalars to the tensor's type before the loop. The CUDA file is compiled without FMA contraction,
// so both sides round every operation the same way and give the same bits.
#pragma once

#include <cmath>

#include "trainer/host_device.h"

namespace alexnet::trainer {

// The coefficients of one update, fixed by Optimizer::begin_step for every element.
struct UpdateCoefficients {
  float wd = 0;      // coupled weight decay (0: none); decoupled decay is applied before
  float mu = 0;      // SGD momentum
  float neg_lr = 0;  // -lr
  float beta1 = 0, one_minus_beta1 = 0, beta2 = 0, one_minus_beta2 = 0;
  float bias_correction2_sqrt = 1, eps = 0;
  float neg_step_size = 0;     // Adam: -lr / (1 - beta1^t)
  float decoupled_factor = 1;  // p *= this first (AdamW: 1 - lr * wd); 1: none
  // LARS and LAMB, per layer (Optimizer::update_layer): the layer's step after its trust ratio.
  float layer_lr = 0;                                // LARS: lr * local_lr
  float neg_layer_lr = 0;                            // LAMB: -lr * trust ratio
  float bias_correction1 = 1, bias_correction2 = 1;  // LAMB: 1 - beta1^t, 1 - beta2^t
};

// Plain SGD: d_p = d_p.add(param, alpha=weight_decay); param.add_(d_p, alpha=-lr).
template <bool kDecay>
ALEXNET_HOST_DEVICE inline void sgd_plain_element(float& p, float g, const UpdateCoefficients& c) {
  float d = kDecay ? g + c.wd * p : g;
  p = p + c.neg_lr * d;
}

// torch.optim.SGD with momentum: buf.mul_(momentum).add_(d_p); the first step's clone of d_p is
// the same as starting from a zero buffer (0 * mu + d is exactly d). Nesterov: d_p + mu * buf.
template <bool kDecay, bool kNesterov>
ALEXNET_HOST_DEVICE inline void sgd_pytorch_element(float& p, float g, float& v,
                                                    const UpdateCoefficients& c) {
  float d = kDecay ? g + c.wd * p : g;
  float m = v * c.mu;
  m = m + d;
  v = m;
  float u = kNesterov ? d + c.mu * m : m;
  p = p + c.neg_lr * u;
}

// The paper's rule: v = mu*v - lr*(g + wd*p); p += v (nesterov: p += mu*v - lr*g).
template <bool kDecay, bool kNesterov>
ALEXNET_HOST_DEVICE inline void sgd_paper_element(float& p, float g, float& v,
                                                  const UpdateCoefficients& c) {
  float d = kDecay ? g + c.wd * p : g;
  float m = v * c.mu;
  m = m + c.neg_lr * d;
  v = m;
  float u = kNesterov ? c.mu * m + c.neg_lr * d : m;
  p = p + u;
}

// torch.optim.Adam (and AdamW after its decoupled decay), step by step:
//   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//   denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
//   param.addcdiv_(exp_avg, denom, value=-step_size)
template <bool kDecay>
ALEXNET_HOST_DEVICE inline void adam_element(float& p, float g, float& m, float& v,
                                             const UpdateCoefficients& c) {
  float d = kDecay ? g + c.wd * p : g;
  float a = m * c.beta1;
  a = a + c.one_minus_beta1 * d;
  m = a;
  float b = v * c.beta2;
  b = b + c.one_minus_beta2 * d * d;
  v = b;
  float denom = sqrtf(b) / c.bias_correction2_sqrt;
  denom = denom + c.eps;
  p = p + c.neg_step_size * a / denom;
}

// LARS (You et al. 2017, arXiv:1708.03888, Algorithm 1), once the layer's local lr is known:
//   v = mu*v + lr * local_lr * (g + wd*w);  w -= v
// c.layer_lr = lr * local_lr; the buffer is in parameter units, as the paper's.
template <bool kDecay>
ALEXNET_HOST_DEVICE inline void lars_element(float& p, float g, float& v,
                                             const UpdateCoefficients& c) {
  float d = kDecay ? g + c.wd * p : g;
  float m = v * c.mu;
  m = m + c.layer_lr * d;
  v = m;
  p = p - m;
}

// LAMB's direction (You et al. 2019, arXiv:1904.00962, Algorithm 2) from its updated moments:
//   r = m_hat / (sqrt(v_hat) + eps) + wd*w,  m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t)
template <bool kDecay>
ALEXNET_HOST_DEVICE inline float lamb_direction(float p, float m, float v,
                                                const UpdateCoefficients& c) {
  float m_hat = m / c.bias_correction1;
  float v_hat = v / c.bias_correction2;
  float r = m_hat / (sqrtf(v_hat) + c.eps);
  return kDecay ? r + c.wd * p : r;
}

// LAMB's first half: Adam's moments (of the gradient alone: the decay is in the direction), then
// the direction. The layer's norm of r gives the trust ratio; lamb_apply_element is the second
// half.
template <bool kDecay>
ALEXNET_HOST_DEVICE inline float lamb_moments_element(float p, float g, float& m, float& v,
                                                      const UpdateCoefficients& c) {
  float a = m * c.beta1;
  a = a + c.one_minus_beta1 * g;
  m = a;
  float b = v * c.beta2;
  b = b + c.one_minus_beta2 * g * g;
  v = b;
  return lamb_direction<kDecay>(p, a, b, c);
}

// LAMB's second half: w -= lr * ratio * r, with c.neg_layer_lr = -lr * ratio.
ALEXNET_HOST_DEVICE inline void lamb_apply_element(float& p, float r, const UpdateCoefficients& c) {
  p = p + c.neg_layer_lr * r;
}

// Which of the element functions an update uses.
enum class UpdateRule {
  kSgdPlain,
  kSgdPyTorch,
  kSgdPyTorchNesterov,
  kSgdPaper,
  kSgdPaperNesterov,
  kAdam,
  kLars,
  // LAMB on a device, in two launches around the norm of r: kLambMoments reads w from `params`
  // (a copy of the weights) and writes r there; kLambApply adds -lr*ratio*r, r as `grads`.
  kLambMoments,
  kLambApply,
};

}  // namespace alexnet::trainer
