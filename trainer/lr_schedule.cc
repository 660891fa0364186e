// Closed forms of torch 1.13's schedulers (PolynomialLR's too), and ReduceLROnPlateau's state
// machine.
#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace alexnet::trainer {

LrScheduleKind parse_lr_schedule_kind(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "step") return LrScheduleKind::kStep;
  if (name == "multistep") return LrScheduleKind::kMultiStep;
  if (name == "cosine") return LrScheduleKind::kCosine;
  if (name == "poly") return LrScheduleKind::kPoly;
  if (name == "plateau") return LrScheduleKind::kPlateau;
  throw std::invalid_argument("unknown lr schedule '" + name +
                              "' (expected constant, step, multistep, cosine, poly or plateau)");
}

std::vector<int64_t> parse_milestones(const std::string& text) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("lr milestones '" + text + "': " + why);
  };
  std::vector<int64_t> milestones;
  size_t begin = 0;
  while (true) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(begin, end - begin);
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) {
      fail("'" + item + "' is not a non-negative integer");
    }
    errno = 0;
    int64_t value = std::strtoll(item.c_str(), nullptr, 10);
    if (errno == ERANGE) fail("'" + item + "' is out of range");
    if (!milestones.empty() && value <= milestones.back()) fail("not strictly increasing");
    milestones.push_back(value);
    if (end == text.size()) break;
    begin = end + 1;
  }
  return milestones;
}

void validate(const LrScheduleConfig& c) {
  LrScheduleKind kind = parse_lr_schedule_kind(c.name);
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("lr schedule " + c.name + ": " + what);
  };
  auto text = [](double x) { return std::to_string(x); };
  if (!(std::isfinite(c.base_lr) && c.base_lr >= 0)) {
    fail("base_lr must be >= 0, got " + text(c.base_lr));
  }
  if (c.steps_per_epoch < 1) {
    fail("steps_per_epoch must be >= 1, got " + std::to_string(c.steps_per_epoch));
  }
  if (c.warmup_steps < 0) fail("warmup_steps must be >= 0, got " + std::to_string(c.warmup_steps));
  // torch's LinearLR asks for (0, 1]; 0 would make the first step a no-op.
  if (c.warmup_steps > 0 && !(c.warmup_start_factor > 0 && c.warmup_start_factor <= 1)) {
    fail("warmup_start_factor must be in (0, 1], got " + text(c.warmup_start_factor));
  }
  if (!(std::isfinite(c.min_lr) && c.min_lr >= 0)) {
    fail("min_lr must be >= 0, got " + text(c.min_lr));
  }
  switch (kind) {
    case LrScheduleKind::kConstant:
      break;
    case LrScheduleKind::kStep:
      if (c.step_epochs < 1) fail("step_epochs must be >= 1, got " + std::to_string(c.step_epochs));
      [[fallthrough]];
    case LrScheduleKind::kMultiStep:
      if (!(c.gamma > 0 && c.gamma <= 1)) fail("gamma must be in (0, 1], got " + text(c.gamma));
      if (kind == LrScheduleKind::kMultiStep) {
        if (c.milestones.empty()) fail("needs milestones");
        for (size_t i = 0; i < c.milestones.size(); ++i) {
          if (c.milestones[i] < 0 || (i > 0 && c.milestones[i] <= c.milestones[i - 1])) {
            fail("milestones must be strictly increasing epochs >= 0");
          }
        }
      }
      break;
    case LrScheduleKind::kPoly:
      if (!(std::isfinite(c.poly_power) && c.poly_power > 0)) {
        fail("poly_power must be > 0, got " + text(c.poly_power));
      }
      [[fallthrough]];
    case LrScheduleKind::kCosine:
      if (c.total_steps <= c.warmup_steps) {
        fail("total_steps (" + std::to_string(c.total_steps) + ") must exceed warmup_steps (" +
             std::to_string(c.warmup_steps) + ")");
      }
      if (c.min_lr > c.base_lr) fail("min_lr above base_lr");
      break;
    case LrScheduleKind::kPlateau:
      if (!(c.plateau_factor > 0 && c.plateau_factor < 1)) {
        fail("plateau_factor must be in (0, 1), got " + text(c.plateau_factor));
      }
      if (c.plateau_patience < 0) fail("plateau_patience must be >= 0");
      if (!(c.plateau_threshold >= 0 && c.plateau_threshold < 1)) {
        fail("plateau_threshold must be in [0, 1), got " + text(c.plateau_threshold));
      }
      if (c.plateau_cooldown < 0) fail("plateau_cooldown must be >= 0");
      break;
  }
}

LrSchedule::LrSchedule(const LrScheduleConfig& config)
    : config_(config), kind_(parse_lr_schedule_kind(config.name)) {
  validate(config);
  state_.lr = config.base_lr;
  state_.best = std::numeric_limits<double>::infinity();
}

double LrSchedule::lr_at(int64_t step) const {
  if (step < 0) throw std::invalid_argument("lr schedule: step " + std::to_string(step) + " < 0");
  const int64_t warmup = config_.warmup_steps;
  if (step < warmup) {
    // LinearLR's closed form; torch steps a recursive form, equal to ~1e-16.
    double s = config_.warmup_start_factor;
    double factor = s + (1 - s) * static_cast<double>(step) / static_cast<double>(warmup);
    return (kind_ == LrScheduleKind::kPlateau ? state_.lr : config_.base_lr) * factor;
  }
  return main_lr(step - warmup);
}

double LrSchedule::main_lr(int64_t step) const {
  const double base = config_.base_lr;
  switch (kind_) {
    case LrScheduleKind::kConstant:
      return base;
    case LrScheduleKind::kStep: {
      int64_t epoch = step / config_.steps_per_epoch;
      return base * std::pow(config_.gamma, static_cast<double>(epoch / config_.step_epochs));
    }
    case LrScheduleKind::kMultiStep: {
      int64_t epoch = step / config_.steps_per_epoch;
      // torch's bisect_right: a milestone counts from its own epoch on.
      auto passed = std::upper_bound(config_.milestones.begin(), config_.milestones.end(), epoch) -
                    config_.milestones.begin();
      return base * std::pow(config_.gamma, static_cast<double>(passed));
    }
    case LrScheduleKind::kCosine: {
      const int64_t t_max = config_.total_steps - config_.warmup_steps;
      if (step >= t_max) return config_.min_lr;
      double phase = std::numbers::pi * static_cast<double>(step) / static_cast<double>(t_max);
      return config_.min_lr + (base - config_.min_lr) * (1 + std::cos(phase)) / 2;
    }
    case LrScheduleKind::kPoly: {
      const int64_t t_max = config_.total_steps - config_.warmup_steps;
      if (step >= t_max) return config_.min_lr;
      double left = 1 - static_cast<double>(step) / static_cast<double>(t_max);
      return config_.min_lr + (base - config_.min_lr) * std::pow(left, config_.poly_power);
    }
    case LrScheduleKind::kPlateau:
      return state_.lr;
  }
  return base;  // unreachable: every kind returns above
}

bool LrSchedule::report(double metric) {
  if (kind_ != LrScheduleKind::kPlateau) return false;
  ++state_.reports;
  // torch: mode 'min', threshold_mode 'rel'. NaN compares false: a bad report.
  if (metric < state_.best * (1 - config_.plateau_threshold)) {
    state_.best = metric;
    state_.num_bad_reports = 0;
  } else {
    ++state_.num_bad_reports;
  }
  if (state_.cooldown_counter > 0) {
    --state_.cooldown_counter;
    state_.num_bad_reports = 0;  // bad reports in cooldown do not count
  }
  if (state_.num_bad_reports <= config_.plateau_patience) return false;
  state_.cooldown_counter = config_.plateau_cooldown;
  state_.num_bad_reports = 0;
  double lr = std::max(state_.lr * config_.plateau_factor, config_.min_lr);
  // torch's eps = 1e-8: cuts smaller than that are not made.
  if (state_.lr - lr <= 1e-8) return false;
  state_.lr = lr;
  return true;
}

}  // namespace alexnet::trainer
