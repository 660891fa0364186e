// TrainStep: forward, backward into gradient buckets, bucket-by-bucket updates.
#include "trainer/train_step.h"

#include <algorithm>
#include <cmath>
#include <span>

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
      }) {}

LossResult TrainStep::run(const float* input, const int32_t* labels, const DropoutKey& key,
                          double lr) {
  model_.forward(input, true, key);
  LossResult loss = model_.loss(labels, true);
  buckets_.begin_step();
  model_.backward(ready_);
  const auto n = static_cast<size_t>(model_.spec().param_floats);
  std::span<float> params(model_.params(), n), grads(model_.grads(), n);
  optimizer_.begin_step(lr);
  if (config_.clip_grad_norm > 0) {
    // The norm needs every averaged gradient first.
    buckets_.wait_all();
    scale_grads(grads, clip_coefficient(grad_norm(grads), config_.clip_grad_norm));
    optimizer_.update(params, grads, 0, n);
    return loss;
  }
  // Bucket i's update runs while the communication thread reduces bucket i + 1.
  for (size_t i = 0; i < buckets_.buckets().size(); ++i) {
    buckets_.wait(i);
    const comm::Bucket& b = buckets_.buckets()[i];
    optimizer_.update(params, grads, b.offset, b.count);
  }
  return loss;
}

}  // namespace alexnet::trainer
