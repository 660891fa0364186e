// The step of a rank with one device (every CPU rank, and a GPU rank with --gpus-per-rank 1): the
// batch into the device's input buffers (augmented there where the step has a device augmenter),
// then TrainStep's forward, bucketed all-reduce and update.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "trainer/step.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {

// Writes a batch's model input into device memory from its stored uint8 images: augmentation on
// the device (trainer/cuda/device_augmenter.h).
class DeviceAugment {
 public:
  virtual ~DeviceAugment() = default;
  virtual void run(const io::Batch& batch, float* input) = 0;
};

class OneDeviceStep final : public Step {
 public:
  // gradients: the communicator that averages them (MPI over host memory, NCCL over a GPU's);
  // augment: null where the loader augments. All references must outlive the step.
  OneDeviceStep(Replica replica, comm::Communicator& gradients, const TrainStepConfig& config,
                std::unique_ptr<DeviceAugment> augment = nullptr);

  LossResult run(const io::Batch& batch, const DropoutKey& key, double lr) override;
  const StepTimes& times() const override { return step_.step_times(); }
  LossScaler& loss_scaler() override { return step_.loss_scaler(); }
  void set_profiler(Profiler* profiler) override { step_.set_profiler(profiler); }

 private:
  Replica replica_;
  TrainStep step_;
  std::unique_ptr<DeviceAugment> augment_;
  Backend::Memory input_, labels_;  // the model's batch, in device memory
};

}  // namespace alexnet::trainer
