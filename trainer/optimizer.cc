// SGD (PyTorch and paper momentum), Adam and AdamW over flat buffers, in torch 1.13's float32
// operation order; gradient-norm clipping.
#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace alexnet::trainer {
namespace {

// Each kernel is one simple loop over n elements, branch-free inside (the choices are template
// parameters), so that the compiler vectorizes it. Scalars come in as float because torch's CPU
// kernels round their Python-double scalars to the tensor's type before the loop. The comments
// give the torch 1.13 statement that each line mirrors.

// p *= factor (AdamW and decoupled SGD: param.mul_(1 - lr * weight_decay)).
void scale(float* __restrict__ p, size_t n, float factor) {
  for (size_t i = 0; i < n; ++i) p[i] *= factor;
}

template <bool kDecay>
void sgd_plain(float* __restrict__ p, const float* __restrict__ g, size_t n, float wd,
               float neg_lr) {
  for (size_t i = 0; i < n; ++i) {
    float d = kDecay ? g[i] + wd * p[i] : g[i];  // d_p = d_p.add(param, alpha=weight_decay)
    p[i] = p[i] + neg_lr * d;                    // param.add_(d_p, alpha=-lr)
  }
}

template <bool kDecay, bool kNesterov>
void sgd_pytorch(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ v,
                 size_t n, float wd, float mu, float neg_lr) {
  for (size_t i = 0; i < n; ++i) {
    float d = kDecay ? g[i] + wd * p[i] : g[i];
    // buf.mul_(momentum).add_(d_p, alpha=1); torch's first step clones d_p instead, which is the
    // same as starting from a zero buffer: 0 * mu + d is exactly d.
    float m = v[i] * mu;
    m = m + d;
    v[i] = m;
    float u = kNesterov ? d + mu * m : m;  // d_p = d_p.add(buf, alpha=momentum), or buf
    p[i] = p[i] + neg_lr * u;              // param.add_(d_p, alpha=-lr)
  }
}

template <bool kDecay, bool kNesterov>
void sgd_paper(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ v, size_t n,
               float wd, float mu, float neg_lr) {
  for (size_t i = 0; i < n; ++i) {
    float d = kDecay ? g[i] + wd * p[i] : g[i];
    float m = v[i] * mu;
    m = m + neg_lr * d;  // v = mu*v - lr*(g + wd*p)
    v[i] = m;
    float u = kNesterov ? mu * m + neg_lr * d : m;  // nesterov: p += mu*v - lr*g
    p[i] = p[i] + u;                                // p += v
  }
}

// GCC vectorizes this loop only under -fno-math-errno: otherwise sqrt keeps a branch to set
// errno for negative inputs (which v never holds). SGD, the paper's optimizer, has no sqrt.
template <bool kDecay>
void adam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
          float* __restrict__ v, size_t n, float wd, float beta1, float one_minus_beta1,
          float beta2, float one_minus_beta2, float bias_correction2_sqrt, float eps,
          float neg_step_size) {
  for (size_t i = 0; i < n; ++i) {
    float d = kDecay ? g[i] + wd * p[i] : g[i];  // grad = grad.add(param, alpha=weight_decay)
    float a = m[i] * beta1;                      // exp_avg.mul_(beta1)
    a = a + one_minus_beta1 * d;                 //        .add_(grad, alpha=1 - beta1)
    m[i] = a;
    float b = v[i] * beta2;           // exp_avg_sq.mul_(beta2)
    b = b + one_minus_beta2 * d * d;  //           .addcmul_(grad, grad, value=1 - beta2)
    v[i] = b;
    float denom = std::sqrt(b) / bias_correction2_sqrt;  // exp_avg_sq.sqrt() / bc2_sqrt
    denom = denom + eps;                                 // .add_(eps)
    p[i] = p[i] + neg_step_size * a / denom;  // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

std::string range_text(size_t offset, size_t count) {
  return "[" + std::to_string(offset) + ", " + std::to_string(offset + count) + ")";
}

bool finite_non_negative(double x) { return std::isfinite(x) && x >= 0; }

}  // namespace

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "adamw") return OptimizerKind::kAdamW;
  throw std::invalid_argument("unknown optimizer '" + name + "' (expected sgd, adam or adamw)");
}

MomentumRule parse_momentum_rule(const std::string& name) {
  if (name == "pytorch") return MomentumRule::kPyTorch;
  if (name == "paper") return MomentumRule::kPaper;
  throw std::invalid_argument("unknown momentum rule '" + name + "' (expected pytorch or paper)");
}

void validate(const OptimizerConfig& config) {
  OptimizerKind kind = parse_optimizer_kind(config.name);
  parse_momentum_rule(config.momentum_rule);
  auto fail = [](const std::string& what, double value) {
    throw std::invalid_argument("optimizer: " + what + ", got " + std::to_string(value));
  };
  if (!(config.momentum >= 0 && config.momentum < 1)) {
    fail("momentum must be in [0, 1)", config.momentum);
  }
  if (config.nesterov && kind != OptimizerKind::kSgd) {
    throw std::invalid_argument("optimizer: nesterov applies to sgd only, not " + config.name);
  }
  if (config.momentum_rule != "pytorch" && kind != OptimizerKind::kSgd) {
    throw std::invalid_argument("optimizer: momentum_rule " + config.momentum_rule +
                                " applies to sgd only, not " + config.name);
  }
  if (config.nesterov && config.momentum == 0) fail("nesterov needs momentum > 0", config.momentum);
  if (!finite_non_negative(config.weight_decay)) {
    fail("weight_decay must be >= 0", config.weight_decay);
  }
  if (!(config.beta1 >= 0 && config.beta1 < 1)) fail("beta1 must be in [0, 1)", config.beta1);
  if (!(config.beta2 >= 0 && config.beta2 < 1)) fail("beta2 must be in [0, 1)", config.beta2);
  if (!(std::isfinite(config.eps) && config.eps > 0)) fail("eps must be > 0", config.eps);
  if (!finite_non_negative(config.clip_grad_norm)) {
    fail("clip_grad_norm must be >= 0 (0: off)", config.clip_grad_norm);
  }
}

Optimizer::Optimizer(const OptimizerConfig& config, size_t size,
                     std::vector<DecayRange> decay_ranges)
    : config_(config),
      kind_(parse_optimizer_kind(config.name)),
      rule_(parse_momentum_rule(config.momentum_rule)),
      decoupled_(config.decoupled_weight_decay || kind_ == OptimizerKind::kAdamW),
      size_(size) {
  validate(config);
  if (decay_ranges.empty()) decay_ranges.push_back({0, size, true});
  std::sort(decay_ranges.begin(), decay_ranges.end(),
            [](const DecayRange& a, const DecayRange& b) { return a.offset < b.offset; });
  size_t covered = 0;
  for (const DecayRange& r : decay_ranges) {
    if (r.offset != covered) {
      throw std::invalid_argument("optimizer: decay range " + range_text(r.offset, r.count) +
                                  (r.offset < covered ? " overlaps" : " leaves a gap after") +
                                  " the ranges before it, which end at " + std::to_string(covered));
    }
    if (r.count == 0) continue;
    covered += r.count;
    if (!segments_.empty() && segments_.back().decay == r.decay) {
      segments_.back().end = covered;
    } else {
      segments_.push_back({r.offset, covered, r.decay});
    }
  }
  if (covered != size) {
    throw std::invalid_argument("optimizer: decay ranges cover [0, " + std::to_string(covered) +
                                ") of a buffer of " + std::to_string(size) + " elements");
  }
  bool has_momentum = kind_ == OptimizerKind::kSgd && config.momentum != 0;
  if (has_momentum || kind_ != OptimizerKind::kSgd) first_.assign(size, 0.0f);
  if (kind_ != OptimizerKind::kSgd) second_.assign(size, 0.0f);
}

void Optimizer::step(std::span<float> params, std::span<const float> grads, double lr) {
  begin_step(lr);
  update(params, grads, 0, size_);
}

void Optimizer::begin_step(double lr) {
  if (!finite_non_negative(lr)) {
    throw std::invalid_argument("optimizer: lr must be finite and >= 0, got " + std::to_string(lr));
  }
  ++steps_;
  lr_ = lr;
  if (kind_ != OptimizerKind::kSgd) {
    // As torch: Python floats, i.e. doubles, with pow() of the step count.
    double t = static_cast<double>(steps_);
    step_size_ = lr / (1 - std::pow(config_.beta1, t));
    bias_correction2_sqrt_ = std::sqrt(1 - std::pow(config_.beta2, t));
  }
}

void Optimizer::update(std::span<float> params, std::span<const float> grads, size_t offset,
                       size_t count) {
  if (params.size() != size_ || grads.size() != size_) {
    throw std::invalid_argument("optimizer: buffers of " + std::to_string(params.size()) + " and " +
                                std::to_string(grads.size()) + " elements, expected " +
                                std::to_string(size_));
  }
  if (offset > size_ || count > size_ - offset) {
    throw std::invalid_argument("optimizer: update range " + range_text(offset, count) +
                                " outside a buffer of " + std::to_string(size_));
  }
  if (steps_ == 0) throw std::logic_error("optimizer: update() before begin_step()");
  const size_t end = offset + count;
  for (const Segment& s : segments_) {
    size_t lo = std::max(s.begin, offset), hi = std::min(s.end, end);
    if (lo < hi) update_segment(params.data(), grads.data(), lo, hi, s.decay);
  }
}

void Optimizer::update_segment(float* params, const float* grads, size_t begin, size_t end,
                               bool decay) {
  float* p = params + begin;
  const float* g = grads + begin;
  const size_t n = end - begin;
  const bool decays = decay && config_.weight_decay != 0;
  // Decoupled decay first, as AdamW; the rest then sees no decay term.
  if (decays && decoupled_) scale(p, n, static_cast<float>(1 - lr_ * config_.weight_decay));
  const bool coupled = decays && !decoupled_;
  const auto wd = static_cast<float>(config_.weight_decay);
  const auto neg_lr = static_cast<float>(-lr_);

  if (kind_ == OptimizerKind::kSgd) {
    const auto mu = static_cast<float>(config_.momentum);
    float* v = first_.data() + begin;
    if (first_.empty()) {
      coupled ? sgd_plain<true>(p, g, n, wd, neg_lr) : sgd_plain<false>(p, g, n, wd, neg_lr);
    } else if (rule_ == MomentumRule::kPyTorch) {
      if (config_.nesterov) {
        coupled ? sgd_pytorch<true, true>(p, g, v, n, wd, mu, neg_lr)
                : sgd_pytorch<false, true>(p, g, v, n, wd, mu, neg_lr);
      } else {
        coupled ? sgd_pytorch<true, false>(p, g, v, n, wd, mu, neg_lr)
                : sgd_pytorch<false, false>(p, g, v, n, wd, mu, neg_lr);
      }
    } else {
      if (config_.nesterov) {
        coupled ? sgd_paper<true, true>(p, g, v, n, wd, mu, neg_lr)
                : sgd_paper<false, true>(p, g, v, n, wd, mu, neg_lr);
      } else {
        coupled ? sgd_paper<true, false>(p, g, v, n, wd, mu, neg_lr)
                : sgd_paper<false, false>(p, g, v, n, wd, mu, neg_lr);
      }
    }
    return;
  }
  float* m = first_.data() + begin;
  float* v = second_.data() + begin;
  const auto beta1 = static_cast<float>(config_.beta1);
  const auto one_minus_beta1 = static_cast<float>(1 - config_.beta1);
  const auto beta2 = static_cast<float>(config_.beta2);
  const auto one_minus_beta2 = static_cast<float>(1 - config_.beta2);
  const auto bc2 = static_cast<float>(bias_correction2_sqrt_);
  const auto eps = static_cast<float>(config_.eps);
  const auto neg_step = static_cast<float>(-step_size_);
  if (coupled) {
    adam<true>(p, g, m, v, n, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2, eps,
               neg_step);
  } else {
    adam<false>(p, g, m, v, n, wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2, eps,
                neg_step);
  }
}

std::vector<StateArray> Optimizer::state() {
  std::vector<StateArray> arrays;
  if (kind_ == OptimizerKind::kSgd) {
    if (!first_.empty()) {
      arrays.push_back({rule_ == MomentumRule::kPyTorch ? "momentum" : "velocity", first_});
    }
  } else {
    arrays.push_back({"adam_m", first_});
    arrays.push_back({"adam_v", second_});
  }
  return arrays;
}

void Optimizer::load_state(std::string_view name, std::span<const float> values) {
  for (StateArray& a : state()) {
    if (a.name != name) continue;
    if (values.size() != a.values.size()) {
      throw std::invalid_argument("optimizer: state '" + a.name + "' has " +
                                  std::to_string(values.size()) + " elements, expected " +
                                  std::to_string(a.values.size()));
    }
    std::copy(values.begin(), values.end(), a.values.begin());
    return;
  }
  throw std::invalid_argument("optimizer: no state '" + std::string(name) + "' for " +
                              config_.name + " with momentum rule " + config_.momentum_rule);
}

void Optimizer::set_steps(int64_t steps) {
  if (steps < 0) throw std::invalid_argument("optimizer: steps < 0: " + std::to_string(steps));
  steps_ = steps;
}

double grad_norm(std::span<const float> grads) {
  // Four partial sums: independent chains the compiler can keep in flight, in a fixed order so
  // that every rank gets the same bits.
  double s[4] = {0, 0, 0, 0};
  const float* g = grads.data();
  const size_t n = grads.size(), n4 = n - n % 4;
  for (size_t i = 0; i < n4; i += 4) {
    for (size_t k = 0; k < 4; ++k) s[k] += static_cast<double>(g[i + k]) * g[i + k];
  }
  for (size_t i = n4; i < n; ++i) s[0] += static_cast<double>(g[i]) * g[i];
  return std::sqrt((s[0] + s[1]) + (s[2] + s[3]));
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
  scale(grads.data(), grads.size(), static_cast<float>(factor));
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
