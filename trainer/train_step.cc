// TrainStep: forward, backward into gradient buckets, bucket-by-bucket updates.
#include "trainer/train_step.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>
#include <string>

namespace alexnet::trainer {

std::vector<comm::Bucket> backward_spans(const ModelSpec& spec) {
  std::vector<comm::Bucket> spans;
  for (auto l = spec.layers.rbegin(); l != spec.layers.rend(); ++l) {
    int64_t begin = -1, end = -1;
    for (const ParamSpec& p : l->params) {
      if (p.is_buffer) continue;
      if (begin < 0) begin = p.offset;
      end = p.offset + p.numel();
    }
    if (begin >= 0) {
      spans.push_back({static_cast<size_t>(begin), static_cast<size_t>(end - begin)});
    }
  }
  return spans;
}

GradientUpdate decide_gradient_update(double sum_of_squares, double loss_scale,
                                      double clip_grad_norm, LossScaler* scaler) {
  GradientUpdate update;
  if (scaler != nullptr) update.skip = !scaler->update(std::isfinite(sum_of_squares));
  if (update.skip) return update;
  update.gradient_factor = 1 / loss_scale;
  if (clip_grad_norm > 0) {
    update.gradient_factor *=
        clip_coefficient(std::sqrt(sum_of_squares) / loss_scale, clip_grad_norm);
  }
  return update;
}

TrainStep::TrainStep(Model& model, Optimizer& optimizer, comm::Communicator& comm,
                     const TrainStepConfig& config)
    : model_(model),
      optimizer_(optimizer),
      config_(config),
      buckets_(comm, model.grads(), backward_spans(model.spec()),
               static_cast<size_t>(std::max(1.0, config.bucket_mb * 1e6 / 4)), config.wire,
               config.overlap),
      ready_([this](int64_t offset, int64_t count) {
        buckets_.ready(static_cast<size_t>(offset), static_cast<size_t>(count));
      }),
      scaler_(config.loss_scaler) {}

void TrainStep::set_profiler(Profiler* profiler) {
  profiler_ = profiler;
  model_.set_profiler(profiler);
  bucket_names_.clear();
  for (size_t i = 0; i < buckets_.buckets().size(); ++i) {
    bucket_names_.push_back("bucket " + std::to_string(i) + " (" +
                            std::to_string(buckets_.buckets()[i].count) + " floats)");
  }
  if (profiler == nullptr) {
    buckets_.set_observer({});
    return;
  }
  buckets_.set_observer(
      [this](size_t bucket, Profiler::Clock::time_point start, Profiler::Clock::time_point end) {
        profiler_->record(bucket_names_[bucket].c_str(), "all-reduce", 1, start, end);
      });
}

LossResult TrainStep::run(const float* input, const int32_t* labels, const DropoutKey& key,
                          double lr) {
  using Clock = Profiler::Clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  const auto t0 = Clock::now();
  const double loss_scale = config_.loss_scaling ? scaler_.scale() : 1;
  model_.forward(input, true, key);
  LossResult loss = model_.loss(labels, true, static_cast<float>(loss_scale));
  const auto t1 = Clock::now();
  buckets_.begin_step();
  model_.backward(ready_);
  const auto t2 = Clock::now();
  const auto n = static_cast<size_t>(model_.spec().param_floats);
  std::span<float> params(model_.params(), n), grads(model_.grads(), n);
  skipped_ = false;
  if (config_.clip_grad_norm > 0 || config_.loss_scaling) {
    // The norm and the overflow check need every averaged gradient first. Backend memory: the
    // sum runs where the gradients are (the same arithmetic as grad_norm() on the host).
    buckets_.wait_all();
    Backend& backend = model_.backend();
    const GradientUpdate update =
        decide_gradient_update(backend.sum_of_squares(grads.data(), n), loss_scale,
                               config_.clip_grad_norm, config_.loss_scaling ? &scaler_ : nullptr);
    skipped_ = update.skip;
    if (!skipped_) {
      if (update.gradient_factor != 1) {
        backend.scale(grads.data(), n, static_cast<float>(update.gradient_factor));
      }
      optimizer_.begin_step(lr);
      optimizer_.update(params, grads, 0, n);
    }
  } else {
    optimizer_.begin_step(lr);
    // Bucket i's update runs while the communication thread reduces bucket i + 1.
    for (size_t i = 0; i < buckets_.buckets().size(); ++i) {
      buckets_.wait(i);
      const comm::Bucket& b = buckets_.buckets()[i];
      optimizer_.update(params, grads, b.offset, b.count);
    }
  }
  const auto t3 = Clock::now();
  step_times_.forward = seconds(t0, t1);
  step_times_.backward = seconds(t1, t2);
  step_times_.comm_wait = buckets_.times().exposed_seconds;
  step_times_.optimizer = std::max(0.0, seconds(t2, t3) - step_times_.comm_wait);
  if (profiler_ != nullptr) profiler_->record("optimizer and waits", "step", 0, t2, t3);
  return loss;
}

}  // namespace alexnet::trainer
