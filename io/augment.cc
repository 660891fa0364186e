// Augmentation: crop, flip, lighting, normalization, in one pass over the output.
#include "io/augment.h"

#include <string>

#include "io/error.h"
#include "io/random.h"

namespace alexnet::io {
namespace {

// ImageNet's RGB eigenvalues and eigenvectors (of pixels scaled to [0, 1]), as used by
// cuda-convnet, fb.resnet.torch and torchvision's references for AlexNet's lighting noise.
constexpr float kEigenValues[3] = {0.2175f, 0.0188f, 0.0045f};
constexpr float kEigenVectors[3][3] = {{-0.5675f, 0.7192f, 0.4009f},
                                       {-0.5808f, -0.0045f, -0.8140f},
                                       {-0.5836f, -0.6948f, 0.4203f}};

}  // namespace

void validate(const AugmentConfig& config, int64_t height, int64_t width, int64_t channels) {
  if (config.crop_height <= 0 || config.crop_width <= 0) {
    throw DataError("crop size must be positive, got " + std::to_string(config.crop_height) +
                    "x" + std::to_string(config.crop_width));
  }
  if (config.pad < 0) throw DataError("padding must not be negative");
  if (config.crop_height > height + 2 * config.pad || config.crop_width > width + 2 * config.pad) {
    throw DataError("crop " + std::to_string(config.crop_height) + "x" +
                    std::to_string(config.crop_width) + " is larger than the stored images (" +
                    std::to_string(height) + "x" + std::to_string(width) + " plus padding " +
                    std::to_string(config.pad) + ")");
  }
  auto check = [&](const std::vector<float>& v, const char* name) {
    if (!v.empty() && static_cast<int64_t>(v.size()) != channels) {
      throw DataError(std::string("normalization ") + name + " has " + std::to_string(v.size()) +
                      " values for " + std::to_string(channels) + " channels");
    }
  };
  check(config.mean, "mean");
  check(config.std, "std");
  for (float s : config.std) {
    if (!(s > 0)) throw DataError("normalization std must be positive");
  }
  if (channels > kMaxChannels) {
    throw DataError("augmentation supports at most " + std::to_string(kMaxChannels) +
                    " channels, the images have " + std::to_string(channels));
  }
  if (config.lighting_std < 0) throw DataError("lighting std must not be negative");
}

AugmentDraw draw_augmentation(const AugmentConfig& config, int64_t height, int64_t width,
                              int64_t channels, uint64_t seed, int64_t epoch, int64_t index) {
  AugmentDraw d;
  const int64_t padded_h = height + 2 * config.pad, padded_w = width + 2 * config.pad;
  if (config.random_crop) {
    CounterRng rng(seed, RngPurpose::kAugment, static_cast<uint64_t>(epoch),
                   static_cast<uint64_t>(index));
    d.top = static_cast<int64_t>(rng.below(static_cast<uint64_t>(padded_h - config.crop_height + 1)));
    d.left = static_cast<int64_t>(rng.below(static_cast<uint64_t>(padded_w - config.crop_width + 1)));
    d.flip = config.flip && (rng.next_u32() & 1u);
    if (config.lighting_std > 0 && channels == 3) {
      float alpha[3];
      for (float& a : alpha) a = rng.normal() * config.lighting_std;
      for (int c = 0; c < 3; ++c) {
        float v = 0;
        for (int j = 0; j < 3; ++j) v += kEigenVectors[c][j] * alpha[j] * kEigenValues[j];
        d.lighting[c] = 255.0f * v;
      }
    }
  } else {
    d.top = (padded_h - config.crop_height) / 2;
    d.left = (padded_w - config.crop_width) / 2;
    if (config.flip) {  // flip without random crops: still random, still keyed
      CounterRng rng(seed, RngPurpose::kAugment, static_cast<uint64_t>(epoch),
                     static_cast<uint64_t>(index));
      d.flip = rng.next_u32() & 1u;
    }
  }
  return d;
}

void augment_image(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                   const AugmentConfig& config, const AugmentDraw& draw, float* dst) {
  const int64_t ch = config.crop_height, cw = config.crop_width, C = channels;
  // Per channel affine map of the stored pixel value: out = in * scale + shift.
  float sc[kMaxChannels], sh[kMaxChannels], pad_value[kMaxChannels];
  for (int64_t c = 0; c < C; ++c) {
    float mean = config.mean.empty() ? 0.0f : config.mean[static_cast<size_t>(c)];
    float sd = config.std.empty() ? 1.0f : config.std[static_cast<size_t>(c)];
    float light = c < 3 ? draw.lighting[c] : 0.0f;
    sc[c] = 1.0f / sd;
    sh[c] = (light - mean) / sd;
    pad_value[c] = -mean / sd;  // padding is a zero pixel before normalization, without lighting
  }
  const bool nchw = config.layout == Layout::kNCHW;
  for (int64_t y = 0; y < ch; ++y) {
    const int64_t sy = draw.top + y - config.pad;
    const bool row_inside = sy >= 0 && sy < height;
    const uint8_t* row = src + (row_inside ? sy : 0) * width * C;
    for (int64_t x = 0; x < cw; ++x) {
      const int64_t px = draw.flip ? cw - 1 - x : x;
      const int64_t sx = draw.left + px - config.pad;
      const bool inside = row_inside && sx >= 0 && sx < width;
      const uint8_t* pixel = row + (inside ? sx : 0) * C;
      for (int64_t c = 0; c < C; ++c) {
        float v = inside ? static_cast<float>(pixel[c]) * sc[c] + sh[c] : pad_value[c];
        if (nchw) {
          dst[(c * ch + y) * cw + x] = v;
        } else {
          dst[(y * cw + x) * C + c] = v;
        }
      }
    }
  }
}

void augment_image_reference(const uint8_t* src, int64_t height, int64_t width,
                             int64_t channels, const AugmentConfig& config,
                             const AugmentDraw& draw, float* dst) {
  for (int64_t c = 0; c < channels; ++c) {
    double mean = config.mean.empty() ? 0.0 : config.mean[static_cast<size_t>(c)];
    double sd = config.std.empty() ? 1.0 : config.std[static_cast<size_t>(c)];
    for (int64_t y = 0; y < config.crop_height; ++y) {
      for (int64_t x = 0; x < config.crop_width; ++x) {
        // Output (y, x) shows padded-image pixel (top + y, left + x'), x' mirrored when flipped.
        int64_t xs = draw.flip ? config.crop_width - 1 - x : x;
        int64_t sy = draw.top + y - config.pad, sx = draw.left + xs - config.pad;
        double pixel = 0.0;
        if (sy >= 0 && sy < height && sx >= 0 && sx < width) {
          pixel = src[(sy * width + sx) * channels + c] + (c < 3 ? draw.lighting[c] : 0.0);
        }
        double v = (pixel - mean) / sd;
        int64_t out = config.layout == Layout::kNCHW
                          ? (c * config.crop_height + y) * config.crop_width + x
                          : (y * config.crop_width + x) * channels + c;
        dst[out] = static_cast<float>(v);
      }
    }
  }
}

}  // namespace alexnet::io
