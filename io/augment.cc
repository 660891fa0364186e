// Augmentation: crop, flip, lighting, normalization, in one pass over the output.
#include "io/augment.h"

#include <algorithm>
#include <string>

#include "io/error.h"
#include "io/random.h"

namespace alexnet::io {
namespace {

// ImageNet's RGB eigenvalues and eigenvectors (of pixels scaled to [0, 1]), as used by
// cuda-convnet, fb.resnet.torch and torchvision's references for AlexNet's lighting noise.
constexpr float kEigenValues[3] = {0.2175f, 0.0188f, 0.0045f};
constexpr float kEigenVectors[3][3] = {
    {-0.5675f, 0.7192f, 0.4009f}, {-0.5808f, -0.0045f, -0.8140f}, {-0.5836f, -0.6948f, 0.4203f}};

}  // namespace

void validate(const AugmentConfig& config, int64_t height, int64_t width, int64_t channels) {
  if (config.crop_height <= 0 || config.crop_width <= 0) {
    throw DataError("crop size must be positive, got " + std::to_string(config.crop_height) + "x" +
                    std::to_string(config.crop_width));
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
    d.top =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(padded_h - config.crop_height + 1)));
    d.left =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(padded_w - config.crop_width + 1)));
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

namespace {

// One output row's in-image part: n pixels starting at source pixel `first`, stepping one pixel
// right (or left when flipped). Channel count and direction are template parameters so that the
// compiler can unroll and vectorize the common cases (1 and 3 channels).
template <int kChannels, bool kFlip>
void row_nchw(const uint8_t* first, int64_t n, int64_t channels, const float* sc, const float* sh,
              float* out, int64_t plane) {
  const int64_t C = kChannels > 0 ? kChannels : channels;
  const int64_t step = kFlip ? -C : C;
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* s = first + c;
    float* o = out + c * plane;
    const float scale = sc[c], shift = sh[c];
    for (int64_t x = 0; x < n; ++x) o[x] = static_cast<float>(s[x * step]) * scale + shift;
  }
}

template <int kChannels, bool kFlip>
void row_nhwc(const uint8_t* first, int64_t n, int64_t channels, const float* sc, const float* sh,
              float* out) {
  const int64_t C = kChannels > 0 ? kChannels : channels;
  const int64_t step = kFlip ? -C : C;
  for (int64_t x = 0; x < n; ++x) {
    for (int64_t c = 0; c < C; ++c) {
      out[x * C + c] = static_cast<float>(first[x * step + c]) * sc[c] + sh[c];
    }
  }
}

template <bool kFlip>
void row_dispatch(const uint8_t* first, int64_t n, int64_t channels, bool nchw, const float* sc,
                  const float* sh, float* out, int64_t plane) {
  if (nchw) {
    if (channels == 3) return row_nchw<3, kFlip>(first, n, channels, sc, sh, out, plane);
    if (channels == 1) return row_nchw<1, kFlip>(first, n, channels, sc, sh, out, plane);
    return row_nchw<0, kFlip>(first, n, channels, sc, sh, out, plane);
  }
  if (channels == 3) return row_nhwc<3, kFlip>(first, n, channels, sc, sh, out);
  if (channels == 1) return row_nhwc<1, kFlip>(first, n, channels, sc, sh, out);
  return row_nhwc<0, kFlip>(first, n, channels, sc, sh, out);
}

}  // namespace

void augment_image(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                   const AugmentConfig& config, const AugmentDraw& draw, float* dst) {
  const int64_t ch = config.crop_height, cw = config.crop_width, C = channels;
  const int64_t plane = ch * cw;
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
  auto fill_pad = [&](int64_t y, int64_t x0, int64_t x1) {
    for (int64_t x = x0; x < x1; ++x) {
      for (int64_t c = 0; c < C; ++c) {
        (nchw ? dst[c * plane + y * cw + x] : dst[(y * cw + x) * C + c]) = pad_value[c];
      }
    }
  };
  // Output column x shows source column origin + x (or origin - x when flipped).
  const int64_t origin = draw.flip ? draw.left - config.pad + cw - 1 : draw.left - config.pad;
  int64_t x_lo, x_hi;  // output columns whose source column is inside the image
  if (draw.flip) {
    x_lo = std::max<int64_t>(0, origin - (width - 1));
    x_hi = std::min<int64_t>(cw, origin + 1);
  } else {
    x_lo = std::max<int64_t>(0, -origin);
    x_hi = std::min<int64_t>(cw, width - origin);
  }
  for (int64_t y = 0; y < ch; ++y) {
    const int64_t sy = draw.top + y - config.pad;
    if (sy < 0 || sy >= height || x_lo >= x_hi) {
      fill_pad(y, 0, cw);
      continue;
    }
    fill_pad(y, 0, x_lo);
    fill_pad(y, x_hi, cw);
    const int64_t first_sx = draw.flip ? origin - x_lo : origin + x_lo;
    const uint8_t* first = src + (sy * width + first_sx) * C;
    float* out = nchw ? dst + y * cw + x_lo : dst + (y * cw + x_lo) * C;
    if (draw.flip) {
      row_dispatch<true>(first, x_hi - x_lo, C, nchw, sc, sh, out, plane);
    } else {
      row_dispatch<false>(first, x_hi - x_lo, C, nchw, sc, sh, out, plane);
    }
  }
}

void augment_image_reference(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                             const AugmentConfig& config, const AugmentDraw& draw, float* dst) {
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
