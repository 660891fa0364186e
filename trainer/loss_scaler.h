// Dynamic loss scaling for fp16 training (as torch.cuda.amp.GradScaler): the loss gradient is
// multiplied by a scale so that small gradients survive fp16's narrow range; the gradients are
// divided by it before the update. A step whose gradients overflowed (Inf or NaN anywhere) is
// skipped and the scale halved; after `growth_interval` good steps in a row it doubles.
#pragma once

#include <cstdint>

namespace alexnet::trainer {

struct LossScalerConfig {
  double initial_scale = 65536;  // 2^16, GradScaler's default
  double growth_factor = 2;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  // Throws std::invalid_argument (one line) for a scale <= 0, growth <= 1, backoff outside
  // (0, 1) or an interval < 1.
  explicit LossScaler(const LossScalerConfig& config = {});

  double scale() const { return scale_; }
  // After the step's gradients are known: whether they were all finite. Returns whether the
  // optimizer may take the step (false: skip it), and adjusts the scale.
  bool update(bool gradients_finite);

  int64_t skipped_steps() const { return skipped_; }
  // Checkpoints carry the scale and the count of good steps since the last change.
  int64_t good_steps() const { return good_steps_; }
  void restore(double scale, int64_t good_steps);

 private:
  LossScalerConfig config_;
  double scale_;
  int64_t good_steps_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace alexnet::trainer
