// The GPU data augmentation's per-element arithmetic: crop (with zero padding), horizontal flip,
// lighting and per-channel normalization of a stored uint8 HWC image, exactly as io/augment.cc's
// augment_image computes it (the same float operations in the same order, so the same bits).
// Written once for the CUDA kernel (augment_kernels.cu) and its CPU tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/augment.h"
#include "trainer/host_device.h"

namespace alexnet::trainer::cuda {

// One image's augmentation, as the kernel reads it (a small device array, one per image).
struct AugmentImage {
  int32_t top = 0, left = 0;  // crop origin in padded-image coordinates
  int32_t flip = 0;           // 1: mirror horizontally
  // Per channel: out = pixel * scale + shift; pad_value where the crop reaches into the padding.
  float scale[io::kMaxChannels] = {}, shift[io::kMaxChannels] = {},
        pad_value[io::kMaxChannels] = {};
};

// The batch's shapes: stored images [N, height, width, channels] uint8, output
// [N, crop_h, crop_w, channels] float (NHWC).
struct AugmentGeometry {
  int64_t height = 0, width = 0, channels = 0;
  int64_t crop_h = 0, crop_w = 0, pad = 0;
};

// The per-image coefficients of io::augment_image for a config and its draw (host only; the
// float expressions are augment_image's, so the kernel reproduces its bits).
inline AugmentImage make_augment_image(const io::AugmentConfig& config, const io::AugmentDraw& draw,
                                       int64_t channels) {
  AugmentImage a;
  a.top = static_cast<int32_t>(draw.top);
  a.left = static_cast<int32_t>(draw.left);
  a.flip = draw.flip ? 1 : 0;
  for (int64_t c = 0; c < channels && c < io::kMaxChannels; ++c) {
    const float mean = config.mean.empty() ? 0.0f : config.mean[static_cast<size_t>(c)];
    const float sd = config.std.empty() ? 1.0f : config.std[static_cast<size_t>(c)];
    const float light = c < 3 ? draw.lighting[c] : 0.0f;
    a.scale[c] = 1.0f / sd;
    a.shift[c] = (light - mean) / sd;
    a.pad_value[c] = -mean / sd;  // padding is a zero pixel before normalization, without lighting
  }
  return a;
}

// pixel * scale + shift rounded twice, as the host computes it: no fused multiply-add on the
// device (nvcc would contract the expression).
ALEXNET_HOST_DEVICE inline float augment_affine(float pixel, float scale, float shift) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(__fmul_rn(pixel, scale), shift);
#else
  return pixel * scale + shift;
#endif
}

// Output element o of the NHWC batch [N, crop_h, crop_w, C], from the stored batch `src`
// [N, height, width, C] and the image's coefficients.
ALEXNET_HOST_DEVICE inline float augment_output(const uint8_t* src, const AugmentImage* images,
                                                int64_t o, const AugmentGeometry& g) {
  const int64_t c = o % g.channels;
  int64_t rest = o / g.channels;
  const int64_t x = rest % g.crop_w;
  rest /= g.crop_w;
  const int64_t y = rest % g.crop_h, n = rest / g.crop_h;
  const AugmentImage& a = images[n];
  // Output (y, x) shows padded-image pixel (top + y, left + x'), x' mirrored when flipped.
  const int64_t xs = a.flip ? g.crop_w - 1 - x : x;
  const int64_t sy = a.top + y - g.pad, sx = a.left + xs - g.pad;
  if (sy < 0 || sy >= g.height || sx < 0 || sx >= g.width) return a.pad_value[c];
  const uint8_t pixel = src[((n * g.height + sy) * g.width + sx) * g.channels + c];
  return augment_affine(static_cast<float>(pixel), a.scale[c], a.shift[c]);
}

}  // namespace alexnet::trainer::cuda
