// SGD (PyTorch and paper momentum), Adam and AdamW over flat buffers, in torch 1.13's float32
// operation order; LARS and LAMB layer by layer; gradient-norm clipping.
#include "trainer/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace alexnet::trainer {
namespace {

// Each loop is branch-free inside (the choices are template parameters) over the element
// functions of trainer/optimizer_math.h, so that the compiler vectorizes it.

// p *= factor (AdamW and decoupled SGD: param.mul_(1 - lr * weight_decay)).
void scale(float* __restrict__ p, size_t n, float factor) {
  for (size_t i = 0; i < n; ++i) p[i] *= factor;
}

template <bool kDecay>
void sgd_plain(float* __restrict__ p, const float* __restrict__ g, size_t n,
               const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i) sgd_plain_element<kDecay>(p[i], g[i], c);
}

template <bool kDecay, bool kNesterov>
void sgd_pytorch(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ v,
                 size_t n, const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i) sgd_pytorch_element<kDecay, kNesterov>(p[i], g[i], v[i], c);
}

template <bool kDecay, bool kNesterov>
void sgd_paper(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ v, size_t n,
               const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i) sgd_paper_element<kDecay, kNesterov>(p[i], g[i], v[i], c);
}

// GCC vectorizes this loop only under -fno-math-errno: otherwise sqrt keeps a branch to set
// errno for negative inputs (which v never holds). SGD, the paper's optimizer, has no sqrt.
template <bool kDecay>
void adam(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
          float* __restrict__ v, size_t n, const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i) adam_element<kDecay>(p[i], g[i], m[i], v[i], c);
}

template <bool kDecay>
void lars(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ v, size_t n,
          const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i) lars_element<kDecay>(p[i], g[i], v[i], c);
}

// LAMB's first pass: the moments, and the sum of r^2 in double (r is not stored: the second pass
// recomputes it from the same floats, so it is the same r). Four partial sums, as sum_of_squares.
template <bool kDecay>
double lamb_moments(const float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                    float* __restrict__ v, size_t n, const UpdateCoefficients& c) {
  double s[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < n; ++i) {
    const double r = lamb_moments_element<kDecay>(p[i], g[i], m[i], v[i], c);
    s[i % 4] += r * r;
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

template <bool kDecay>
void lamb_apply(float* __restrict__ p, const float* __restrict__ m, const float* __restrict__ v,
                size_t n, const UpdateCoefficients& c) {
  for (size_t i = 0; i < n; ++i)
    lamb_apply_element(p[i], lamb_direction<kDecay>(p[i], m[i], v[i], c), c);
}

template <bool kDecay>
void host_update(UpdateRule rule, const UpdateCoefficients& c, float* p, const float* g,
                 float* first, float* second, size_t n) {
  switch (rule) {
    case UpdateRule::kSgdPlain:
      return sgd_plain<kDecay>(p, g, n, c);
    case UpdateRule::kSgdPyTorch:
      return sgd_pytorch<kDecay, false>(p, g, first, n, c);
    case UpdateRule::kSgdPyTorchNesterov:
      return sgd_pytorch<kDecay, true>(p, g, first, n, c);
    case UpdateRule::kSgdPaper:
      return sgd_paper<kDecay, false>(p, g, first, n, c);
    case UpdateRule::kSgdPaperNesterov:
      return sgd_paper<kDecay, true>(p, g, first, n, c);
    case UpdateRule::kAdam:
      return adam<kDecay>(p, g, first, second, n, c);
    case UpdateRule::kLars:
    case UpdateRule::kLambMoments:
    case UpdateRule::kLambApply:
      break;  // layer by layer: Optimizer::update_layer
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
  if (name == "lars") return OptimizerKind::kLars;
  if (name == "lamb") return OptimizerKind::kLamb;
  throw std::invalid_argument("unknown optimizer '" + name +
                              "' (expected sgd, adam, adamw, lars or lamb)");
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
  if (config.decoupled_weight_decay &&
      (kind == OptimizerKind::kLars || kind == OptimizerKind::kLamb)) {
    throw std::invalid_argument("optimizer: decoupled_weight_decay applies to sgd and adam, not " +
                                config.name + " (its decay is part of its trust ratio)");
  }
  if (!(std::isfinite(config.trust_coefficient) && config.trust_coefficient > 0)) {
    fail("trust_coefficient must be > 0", config.trust_coefficient);
  }
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
                     std::vector<DecayRange> decay_ranges, Backend* device)
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
    if (!r.decay && !layers_.empty() && !layers_.back().decay) {
      layers_.back().end = covered;
    } else {
      layers_.push_back({r.offset, covered, r.decay});
    }
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
  if (kind_ != OptimizerKind::kSgd && kind_ != OptimizerKind::kLars) second_.assign(size, 0.0f);
  if (kind_ == OptimizerKind::kSgd) {
    if (!has_momentum) {
      update_rule_ = UpdateRule::kSgdPlain;
    } else if (rule_ == MomentumRule::kPyTorch) {
      update_rule_ = config.nesterov ? UpdateRule::kSgdPyTorchNesterov : UpdateRule::kSgdPyTorch;
    } else {
      update_rule_ = config.nesterov ? UpdateRule::kSgdPaperNesterov : UpdateRule::kSgdPaper;
    }
  } else if (kind_ == OptimizerKind::kLars) {
    update_rule_ = UpdateRule::kLars;
  } else if (kind_ == OptimizerKind::kLamb) {
    update_rule_ = UpdateRule::kLambMoments;
  } else {
    update_rule_ = UpdateRule::kAdam;
  }
  if (device != nullptr && !device->host_memory()) {
    device_ = device;
    device_update_ = device->make_optimizer_update();
    if (!device_update_) {
      throw std::logic_error("optimizer: the " + device->name() +
                             " backend has device memory but no optimizer update");
    }
    auto state_on_device = [&](std::vector<float>& host) -> float* {
      if (host.empty()) return nullptr;
      device_state_.push_back(device->allocate(size * sizeof(float)));
      device->fill_zero(device_state_.back().get(), size * sizeof(float));
      return static_cast<float*>(device_state_.back().get());
    };
    first_device_ = state_on_device(first_);
    second_device_ = state_on_device(second_);
    if (kind_ == OptimizerKind::kLamb) {
      device_state_.push_back(device->allocate(size * sizeof(float)));
      lamb_direction_device_ = static_cast<float*>(device_state_.back().get());
    }
  }
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
  if (kind_ != OptimizerKind::kSgd && kind_ != OptimizerKind::kLars) {
    // As torch: Python floats, i.e. doubles, with pow() of the step count.
    double t = static_cast<double>(steps_);
    bias_correction1_ = 1 - std::pow(config_.beta1, t);
    bias_correction2_ = 1 - std::pow(config_.beta2, t);
    step_size_ = lr / bias_correction1_;
    bias_correction2_sqrt_ = std::sqrt(bias_correction2_);
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
  if (kind_ == OptimizerKind::kLars || kind_ == OptimizerKind::kLamb) {
    for (const Segment& s : layers_) {
      size_t lo = std::max(s.begin, offset), hi = std::min(s.end, end);
      if (lo >= hi) continue;
      if (s.decay && (lo != s.begin || hi != s.end)) {
        throw std::invalid_argument("optimizer: " + config_.name + " needs whole layers for its " +
                                    "norms, but update range " + range_text(offset, count) +
                                    " cuts the layer " + range_text(s.begin, s.end - s.begin));
      }
      update_layer(params.data(), grads.data(), lo, hi, s.decay);
    }
    return;
  }
  for (const Segment& s : segments_) {
    size_t lo = std::max(s.begin, offset), hi = std::min(s.end, end);
    if (lo < hi) update_segment(params.data(), grads.data(), lo, hi, s.decay);
  }
}

UpdateCoefficients Optimizer::coefficients() const {
  UpdateCoefficients c;
  c.wd = static_cast<float>(config_.weight_decay);
  c.mu = static_cast<float>(config_.momentum);
  c.neg_lr = static_cast<float>(-lr_);
  c.beta1 = static_cast<float>(config_.beta1);
  c.one_minus_beta1 = static_cast<float>(1 - config_.beta1);
  c.beta2 = static_cast<float>(config_.beta2);
  c.one_minus_beta2 = static_cast<float>(1 - config_.beta2);
  c.bias_correction2_sqrt = static_cast<float>(bias_correction2_sqrt_);
  c.eps = static_cast<float>(config_.eps);
  c.neg_step_size = static_cast<float>(-step_size_);
  c.bias_correction1 = static_cast<float>(bias_correction1_);
  c.bias_correction2 = static_cast<float>(bias_correction2_);
  return c;
}

void Optimizer::update_segment(float* params, const float* grads, size_t begin, size_t end,
                               bool decay) {
  const size_t n = end - begin;
  const bool decays = decay && config_.weight_decay != 0;
  const bool coupled = decays && !decoupled_;
  UpdateCoefficients c = coefficients();
  // Decoupled decay first, as AdamW; the rest then sees no decay term.
  c.decoupled_factor =
      decays && decoupled_ ? static_cast<float>(1 - lr_ * config_.weight_decay) : 1;
  if (device_ != nullptr) {
    device_update_->update(update_rule_, coupled, c, params + begin, grads + begin,
                           first_device_ != nullptr ? first_device_ + begin : nullptr,
                           second_device_ != nullptr ? second_device_ + begin : nullptr, n);
    return;
  }
  float* p = params + begin;
  if (c.decoupled_factor != 1) scale(p, n, c.decoupled_factor);
  float* first = first_.empty() ? nullptr : first_.data() + begin;
  float* second = second_.empty() ? nullptr : second_.data() + begin;
  coupled ? host_update<true>(update_rule_, c, p, grads + begin, first, second, n)
          : host_update<false>(update_rule_, c, p, grads + begin, first, second, n);
}

void Optimizer::update_layer(float* params, const float* grads, size_t begin, size_t end,
                             bool adaptive) {
  const size_t n = end - begin;
  const bool decays = adaptive && config_.weight_decay != 0;
  const double wd = decays ? config_.weight_decay : 0;
  UpdateCoefficients c = coefficients();
  float* p = params + begin;
  const float* g = grads + begin;
  auto norm = [&](const float* x) {
    return std::sqrt(device_ != nullptr ? device_->sum_of_squares(x, n) : sum_of_squares({x, n}));
  };
  // Ratio 1 where a norm is 0 (and where one is NaN: the step then carries the NaN on, as SGD's).
  auto ratio_or_one = [](double numerator, double denominator, double w_norm, double x_norm) {
    return w_norm > 0 && x_norm > 0 ? numerator / denominator : 1.0;
  };
  if (kind_ == OptimizerKind::kLars) {
    double local_lr = 1;
    if (adaptive) {
      const double w_norm = norm(p), g_norm = norm(g);
      local_lr =
          ratio_or_one(config_.trust_coefficient * w_norm, g_norm + wd * w_norm, w_norm, g_norm);
    }
    c.layer_lr = static_cast<float>(lr_ * local_lr);
    float* v = (device_ != nullptr ? first_device_ : first_.data()) + begin;
    if (device_ != nullptr) {
      device_update_->update(UpdateRule::kLars, decays, c, p, g, v, nullptr, n);
    } else {
      decays ? lars<true>(p, g, v, n, c) : lars<false>(p, g, v, n, c);
    }
    return;
  }
  // LAMB. ||w|| before the update; r's norm from the first pass.
  const double w_norm = adaptive ? norm(p) : 0;
  double r_squares = 0;
  if (device_ != nullptr) {
    float* r = lamb_direction_device_ + begin;
    device_->copy(r, p, n * sizeof(float));  // the kernel reads w there and writes r over it
    device_update_->update(UpdateRule::kLambMoments, decays, c, r, g, first_device_ + begin,
                           second_device_ + begin, n);
    if (adaptive) r_squares = device_->sum_of_squares(r, n);
  } else {
    float* m = first_.data() + begin;
    float* v = second_.data() + begin;
    r_squares =
        decays ? lamb_moments<true>(p, g, m, v, n, c) : lamb_moments<false>(p, g, m, v, n, c);
  }
  const double r_norm = std::sqrt(r_squares);
  const double ratio = adaptive ? ratio_or_one(w_norm, r_norm, w_norm, r_norm) : 1.0;
  c.neg_layer_lr = static_cast<float>(-lr_ * ratio);
  if (device_ != nullptr) {
    device_update_->update(UpdateRule::kLambApply, false, c, p, lamb_direction_device_ + begin,
                           nullptr, nullptr, n);
  } else {
    const float* m = first_.data() + begin;
    const float* v = second_.data() + begin;
    decays ? lamb_apply<true>(p, m, v, n, c) : lamb_apply<false>(p, m, v, n, c);
  }
}

std::vector<StateArray> Optimizer::state() {
  // Device state: the host copies are refreshed for the caller (a checkpoint).
  if (device_ != nullptr) {
    if (first_device_ != nullptr) device_->copy_to_host(first_.data(), first_device_, size_ * 4);
    if (second_device_ != nullptr) device_->copy_to_host(second_.data(), second_device_, size_ * 4);
  }
  return host_arrays();
}

std::vector<StateArray> Optimizer::host_arrays() {
  std::vector<StateArray> arrays;
  if (kind_ == OptimizerKind::kSgd) {
    if (!first_.empty()) {
      arrays.push_back({rule_ == MomentumRule::kPyTorch ? "momentum" : "velocity", first_});
    }
  } else if (kind_ == OptimizerKind::kLars) {
    arrays.push_back({"lars_velocity", first_});
  } else if (kind_ == OptimizerKind::kLamb) {
    arrays.push_back({"lamb_m", first_});
    arrays.push_back({"lamb_v", second_});
  } else {
    arrays.push_back({"adam_m", first_});
    arrays.push_back({"adam_v", second_});
  }
  return arrays;
}

void Optimizer::load_state(std::string_view name, std::span<const float> values) {
  // Not state(): refreshing the host copies from the device would overwrite `values` when they
  // are those copies (a caller that received state()'s arrays, e.g. by broadcast, and loads them).
  for (StateArray& a : host_arrays()) {
    if (a.name != name) continue;
    if (values.size() != a.values.size()) {
      throw std::invalid_argument("optimizer: state '" + a.name + "' has " +
                                  std::to_string(values.size()) + " elements, expected " +
                                  std::to_string(a.values.size()));
    }
    if (values.data() != a.values.data()) {
      std::copy(values.begin(), values.end(), a.values.begin());
    }
    if (device_ != nullptr) {
      float* on_device = a.values.data() == first_.data() ? first_device_ : second_device_;
      device_->copy_to_device(on_device, a.values.data(), size_ * 4);
    }
    return;
  }
  throw std::invalid_argument("optimizer: no state '" + std::string(name) + "' for " +
                              config_.name + " with momentum rule " + config_.momentum_rule);
}

void Optimizer::set_steps(int64_t steps) {
  if (steps < 0) throw std::invalid_argument("optimizer: steps < 0: " + std::to_string(steps));
  steps_ = steps;
}

}  // namespace alexnet::trainer
