// MultiGpuStep: replicas in threads, one grouped NCCL all-reduce, identical updates.
#include "trainer/multi_gpu_step.h"

#include <chrono>
#include <cmath>
#include <span>
#include <stdexcept>
#include <string>

#include "comm/nccl_communicator.h"
#include "trainer/cuda/cuda_backend.h"

namespace alexnet::trainer {

BatchSlice replica_slice(int64_t batch, int gpus, int g) {
  if (gpus < 1 || g < 0 || g >= gpus || batch % gpus != 0) {
    throw std::invalid_argument("replica " + std::to_string(g) + " of " + std::to_string(gpus) +
                                ": a batch of " + std::to_string(batch) + " does not split evenly");
  }
  const int64_t count = batch / gpus;
  return {g * count, count};
}

DropoutKey replica_key(const DropoutKey& rank_key, int gpus, int g) {
  DropoutKey key = rank_key;
  key.rank = rank_key.rank * static_cast<uint32_t>(gpus) + static_cast<uint32_t>(g);
  return key;
}

MultiGpuStep::MultiGpuStep(std::vector<Replica> replicas, comm::NcclCommunicator& nccl,
                           const TrainStepConfig& config)
    : replicas_(std::move(replicas)), nccl_(nccl), config_(config), scaler_(config.loss_scaler) {
  if (replicas_.empty()) throw std::invalid_argument("MultiGpuStep: no replicas");
  if (static_cast<int>(replicas_.size()) != nccl.gpus_per_rank()) {
    throw std::invalid_argument("MultiGpuStep: " + std::to_string(replicas_.size()) +
                                " replicas, the NCCL communicator has " +
                                std::to_string(nccl.gpus_per_rank()) + " devices");
  }
  const Model& first = *replicas_[0].model;
  input_floats_ = static_cast<size_t>(first.input_elements());
  for (Replica& r : replicas_) {
    if (r.model->batch() != first.batch()) {
      throw std::invalid_argument("MultiGpuStep: replicas of different batch sizes");
    }
    cuda::make_current(*r.backend);
    inputs_.push_back(r.backend->allocate(input_floats_ * sizeof(float)));
    labels_.push_back(r.backend->allocate(static_cast<size_t>(first.batch()) * sizeof(int32_t)));
    grads_.push_back(r.model->grads());
  }
  cuda::make_current(*replicas_[0].backend);
  results_.resize(replicas_.size());
  errors_.resize(replicas_.size());
  try {
    for (size_t g = 0; g < replicas_.size(); ++g) threads_.emplace_back([this, g] { worker(g); });
  } catch (...) {
    stop_workers();  // a joinable std::thread destroyed by the unwinding would terminate
    throw;
  }
}

MultiGpuStep::~MultiGpuStep() { stop_workers(); }

void MultiGpuStep::stop_workers() noexcept {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void MultiGpuStep::worker(size_t g) {
  const Replica& r = replicas_[g];
  uint64_t seen = 0;
  bool current = false;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    try {
      if (!current) {
        cuda::make_current(*r.backend);
        current = true;
      }
      const int64_t batch = r.model->batch();
      const BatchSlice slice =
          replica_slice(batch * static_cast<int64_t>(replicas_.size()),
                        static_cast<int>(replicas_.size()), static_cast<int>(g));
      r.backend->copy_to_device(
          inputs_[g].get(), images_ + static_cast<size_t>(slice.first) * (input_floats_ / batch),
          input_floats_ * sizeof(float));
      r.backend->copy_to_device(labels_[g].get(), batch_labels_ + slice.first,
                                static_cast<size_t>(batch) * sizeof(int32_t));
      r.model->forward(static_cast<const float*>(inputs_[g].get()), true,
                       replica_key(key_, static_cast<int>(replicas_.size()), static_cast<int>(g)));
      results_[g] = r.model->loss(static_cast<const int32_t*>(labels_[g].get()), true, loss_scale_);
      r.model->backward();
      errors_[g] = nullptr;
    } catch (...) {
      errors_[g] = std::current_exception();
    }
    {
      std::lock_guard lock(mutex_);
      --running_;
    }
    done_.notify_one();
  }
}

LossResult MultiGpuStep::run(const float* images, const int32_t* labels, const DropoutKey& key,
                             double lr) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const double loss_scale = config_.loss_scaling ? scaler_.scale() : 1;
  {
    std::lock_guard lock(mutex_);
    images_ = images;
    batch_labels_ = labels;
    key_ = key;
    loss_scale_ = static_cast<float>(loss_scale);
    running_ = replicas_.size();
    ++generation_;
  }
  start_.notify_all();
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return running_ == 0; });
  }
  for (const std::exception_ptr& e : errors_) {
    if (e) std::rethrow_exception(e);
  }
  const auto t1 = Clock::now();
  const auto n = static_cast<size_t>(replicas_[0].model->spec().param_floats);
  nccl_.all_reduce(std::span<float* const>(grads_), n, comm::ReduceOp::kAverage, config_.wire);
  const auto t2 = Clock::now();

  GradientUpdate update;
  if (config_.loss_scaling || config_.clip_grad_norm > 0) {
    // Every replica holds the same averaged gradients: replica 0 decides for all.
    cuda::make_current(*replicas_[0].backend);
    update =
        decide_gradient_update(replicas_[0].backend->sum_of_squares(grads_[0], n), loss_scale,
                               config_.clip_grad_norm, config_.loss_scaling ? &scaler_ : nullptr);
  }
  skipped_ = update.skip;
  const double factor = update.gradient_factor;
  if (!skipped_) {
    for (size_t g = 0; g < replicas_.size(); ++g) {
      const Replica& r = replicas_[g];
      cuda::make_current(*r.backend);
      if (factor != 1) r.backend->scale(grads_[g], n, static_cast<float>(factor));
      r.optimizer->begin_step(lr);
      r.optimizer->update({r.model->params(), n}, {grads_[g], n}, 0, n);
    }
    for (const Replica& r : replicas_) {
      cuda::make_current(*r.backend);
      r.backend->synchronize();
    }
  }
  // The caller goes on with replica 0 (validation, checkpoints, its kernels and cuDNN handle):
  // leave this thread on its device, not on the last replica's.
  cuda::make_current(*replicas_[0].backend);
  const auto t3 = Clock::now();
  auto seconds = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  // Forward and backward of the replicas overlap each other; their time is reported as backward.
  step_times_.forward = 0;
  step_times_.backward = seconds(t0, t1);
  step_times_.comm_wait = seconds(t1, t2);
  step_times_.optimizer = seconds(t2, t3);

  LossResult total;
  for (const LossResult& r : results_) {
    total.loss += r.loss / static_cast<double>(results_.size());
    total.top1 += r.top1;
    total.top5 += r.top5;
  }
  return total;
}

}  // namespace alexnet::trainer
