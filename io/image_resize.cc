// Separable resampling with precomputed per-axis weights (the scheme of PIL's ImagingResample):
// a horizontal pass into a float buffer over only the rows and columns the crop keeps, then a
// vertical pass, rounding to nearest.
#include "io/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace alexnet::io {
namespace {

// Weights of one axis for a run of output positions: output o reads inputs
// first[o] .. first[o] + count[o] - 1 with weights[o * taps + k].
struct AxisFilter {
  int64_t taps = 0;
  std::vector<int64_t> first, count;
  std::vector<float> weights;
};

// Output positions [out_begin, out_begin + out_count) of an axis resampled from in_size to
// out_size. A triangle filter of radius 1 output pixel: on reduction it spans `scale` input pixels
// on each side (antialiasing); on enlargement it is bilinear interpolation. Pixel centres sit at
// half-integers; the window is clipped at the borders and renormalized, so edges are not darkened.
AxisFilter make_filter(int64_t in_size, int64_t out_size, int64_t out_begin, int64_t out_count) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;
  AxisFilter f;
  f.taps = static_cast<int64_t>(std::ceil(2.0 * support)) + 1;
  f.first.resize(static_cast<size_t>(out_count));
  f.count.resize(static_cast<size_t>(out_count));
  f.weights.assign(static_cast<size_t>(out_count * f.taps), 0.0f);
  std::vector<double> w(static_cast<size_t>(f.taps));
  for (int64_t o = 0; o < out_count; ++o) {
    const double center = (static_cast<double>(out_begin + o) + 0.5) * scale;
    const int64_t lo =
        std::max<int64_t>(static_cast<int64_t>(std::floor(center - support + 0.5)), 0);
    const int64_t hi =
        std::min<int64_t>(static_cast<int64_t>(std::floor(center + support + 0.5)), in_size);
    int64_t n = std::min(hi - lo, f.taps);
    double sum = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      double t = (static_cast<double>(lo + k) + 0.5 - center) / filter_scale;
      w[static_cast<size_t>(k)] = std::max(0.0, 1.0 - std::abs(t));
      sum += w[static_cast<size_t>(k)];
    }
    // Zero taps at the ends cost time only (at scale 1 every window is {1, 0}): drop them.
    int64_t skip = 0;
    while (n > 1 && w[static_cast<size_t>(n - 1)] == 0.0) --n;
    while (skip < n - 1 && w[static_cast<size_t>(skip)] == 0.0) ++skip;
    f.first[static_cast<size_t>(o)] = lo + skip;
    f.count[static_cast<size_t>(o)] = n - skip;
    for (int64_t k = skip; k < n; ++k) {
      f.weights[static_cast<size_t>(o * f.taps + k - skip)] =
          sum > 0.0 ? static_cast<float>(w[static_cast<size_t>(k)] / sum) : 0.0f;
    }
  }
  return f;
}

// Horizontal pass over rows [row_begin, row_end) of src into tmp [rows, out_width, channels].
// kChannels > 0 fixes the channel count at compile time: the taps then run in the outer loop with
// one accumulator per channel, independent chains the CPU overlaps (3x faster for RGB). Every
// path sums the taps of a channel in the same order, so the result does not depend on the path.
template <int kChannels>
void horizontal_pass(const uint8_t* src, int64_t width, int64_t runtime_channels, int64_t row_begin,
                     int64_t row_end, const AxisFilter& fx, float* tmp) {
  const int64_t channels = kChannels > 0 ? kChannels : runtime_channels;
  const auto out_width = static_cast<int64_t>(fx.first.size());
  for (int64_t y = row_begin; y < row_end; ++y) {
    const uint8_t* row = src + y * width * channels;
    float* out = tmp + (y - row_begin) * out_width * channels;
    for (int64_t o = 0; o < out_width; ++o) {
      const uint8_t* in = row + fx.first[static_cast<size_t>(o)] * channels;
      const float* w = fx.weights.data() + o * fx.taps;
      const int64_t n = fx.count[static_cast<size_t>(o)];
      if constexpr (kChannels > 0) {
        float acc[kChannels] = {};
        for (int64_t k = 0; k < n; ++k) {
          const float wk = w[k];
          for (int c = 0; c < kChannels; ++c)
            acc[c] += wk * static_cast<float>(in[k * kChannels + c]);
        }
        for (int c = 0; c < kChannels; ++c) out[o * kChannels + c] = acc[c];
      } else {
        for (int64_t c = 0; c < channels; ++c) {
          float acc = 0.0f;
          for (int64_t k = 0; k < n; ++k) acc += w[k] * static_cast<float>(in[k * channels + c]);
          out[o * channels + c] = acc;
        }
      }
    }
  }
}

int64_t scaled_long_side(int64_t long_side, int64_t short_side, int64_t size) {
  const double exact =
      static_cast<double>(long_side) * static_cast<double>(size) / static_cast<double>(short_side);
  return std::max<int64_t>(size, static_cast<int64_t>(std::llround(exact)));
}

// acc = w * in and acc += w * in over a row; __restrict__ lets the compiler vectorize them.
void scale_row(float* __restrict__ acc, const float* __restrict__ in, float w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] = w * in[i];
}
void add_scaled_row(float* __restrict__ acc, const float* __restrict__ in, float w, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += w * in[i];
}

// Round to nearest and clamp, as min/max rather than branches so that the row loop vectorizes.
uint8_t to_pixel(float v) {
  return static_cast<uint8_t>(static_cast<int>(std::min(std::max(v + 0.5f, 0.0f), 255.0f)));
}

}  // namespace

void resize_shorter_and_center_crop(const uint8_t* src, int64_t height, int64_t width,
                                    int64_t channels, int64_t size, uint8_t* dst) {
  if (height <= 0 || width <= 0 || channels <= 0 || size <= 0) {
    throw std::invalid_argument("resize_shorter_and_center_crop: bad dimensions " +
                                std::to_string(height) + " x " + std::to_string(width) + " x " +
                                std::to_string(channels) + " -> " + std::to_string(size));
  }
  if (height == size && width == size) {
    std::memcpy(dst, src, static_cast<size_t>(size * size * channels));
    return;
  }
  // The shorter side becomes `size`; the longer one keeps the aspect ratio, rounded.
  int64_t new_height = size, new_width = size;
  if (height <= width) {
    new_width = scaled_long_side(width, height, size);
  } else {
    new_height = scaled_long_side(height, width, size);
  }
  const AxisFilter fx = make_filter(width, new_width, (new_width - size) / 2, size);
  const AxisFilter fy = make_filter(height, new_height, (new_height - size) / 2, size);

  // Only the input rows that some kept output row reads go through the horizontal pass.
  int64_t row_begin = height, row_end = 0;
  for (int64_t o = 0; o < size; ++o) {
    row_begin = std::min(row_begin, fy.first[static_cast<size_t>(o)]);
    row_end =
        std::max(row_end, fy.first[static_cast<size_t>(o)] + fy.count[static_cast<size_t>(o)]);
  }
  const int64_t row_floats = size * channels;
  // Every element is written by the horizontal pass: no need to zero it first.
  std::unique_ptr<float[]> tmp(new float[static_cast<size_t>((row_end - row_begin) * row_floats)]);
  if (channels == 3) {
    horizontal_pass<3>(src, width, channels, row_begin, row_end, fx, tmp.get());
  } else if (channels == 1) {
    horizontal_pass<1>(src, width, channels, row_begin, row_end, fx, tmp.get());
  } else if (channels == 4) {
    horizontal_pass<4>(src, width, channels, row_begin, row_end, fx, tmp.get());
  } else {
    horizontal_pass<0>(src, width, channels, row_begin, row_end, fx, tmp.get());
  }

  // Vertical pass: whole rows at a time, a weighted sum of contiguous float rows.
  std::vector<float> acc(static_cast<size_t>(row_floats));
  for (int64_t o = 0; o < size; ++o) {
    const float* w = fy.weights.data() + o * fy.taps;
    const float* in = tmp.get() + (fy.first[static_cast<size_t>(o)] - row_begin) * row_floats;
    scale_row(acc.data(), in, w[0], row_floats);
    for (int64_t k = 1; k < fy.count[static_cast<size_t>(o)]; ++k) {
      add_scaled_row(acc.data(), in + k * row_floats, w[k], row_floats);
    }
    uint8_t* out = dst + o * row_floats;
    for (int64_t i = 0; i < row_floats; ++i) out[i] = to_pixel(acc[static_cast<size_t>(i)]);
  }
}

}  // namespace alexnet::io
