// LossScaler: GradScaler's schedule.
#include "trainer/loss_scaler.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace alexnet::trainer {

LossScaler::LossScaler(const LossScalerConfig& config)
    : config_(config), scale_(config.initial_scale) {
  auto fail = [](const std::string& what, double value) {
    throw std::invalid_argument("loss scaler: " + what + ", got " + std::to_string(value));
  };
  if (!(std::isfinite(config.initial_scale) && config.initial_scale > 0)) {
    fail("initial scale must be > 0", config.initial_scale);
  }
  if (!(config.growth_factor > 1)) fail("growth factor must be > 1", config.growth_factor);
  if (!(config.backoff_factor > 0 && config.backoff_factor < 1)) {
    fail("backoff factor must be in (0, 1)", config.backoff_factor);
  }
  if (config.growth_interval < 1) {
    fail("growth interval must be >= 1", static_cast<double>(config.growth_interval));
  }
}

bool LossScaler::update(bool gradients_finite) {
  if (!gradients_finite) {
    scale_ *= config_.backoff_factor;
    good_steps_ = 0;
    ++skipped_;
    return false;
  }
  // >=: a restored count may exceed this run's interval (resumed with a shorter one).
  if (++good_steps_ >= config_.growth_interval) {
    // Growth stops where the scale itself would overflow fp32 (GradScaler's behaviour).
    const double grown = scale_ * config_.growth_factor;
    if (grown < 3.4e38) scale_ = grown;
    good_steps_ = 0;
  }
  return true;
}

void LossScaler::restore(double scale, int64_t good_steps) {
  if (!(std::isfinite(scale) && scale > 0) || good_steps < 0) {
    throw std::invalid_argument("loss scaler: cannot restore scale " + std::to_string(scale) +
                                " with " + std::to_string(good_steps) + " good steps");
  }
  scale_ = scale;
  good_steps_ = good_steps;
}

}  // namespace alexnet::trainer
