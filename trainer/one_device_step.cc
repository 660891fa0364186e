// OneDeviceStep: a batch into one device's memory and TrainStep over it.
#include "trainer/one_device_step.h"

namespace alexnet::trainer {

OneDeviceStep::OneDeviceStep(Replica replica, comm::Communicator& gradients,
                             const TrainStepConfig& config, std::unique_ptr<DeviceAugment> augment)
    : replica_(replica),
      step_(*replica.model, *replica.optimizer, gradients, config),
      augment_(std::move(augment)),
      input_(replica.backend->allocate(static_cast<size_t>(replica.model->input_elements()) *
                                       sizeof(float))),
      labels_(replica.backend->allocate(static_cast<size_t>(replica.model->batch()) *
                                        sizeof(int32_t))) {}

LossResult OneDeviceStep::run(const io::Batch& batch, const DropoutKey& key, double lr) {
  Backend& backend = *replica_.backend;
  auto* input = static_cast<float*>(input_.get());
  if (augment_) augment_->run(batch, input);
  if (batch.images != nullptr) {
    backend.copy_to_device(input, batch.images,
                           static_cast<size_t>(replica_.model->input_elements()) * sizeof(float));
  }
  backend.copy_to_device(labels_.get(), batch.labels,
                         static_cast<size_t>(batch.size) * sizeof(int32_t));
  return step_.run(input, static_cast<const int32_t*>(labels_.get()), key, lr);
}

}  // namespace alexnet::trainer
