// A training step, whichever way this rank steps: one device (trainer/one_device_step.h), or
// several GPUs per rank (trainer/multi_gpu_step.h). The job runs batches through it and reads back
// where the time went and the loss scale; make_step (trainer/step_factory.cc) picks and builds it.
#pragma once

#include <cstdint>
#include <memory>

#include "comm/gpu_assignment.h"
#include "comm/mpi_communicator.h"
#include "io/augment.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/loss_scaler.h"
#include "trainer/profiler.h"
#include "trainer/train_state.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {

class Step {
 public:
  virtual ~Step() = default;
  // One batch of the training loader (host images, or the stored uint8 images where the step
  // augments on the device), this rank's dropout key and the learning rate. Returns the rank's
  // loss and accuracy counts over the batch.
  virtual LossResult run(const io::Batch& batch, const DropoutKey& key, double lr) = 0;
  // The last run()'s times.
  virtual const StepTimes& times() const = 0;
  // fp16's dynamic loss scale: continued from a checkpoint, saved into the next.
  virtual LossScaler& loss_scaler() = 0;
  // Records the step's layers, buckets and updates into `profiler` while it is enabled (where
  // the step supports profiling).
  virtual void set_profiler(Profiler* profiler) = 0;
};

// What make_step needs besides the state's replicas.
struct StepSetup {
  TrainStepConfig config;
  // The cuda backend: this rank's devices and the NCCL ranks they are (comm/gpu_assignment.h).
  comm::GpuAssignment gpus;
  double comm_timeout_s = 0;  // NCCL's set-up and all-reduce timeouts
  // Augmentation on the device: the loader's augmentation, the stored images' size, the batch
  // and the seed of the draws.
  bool augment_on_device = false;
  io::AugmentConfig augment;
  int64_t height = 0, width = 0, channels = 0;
  int64_t batch_size = 0;
  uint64_t seed = 0;
};

// The step for `state`'s replicas, its gradients averaged over `comm`'s ranks (over MPI, or over
// NCCL where the job has several GPUs). Every rank calls it (NCCL's set-up is collective).
std::unique_ptr<Step> make_step(TrainState& state, comm::MpiCommunicator& comm,
                                const StepSetup& setup);

}  // namespace alexnet::trainer
