// The GPU input path: the loader delivers the stored uint8 batch (4x fewer bytes over PCIe than
// floats, and no CPU time for cropping and normalizing), this copies it through pinned memory to
// the device and runs the augmentation kernel (trainer/cuda/augment_kernels.h) into the model's
// input, with each sample's crop, flip and lighting drawn exactly as the CPU loader would
// (io::draw_augmentation of seed, epoch and sample index): the same batch, bit for bit.
#pragma once

#include <cstdint>

#include "io/augment.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/cuda/augment_math.h"
#include "trainer/cuda/cuda_context.h"

namespace alexnet::trainer::cuda {

class DeviceAugmenter {
 public:
  // backend: a CUDA backend; images stored [height, width, channels]; batches of up to
  // max_batch. All memory (pinned staging, device buffers) is allocated here.
  DeviceAugmenter(Backend& backend, const io::AugmentConfig& config, int64_t height, int64_t width,
                  int64_t channels, int64_t max_batch, uint64_t seed);
  ~DeviceAugmenter();
  DeviceAugmenter(const DeviceAugmenter&) = delete;
  DeviceAugmenter& operator=(const DeviceAugmenter&) = delete;

  // Writes b's augmented images, NHWC floats [max_batch, crop_h, crop_w, C], into `out` (backend
  // memory) on the backend's stream; b must carry its raw images (loader with
  // augment_on_host = false). A short batch leaves the rest of `out` as it was.
  void run(const io::Batch& b, float* out);

 private:
  Backend& backend_;
  io::AugmentConfig config_;
  AugmentGeometry geometry_;
  int64_t max_batch_;
  uint64_t seed_;
  size_t sample_bytes_;
  PinnedBuffer raw_staging_, images_staging_;
  Backend::Memory raw_, images_;
  cudaEvent_t copied_ = nullptr;  // the staging buffers' copies of the last run() are done
  bool pending_ = false;
};

}  // namespace alexnet::trainer::cuda
