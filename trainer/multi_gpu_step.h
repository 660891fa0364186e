// One training step of a rank that drives several GPUs (--gpus-per-rank G > 1): the rank's batch
// is split into G equal slices, one replica of the model per device trains on its slice in a
// thread of its own, the gradients of all devices of all ranks are averaged by one grouped NCCL
// all-reduce, and every replica takes the same optimizer step, so the replicas stay identical.
// The threads live as long as the step object: nothing is started or allocated per step.
//
// Unlike TrainStep (one device), the all-reduce starts after every replica's backward, not
// bucket by bucket during it: G > 1 is for nodes whose GPUs outnumber the ranks one wants.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "trainer/backend.h"
#include "trainer/loss_scaler.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"
#include "trainer/replica.h"
#include "trainer/step.h"
#include "trainer/train_step.h"

namespace alexnet::comm {
class NcclCommunicator;
}

namespace alexnet::trainer {

// The samples of a batch that replica g of G trains on: [first, first + count). G must divide
// the batch (the options check it).
struct BatchSlice {
  int64_t first = 0, count = 0;
};
BatchSlice replica_slice(int64_t batch, int gpus, int g);

// The dropout key of replica g of a rank with G replicas: every GPU of the job draws its own masks
// (the key's rank field is the GPU's NCCL rank, rank * G + g).
DropoutKey replica_key(const DropoutKey& rank_key, int gpus, int g);

class MultiGpuStep final : public Step {
 public:
  // replicas: CUDA backends, one per device, whose models take the rank's batch / G; nccl: over
  // this rank's devices, in the replicas' order. All objects must outlive the step.
  MultiGpuStep(std::vector<Replica> replicas, comm::NcclCommunicator& nccl,
               const TrainStepConfig& config);
  ~MultiGpuStep();
  MultiGpuStep(const MultiGpuStep&) = delete;
  MultiGpuStep& operator=(const MultiGpuStep&) = delete;

  // images [batch, ...] in the backends' activation layout and labels [batch], host memory.
  // Returns the rank's mean loss and its accuracy counts over the whole batch, with the calling
  // thread on replica 0's device.
  LossResult run(const float* images, const int32_t* labels, const DropoutKey& key, double lr);
  // The loader's host batch.
  LossResult run(const io::Batch& batch, const DropoutKey& key, double lr) override {
    return run(batch.images, batch.labels, key, lr);
  }

  const StepTimes& step_times() const { return step_times_; }
  const StepTimes& times() const override { return step_times_; }
  bool last_step_skipped() const { return skipped_; }
  LossScaler& loss_scaler() override { return scaler_; }
  // The replicas' threads are not profiled (the job's trace shows their data waits only).
  void set_profiler(Profiler*) override {}

 private:
  void worker(size_t g);
  void stop_workers() noexcept;

  std::vector<Replica> replicas_;
  comm::NcclCommunicator& nccl_;
  const TrainStepConfig config_;
  LossScaler scaler_;
  bool skipped_ = false;
  StepTimes step_times_;
  size_t input_floats_ = 0;  // per replica
  std::vector<Backend::Memory> inputs_, labels_;
  std::vector<float*> grads_;

  // The hand-off to the workers: a new generation starts a forward and backward on every device.
  std::mutex mutex_;
  std::condition_variable start_, done_;
  uint64_t generation_ = 0;
  size_t running_ = 0;
  bool stopping_ = false;
  const float* images_ = nullptr;
  const int32_t* batch_labels_ = nullptr;
  DropoutKey key_;
  float loss_scale_ = 1;
  std::vector<LossResult> results_;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::thread> threads_;
};

}  // namespace alexnet::trainer
