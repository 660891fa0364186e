// Gradient norms and clipping (trainer/grad_norm.h).
#include "trainer/grad_norm.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace alexnet::trainer {

double grad_norm(std::span<const float> grads) { return std::sqrt(sum_of_squares(grads)); }

double sum_of_squares(std::span<const float> grads) {
  // Four partial sums: independent chains the compiler can keep in flight, in a fixed order so
  // that every rank gets the same bits.
  double s[4] = {0, 0, 0, 0};
  const float* g = grads.data();
  const size_t n = grads.size(), n4 = n - n % 4;
  for (size_t i = 0; i < n4; i += 4) {
    for (size_t k = 0; k < 4; ++k) s[k] += static_cast<double>(g[i + k]) * g[i + k];
  }
  for (size_t i = n4; i < n; ++i) s[0] += static_cast<double>(g[i]) * g[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

double clip_coefficient(double norm, double max_norm) {
  if (!std::isfinite(norm)) return 1;
  // max_norm / (norm + 1e-6), the 1e-6 keeping a zero norm finite. torch computes it in float32;
  // rounding the same way keeps clipped trajectories closest to its. Only a norm beyond float's
  // range (ours is summed in double) needs double.
  double coefficient = norm < std::numeric_limits<float>::max()
                           ? static_cast<float>(max_norm) / (static_cast<float>(norm) + 1e-6f)
                           : max_norm / (norm + 1e-6);
  return coefficient < 1 ? coefficient : 1;
}

void scale_grads(std::span<float> grads, double factor) {
  if (factor == 1) return;
  const auto f = static_cast<float>(factor);
  for (float& g : grads) g *= f;
}

double clip_grad_norm(std::span<float> grads, double max_norm) {
  if (!(max_norm > 0)) {
    throw std::invalid_argument("clip_grad_norm: max_norm must be > 0, got " +
                                std::to_string(max_norm));
  }
  double norm = grad_norm(grads);
  scale_grads(grads, clip_coefficient(norm, max_norm));
  return norm;
}

}  // namespace alexnet::trainer
