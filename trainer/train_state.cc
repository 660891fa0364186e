// TrainState: the replicas, their optimizers, the schedule and the position, and every copy of
// them between host, devices, ranks and replicas.
#include "trainer/train_state.h"

#include <algorithm>
#include <stdexcept>

#include "trainer/init_from.h"
#include "trainer/weights_file.h"

namespace alexnet::trainer {
namespace {

// Weight decay over the flat parameter buffer: each parameter as its spec says, alignment
// padding between parameters without.
std::vector<DecayRange> decay_ranges(const ModelSpec& spec) {
  std::vector<DecayRange> ranges;
  size_t covered = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      if (p.is_buffer) continue;
      const auto offset = static_cast<size_t>(p.offset);
      if (offset > covered) ranges.push_back({covered, offset - covered, false});  // padding
      ranges.push_back({offset, static_cast<size_t>(p.numel()), p.weight_decay});
      covered = offset + static_cast<size_t>(p.numel());
    }
  }
  const auto size = static_cast<size_t>(spec.param_floats);
  if (covered < size) ranges.push_back({covered, size - covered, false});
  return ranges;
}

}  // namespace

TrainState::TrainState(const ModelSpec& spec, std::vector<std::unique_ptr<Backend>> backends,
                       const ReplicaConfig& config, std::unique_ptr<LrSchedule> schedule)
    : spec_(spec),
      backends_(std::move(backends)),
      schedule_(std::move(schedule)),
      params_(static_cast<size_t>(spec.param_floats), 0.0f),
      buffers_(static_cast<size_t>(std::max<int64_t>(spec.buffer_floats, 1)), 0.0f) {
  if (backends_.empty() || !schedule_) {
    throw std::invalid_argument("TrainState: no backend or no schedule");
  }
  for (auto& b : backends_) {
    b->make_current();  // the model's memory and the optimizer's state on b's device
    models_.push_back(std::make_unique<Model>(spec_, *b, config.batch, config.label_smoothing));
    models_.back()->set_dropout(config.dropout);
    optimizers_.push_back(std::make_unique<Optimizer>(
        config.optimizer, static_cast<size_t>(spec_.param_floats), decay_ranges(spec_), b.get()));
  }
  backends_[0]->make_current();
}

std::vector<Replica> TrainState::replicas() {
  std::vector<Replica> all;
  for (size_t g = 0; g < backends_.size(); ++g) {
    all.push_back({backends_[g].get(), models_[g].get(), optimizers_[g].get()});
  }
  return all;
}

void TrainState::initialize(uint64_t seed) {
  initialize_parameters(spec_, seed, params_.data(), buffers_.data());
}

std::string TrainState::init_from(const std::string& path, const std::vector<std::string>& skip) {
  return trainer::init_from(path, skip, spec_, params_, buffers_);
}

void TrainState::load(const std::string& path, int64_t epoch_samples) {
  position_ =
      load_checkpoint(path, spec_, params_, buffers_, optimizer(), *schedule_, epoch_samples);
}

void TrainState::broadcast(comm::Communicator& comm, int root) {
  comm.broadcast(params_.data(), param_bytes(), root);
  comm.broadcast(buffers_.data(), buffers_.size() * sizeof(float), root);
  for (const StateArray& a : optimizer().state()) {
    comm.broadcast(a.values.data(), a.values.size() * sizeof(float), root);
    optimizer().load_state(a.name, a.values);  // device backends: into device memory too
  }
  int64_t steps = optimizer().steps();
  comm.broadcast(&steps, sizeof steps, root);
  optimizer().set_steps(steps);
  LrSchedule::State s = schedule_->state();
  comm.broadcast(&s, sizeof s, root);
  schedule_->set_state(s);
  comm.broadcast(&position_, sizeof position_, root);
}

void TrainState::to_devices() {
  for (size_t g = 0; g < backends_.size(); ++g) {
    Backend& b = *backends_[g];
    b.make_current();
    b.copy_to_device(models_[g]->params(), params_.data(), param_bytes());
    b.copy_to_device(models_[g]->buffers(), buffers_.data(), buffer_bytes());
    if (g == 0) continue;
    for (const StateArray& a : optimizer().state()) optimizers_[g]->load_state(a.name, a.values);
    optimizers_[g]->set_steps(optimizer().steps());
  }
  backends_[0]->make_current();
}

void TrainState::from_device() {
  backend().copy_to_host(params_.data(), model().params(), param_bytes());
  backend().copy_to_host(buffers_.data(), model().buffers(), buffer_bytes());
}

void TrainState::share_buffers(comm::Communicator& comm, int root) {
  if (buffer_bytes() == 0) return;
  backend().copy_to_host(buffers_.data(), model().buffers(), buffer_bytes());
  comm.broadcast(buffers_.data(), buffer_bytes(), root);
  backend().copy_to_device(model().buffers(), buffers_.data(), buffer_bytes());
}

void TrainState::save(const std::string& path, const std::string& config) {
  from_device();
  save_checkpoint(path, spec_, params_, buffers_, optimizer(), *schedule_, position_, config);
}

void TrainState::save_weights(const std::string& path, const std::string& config) {
  from_device();
  trainer::save_weights(path, spec_, params_, buffers_, config);
}

CheckpointPosition continued_position(const CheckpointPosition& saved, int64_t world, int64_t batch,
                                      int64_t steps_per_epoch) {
  if (saved.world_size == world && saved.batch_size == batch) return saved;
  CheckpointPosition p = saved;
  const int64_t seen = saved.step_in_epoch * saved.world_size * saved.batch_size;
  p.step_in_epoch = seen / (world * batch);
  p.world_size = world;
  p.batch_size = batch;
  if (p.step_in_epoch >= steps_per_epoch) {
    ++p.epoch;
    p.step_in_epoch = 0;
  }
  return p;
}

}  // namespace alexnet::trainer
