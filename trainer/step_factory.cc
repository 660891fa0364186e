// make_step: the one place that knows which ways of stepping this build has (the only
// ALEXNET_WITH_CUDA outside trainer/cuda/), and builds the communicator the step averages over.
#include <memory>
#include <utility>
#include <vector>

#include "trainer/one_device_step.h"
#include "trainer/step.h"
#ifdef ALEXNET_WITH_CUDA
#include "comm/nccl_communicator.h"
#include "trainer/cuda/cuda_backend.h"
#include "trainer/cuda/device_augmenter.h"
#include "trainer/multi_gpu_step.h"
#endif

namespace alexnet::trainer {
namespace {

#ifdef ALEXNET_WITH_CUDA
class CudaDeviceAugment final : public DeviceAugment {
 public:
  CudaDeviceAugment(Backend& backend, const StepSetup& s)
      : augmenter_(backend, s.augment, s.height, s.width, s.channels, s.batch_size, s.seed) {}
  void run(const io::Batch& batch, float* input) override { augmenter_.run(batch, input); }

 private:
  cuda::DeviceAugmenter augmenter_;
};

// A step with the NCCL communicator it averages over, which must outlive it.
class NcclStep final : public Step {
 public:
  explicit NcclStep(std::unique_ptr<comm::NcclCommunicator> nccl) : nccl_(std::move(nccl)) {}
  comm::NcclCommunicator& nccl() { return *nccl_; }
  void set_step(std::unique_ptr<Step> step) { step_ = std::move(step); }

  LossResult run(const io::Batch& batch, const DropoutKey& key, double lr) override {
    return step_->run(batch, key, lr);
  }
  const StepTimes& times() const override { return step_->times(); }
  LossScaler& loss_scaler() override { return step_->loss_scaler(); }
  void set_profiler(Profiler* profiler) override { step_->set_profiler(profiler); }

 private:
  std::unique_ptr<comm::NcclCommunicator> nccl_;  // declared first: destroyed after the step
  std::unique_ptr<Step> step_;
};

// GPUs in the job: gradients over NCCL, one step per device or the replicas' step. One GPU in
// the whole job has nothing to average (MPI's one-rank all-reduce returns at once) and gets no
// NCCL communicator: null.
std::unique_ptr<Step> make_cuda_step(TrainState& state, comm::MpiCommunicator& comm,
                                     const StepSetup& setup) {
  if (setup.gpus.nccl_size <= 1) return nullptr;
  const std::vector<Replica> replicas = state.replicas();
  std::vector<cudaStream_t> streams;
  for (const Replica& r : replicas) streams.push_back(cuda::backend_stream(*r.backend));
  comm::NcclOptions options;
  options.timeout_seconds = setup.comm_timeout_s;
  options.init_timeout_seconds = setup.comm_timeout_s;
  options.reserve_floats = setup.config.wire == comm::WireType::kFloat32
                               ? 0
                               : static_cast<size_t>(state.spec().param_floats);
  auto step = std::make_unique<NcclStep>(
      std::make_unique<comm::NcclCommunicator>(comm, setup.gpus, streams, options));
  if (replicas.size() > 1) {
    step->set_step(std::make_unique<MultiGpuStep>(replicas, step->nccl(), setup.config));
  } else {
    std::unique_ptr<DeviceAugment> augment;
    if (setup.augment_on_device)
      augment = std::make_unique<CudaDeviceAugment>(state.backend(), setup);
    step->set_step(std::make_unique<OneDeviceStep>(replicas[0], step->nccl(), setup.config,
                                                   std::move(augment)));
  }
  state.backend().make_current();
  return step;
}
#endif

}  // namespace

std::unique_ptr<Step> make_step(TrainState& state, comm::MpiCommunicator& comm,
                                const StepSetup& setup) {
  std::unique_ptr<DeviceAugment> augment;
#ifdef ALEXNET_WITH_CUDA
  if (state.backend().name() == "cuda") {
    if (auto step = make_cuda_step(state, comm, setup)) return step;
    if (setup.augment_on_device)
      augment = std::make_unique<CudaDeviceAugment>(state.backend(), setup);
  }
#endif
  // Gradients over MPI, in host memory: staging for the wire type allocated once, here.
  comm.reserve(static_cast<size_t>(state.spec().param_floats), setup.config.wire);
  return std::make_unique<OneDeviceStep>(state.replicas()[0], comm, setup.config,
                                         std::move(augment));
}

}  // namespace alexnet::trainer
