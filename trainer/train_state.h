// Everything a training run carries from step to step and into a checkpoint: the replicas'
// parameters and buffers (with one host mirror for initialization, checkpoints and broadcasts),
// the optimizers, the schedule and the position in the data stream. One place moves that state
// between host and devices, between ranks and between the replicas of a rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "trainer/backend.h"
#include "trainer/checkpoint.h"
#include "trainer/lr_schedule.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/replica.h"

namespace alexnet::trainer {

// How the replicas are made: the model's options and the optimizer's configuration.
struct ReplicaConfig {
  int64_t batch = 0;  // per replica
  double label_smoothing = 0;
  bool dropout = true;
  OptimizerConfig optimizer;
};

class TrainState {
 public:
  // One replica per backend (backends[0] is the rank's first device; the others drive its
  // further GPUs). Parameters start at zero: initialize(), init_from() or load() fill them.
  TrainState(const ModelSpec& spec, std::vector<std::unique_ptr<Backend>> backends,
             const ReplicaConfig& config, std::unique_ptr<LrSchedule> schedule);
  TrainState(const TrainState&) = delete;
  TrainState& operator=(const TrainState&) = delete;

  const ModelSpec& spec() const { return spec_; }
  Backend& backend() { return *backends_[0]; }
  Model& model() { return *models_[0]; }
  Optimizer& optimizer() { return *optimizers_[0]; }
  LrSchedule& schedule() { return *schedule_; }
  // Every replica, the first one first.
  std::vector<Replica> replicas();
  CheckpointPosition& position() { return position_; }
  const CheckpointPosition& position() const { return position_; }

  // Into the host mirror (to_devices() puts it on the replicas): fresh weights from `seed`;
  // weights from a file (trainer/init_from.h; returns its report line); a checkpoint (its
  // position too; epoch_samples bounds the position, 0: unchecked).
  void initialize(uint64_t seed);
  std::string init_from(const std::string& path, const std::vector<std::string>& skip);
  void load(const std::string& path, int64_t epoch_samples);

  // Root's host mirror, optimizer state, schedule and position into every rank's.
  void broadcast(comm::Communicator& comm, int root);
  // The host mirror into the first replica, and the first replica's whole state (parameters,
  // buffers, optimizer) into the others.
  void to_devices();
  // The first replica's parameters and buffers into the host mirror.
  void from_device();
  // Root's buffers (batch-norm statistics) into every rank's first replica, through the host
  // (a GPU's memory is not MPI's): validation uses rank 0's.
  void share_buffers(comm::Communicator& comm, int root);

  // From the first replica: a checkpoint at the current position, with the run's configuration
  // text; the weights file of a finished run.
  void save(const std::string& path, const std::string& config);
  void save_weights(const std::string& path, const std::string& config);

 private:
  size_t param_bytes() const { return params_.size() * sizeof(float); }
  size_t buffer_bytes() const { return static_cast<size_t>(spec_.buffer_floats) * sizeof(float); }

  ModelSpec spec_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<Model>> models_;
  std::vector<std::unique_ptr<Optimizer>> optimizers_;
  std::unique_ptr<LrSchedule> schedule_;
  std::vector<float> params_, buffers_;  // the host mirror
  CheckpointPosition position_;
};

// The position a run of `world` ranks x `batch` continues from, given a checkpoint's: the same
// where the layout is the same; otherwise the same epoch at the same fraction of it (each rank's
// shard differs from there on), the next epoch's start where that fraction is its end.
CheckpointPosition continued_position(const CheckpointPosition& saved, int64_t world, int64_t batch,
                                      int64_t steps_per_epoch);

}  // namespace alexnet::trainer
