// Gradient norms and clipping on the host, in a fixed summation order: the CPU backends' sum of
// squares and scaling (Backend::sum_of_squares, Backend::scale) and the optimizer's clipping
// (torch.nn.utils.clip_grad_norm_). Part of the backend interface library, below both.
#pragma once

#include <cstddef>
#include <span>

namespace alexnet::trainer {

// L2 norm of all gradients, accumulated in double (no overflow for large finite gradients; the
// same on every rank for the same all-reduced gradients). NaN or Inf when any gradient is.
double grad_norm(std::span<const float> grads);
// The square of grad_norm, the same sum (what backends return: Backend::sum_of_squares).
double sum_of_squares(std::span<const float> values);

// torch.nn.utils.clip_grad_norm_: scales the gradients by max_norm / (norm + 1e-6) when that is
// below 1; returns the norm before clipping. A NaN or Inf norm is returned with the gradients left
// as they are (torch would scale them by NaN or 0): the caller decides whether to skip the step.
// Over several buffers: use grad_norm() on each, combine, and scale_grads().
double clip_grad_norm(std::span<float> grads, double max_norm);
// The factor clip_grad_norm applies for `norm` (1 when no clipping is needed or norm is not
// finite), and the scaling itself.
double clip_coefficient(double norm, double max_norm);
void scale_grads(std::span<float> grads, double factor);

}  // namespace alexnet::trainer
