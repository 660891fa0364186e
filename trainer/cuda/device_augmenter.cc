// DeviceAugmenter: pinned staging, one async copy each, the augmentation kernel.
#include "trainer/cuda/device_augmenter.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/augment_kernels.h"
#include "trainer/cuda/cuda_backend.h"

namespace alexnet::trainer::cuda {

DeviceAugmenter::DeviceAugmenter(Backend& backend, const io::AugmentConfig& config, int64_t height,
                                 int64_t width, int64_t channels, int64_t max_batch, uint64_t seed)
    : backend_(backend), config_(config), max_batch_(max_batch), seed_(seed) {
  io::validate(config, height, width, channels);
  if (config.layout != io::Layout::kNHWC) {
    throw std::invalid_argument("device augmentation writes NHWC, the CUDA backend's layout");
  }
  geometry_.height = height;
  geometry_.width = width;
  geometry_.channels = channels;
  geometry_.crop_h = config.crop_height;
  geometry_.crop_w = config.crop_width;
  geometry_.pad = config.pad;
  sample_bytes_ = static_cast<size_t>(height * width * channels);
  const auto batch = static_cast<size_t>(max_batch);
  CudaContext& context = backend_context(backend);
  raw_staging_ = context.pinned(batch * sample_bytes_);
  images_staging_ = context.pinned(batch * sizeof(AugmentImage));
  raw_ = backend.allocate(batch * sample_bytes_);
  images_ = backend.allocate(batch * sizeof(AugmentImage));
  make_current(backend);
  ALEXNET_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming),
                     "creating the input copy's event");
}

DeviceAugmenter::~DeviceAugmenter() {
  if (copied_ != nullptr) {
    cudaEventSynchronize(copied_);  // the DMA must not outlive the pinned staging
    cudaEventDestroy(copied_);
  }
}

void DeviceAugmenter::run(const io::Batch& b, float* out) {
  if (b.raw == nullptr) {
    throw std::logic_error("device augmentation needs the loader's raw batches");
  }
  if (b.size > max_batch_) {
    throw std::invalid_argument("a batch of " + std::to_string(b.size) +
                                " for device augmentation sized for " + std::to_string(max_batch_));
  }
  // The staging buffers are rewritten now: the last run()'s copies out of them must be done
  // (they were queued first on the stream, so by now they usually are).
  if (pending_) {
    ALEXNET_CUDA_CHECK(cudaEventSynchronize(copied_), "waiting for the last input batch's copy");
  }
  auto* draws = static_cast<AugmentImage*>(images_staging_.get());
  for (int64_t i = 0; i < b.size; ++i) {
    const io::AugmentDraw draw =
        io::draw_augmentation(config_, geometry_.height, geometry_.width, geometry_.channels, seed_,
                              b.epoch, b.indices[i]);
    draws[i] = make_augment_image(config_, draw, geometry_.channels);
  }
  const size_t raw_bytes = static_cast<size_t>(b.size) * sample_bytes_;
  // The loader's batch is reused after next(): through pinned memory, the copy is a true async
  // DMA and the host buffer is free again at once.
  std::memcpy(raw_staging_.get(), b.raw, raw_bytes);
  cudaStream_t stream = backend_context(backend_).stream();
  ALEXNET_CUDA_CHECK(
      cudaMemcpyAsync(raw_.get(), raw_staging_.get(), raw_bytes, cudaMemcpyHostToDevice, stream),
      "copying a raw input batch to the device");
  ALEXNET_CUDA_CHECK(
      cudaMemcpyAsync(images_.get(), draws, static_cast<size_t>(b.size) * sizeof(AugmentImage),
                      cudaMemcpyHostToDevice, stream),
      "copying the batch's augmentation draws to the device");
  ALEXNET_CUDA_CHECK(cudaEventRecord(copied_, stream), "marking the input batch's copy");
  pending_ = true;
  augment_batch(static_cast<const uint8_t*>(raw_.get()),
                static_cast<const AugmentImage*>(images_.get()), b.size, geometry_, out, stream);
}

}  // namespace alexnet::trainer::cuda
