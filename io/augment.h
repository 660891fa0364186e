// From a stored uint8 HWC image to the float tensor the model eats: crop (random or center),
// horizontal flip, the paper's PCA lighting noise, per-channel normalization.
#pragma once

#include <cstdint>
#include <vector>

namespace alexnet::io {

enum class Layout { kNCHW, kNHWC };

inline constexpr int64_t kMaxChannels = 16;

struct AugmentConfig {
  int64_t crop_height = 0, crop_width = 0;  // the model's input size
  bool random_crop = false;                 // false: center crop (evaluation)
  bool flip = false;                        // horizontal flip with probability 1/2
  int64_t pad = 0;            // zero pixels added on every side before the crop (CIFAR-style)
  float lighting_std = 0.0f;  // PCA lighting noise std (the paper: 0.1); 3-channel images only
  std::vector<float> mean{}, std{};  // per channel, pixel units (0-255); empty: 0 and 1
  Layout layout = Layout::kNCHW;
};

// Everything random about one sample's augmentation.
struct AugmentDraw {
  int64_t top = 0, left = 0;  // crop origin in padded-image coordinates
  bool flip = false;
  float lighting[3] = {0, 0, 0};  // added to each channel, pixel units
};

// Checks the config against the stored image shape; throws DataError naming the problem.
void validate(const AugmentConfig& config, int64_t height, int64_t width, int64_t channels);

// The draw for one sample, a pure function of (seed, epoch, sample index): the same on every
// run whatever the thread or rank that does the work.
AugmentDraw draw_augmentation(const AugmentConfig& config, int64_t height, int64_t width,
                              int64_t channels, uint64_t seed, int64_t epoch, int64_t index);

// Writes one sample: crop_height x crop_width x channels floats, laid out as config.layout says
// (CHW for NCHW, HWC for NHWC).
void augment_image(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                   const AugmentConfig& config, const AugmentDraw& draw, float* dst);

// The plain reference: one pixel at a time through the definition; tests hold augment_image to it.
void augment_image_reference(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                             const AugmentConfig& config, const AugmentDraw& draw, float* dst);

}  // namespace alexnet::io
