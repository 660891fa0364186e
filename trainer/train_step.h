// One data-parallel training step of a replica: forward, loss, backward with each finished
// layer's gradients handed to the bucketed all-reduce (comm/gradient_buckets.h), then the
// optimizer update of each bucket as soon as its average arrives. The same code runs for one
// rank (the all-reduce is then a no-op) and for many. Nothing is allocated per step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/gradient_buckets.h"
#include "trainer/backend.h"
#include "trainer/loss_scaler.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/profiler.h"

namespace alexnet::trainer {

struct TrainStepConfig {
  double bucket_mb = 25;  // gradient bucket size (MB of fp32)
  comm::WireType wire = comm::WireType::kFloat32;
  bool overlap = true;        // all-reduce during backward
  double clip_grad_norm = 0;  // global norm after averaging; 0: off
  // fp16: dynamic loss scaling (trainer/loss_scaler.h); off for fp32 and bf16, whose range
  // needs none.
  bool loss_scaling = false;
  LossScalerConfig loss_scaler;
};

// Where one step's time went, in seconds (the caller adds the data wait).
struct StepTimes {
  double forward = 0;    // forward and loss
  double backward = 0;   // backward, the all-reduce running alongside
  double comm_wait = 0;  // blocked on bucket all-reduces after backward: communication not hidden
  double optimizer = 0;  // the updates themselves
};

// What a step does with its averaged gradients once their sum of squares is known (the same
// decision on one device and on several): skip the update (fp16: they overflowed; the scaler
// halves its scale), or multiply the gradients by `gradient_factor` (1 / loss scale, times the
// clipping coefficient for clip_grad_norm > 0) and update. `scaler`: null without loss scaling.
struct GradientUpdate {
  bool skip = false;
  double gradient_factor = 1;
};
GradientUpdate decide_gradient_update(double sum_of_squares, double loss_scale,
                                      double clip_grad_norm, LossScaler* scaler);

class TrainStep {
 public:
  // The optimizer must have been made over the model's backend; all objects must outlive the
  // step.
  TrainStep(Model& model, Optimizer& optimizer, comm::Communicator& comm,
            const TrainStepConfig& config);

  // input and labels in backend memory. Returns this rank's loss and accuracy counts.
  LossResult run(const float* input, const int32_t* labels, const DropoutKey& key, double lr);

  comm::BucketTimes times() const { return buckets_.times(); }
  const StepTimes& step_times() const { return step_times_; }

  // Records layers, buckets and the optimizer into `profiler` while it is enabled.
  void set_profiler(Profiler* profiler);
  const std::vector<comm::Bucket>& buckets() const { return buckets_.buckets(); }

  // Loss scaling: whether the last run() skipped its update (its gradients overflowed), and the
  // scaler (its scale for the next step; restore() on resume).
  bool last_step_skipped() const { return skipped_; }
  LossScaler& loss_scaler() { return scaler_; }

 private:
  Model& model_;
  Optimizer& optimizer_;
  const TrainStepConfig config_;
  comm::GradientBuckets buckets_;
  std::function<void(int64_t, int64_t)> ready_;
  StepTimes step_times_;
  LossScaler scaler_;
  bool skipped_ = false;
  Profiler* profiler_ = nullptr;
  std::vector<std::string> bucket_names_;  // for the profiler's events
};

// Every layer's parameter span, last layer first: what backward reports through ready().
std::vector<comm::Bucket> backward_spans(const ModelSpec& spec);

}  // namespace alexnet::trainer
