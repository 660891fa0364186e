// Learning-rate schedules as functions of the optimizer step, each equal to a torch 1.13
// scheduler: constant, step (StepLR), multistep (MultiStepLR), cosine (CosineAnnealingLR), poly
// (PolynomialLR, with an end value; You et al.'s large-batch schedule with power 2) and the
// AlexNet paper's "divide by 10 when the validation error stops improving" (ReduceLROnPlateau),
// any of them after an optional linear warmup (LinearLR, then the schedule, under SequentialLR).
//
// lr_at(t) is the lr for optimizer step t, counted from 0: torch's lr after t scheduler.step()
// calls when the scheduler is stepped once per iteration. Epoch-based schedules (step,
// multistep) change the lr at the first step of an epoch, t = epoch * steps_per_epoch, as torch
// does when stepped once per epoch.
//
// Warmup for W steps, exactly torch's
//   SequentialLR([LinearLR(start_factor=s, end_factor=1, total_iters=W), main], milestones=[W])
// with both stepped per iteration:
//   t < W:  lr = base * (s + (1 - s) * t / W)
//   t >= W: lr = main(t - W): the main schedule starts from its beginning after warmup, so its
//           epochs, milestones and cosine are all shifted by W steps (a milestone at epoch 30
//           lands on step W + 30 * steps_per_epoch), and cosine's T_max and poly's
//           total_iters are total_steps - W.
// The plateau schedule has no clock: during warmup its lr is scaled by the warmup factor, which
// is the same thing as long as no reduction happens during warmup.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace alexnet::trainer {

enum class LrScheduleKind { kConstant, kStep, kMultiStep, kCosine, kPoly, kPlateau };

// "constant" | "step" | "multistep" | "cosine" | "poly" | "plateau"; throws std::invalid_argument
// (one line, naming the accepted values) otherwise.
LrScheduleKind parse_lr_schedule_kind(const std::string& name);

// "30,60,80" -> {30, 60, 80}; throws std::invalid_argument (one line) unless the list is
// non-empty, comma-separated, and strictly increasing non-negative integers.
std::vector<int64_t> parse_milestones(const std::string& text);

struct LrScheduleConfig {
  std::string name = "constant";  // constant | step | multistep | cosine | poly | plateau
  double base_lr = 0.01;
  int64_t steps_per_epoch = 1;  // step and multistep count epochs

  // step: lr = base * gamma^floor(epoch / step_epochs). multistep: lr = base * gamma^(number of
  // milestones <= epoch).
  double gamma = 0.1;
  int64_t step_epochs = 30;
  std::vector<int64_t> milestones = {};  // epochs, strictly increasing

  // cosine: from base down to min_lr at step total_steps (the whole run, warmup included), as
  // CosineAnnealingLR(T_max = total_steps - warmup_steps, eta_min = min_lr); min_lr from then on
  // (torch's cosine would rise again: a run never gets there). plateau: the lowest lr.
  int64_t total_steps = 0;
  double min_lr = 0;
  // poly: min_lr + (base - min_lr) * (1 - t / T)^poly_power for t < T = total_steps -
  // warmup_steps, min_lr from then on; with min_lr 0, torch's PolynomialLR(total_iters = T,
  // power) (TensorFlow's polynomial_decay with end_learning_rate = min_lr).
  double poly_power = 2;

  // Linear warmup; 0 steps: none. torch's LinearLR defaults to start_factor 1/3.
  int64_t warmup_steps = 0;
  double warmup_start_factor = 1.0 / 3;

  // plateau: ReduceLROnPlateau(mode='min', factor, patience, threshold, threshold_mode='rel',
  // cooldown, min_lr, eps=1e-8). A report is better when metric < best * (1 - threshold); after
  // more than `patience` reports in a row that are not, lr = max(lr * factor, min_lr).
  double plateau_factor = 0.1;
  int64_t plateau_patience = 10;
  double plateau_threshold = 1e-4;
  int64_t plateau_cooldown = 0;
};

// Throws std::invalid_argument (one line) for an unknown name or a value out of range.
void validate(const LrScheduleConfig& config);

class LrSchedule {
 public:
  // What report() changes; for a checkpoint. Only the plateau schedule has any: the others are
  // pure functions of the step.
  struct State {
    double lr = 0;                 // the plateau's current lr (before warmup scaling)
    double best = 0;               // best metric so far; +inf before the first report
    int64_t num_bad_reports = 0;   // torch's num_bad_epochs
    int64_t cooldown_counter = 0;  // reports left in cooldown
    int64_t reports = 0;           // report() calls so far (torch's last_epoch)
  };

  explicit LrSchedule(const LrScheduleConfig& config);  // validates

  double lr_at(int64_t step) const;

  // A validation metric (lower is better), once per validation. Returns whether the lr was cut.
  // A no-op returning false for the schedules that do not depend on it. NaN counts as no
  // improvement, as in torch.
  bool report(double metric);

  const State& state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

  const LrScheduleConfig& config() const { return config_; }
  LrScheduleKind kind() const { return kind_; }

 private:
  double main_lr(int64_t step) const;  // the schedule after warmup, on its own clock

  LrScheduleConfig config_;
  LrScheduleKind kind_;
  State state_;
};

}  // namespace alexnet::trainer
