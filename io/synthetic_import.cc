// Synthetic datasets: class patterns plus noise, streamed into shards.
#include "io/synthetic_import.h"

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/limits.h"

namespace alexnet::io {

ImportResult import_synthetic(const SyntheticOptions& s, const ImportOptions& options) {
  if (s.count < 1 || s.size < 1 || s.channels < 1 || s.num_classes < 1) {
    throw DataError("synthetic: count, size, channels and classes must be positive");
  }
  if (s.size > limits::kMaxImageSide || !limits::valid_channels(s.channels) ||
      s.num_classes > limits::kMaxClasses) {
    throw DataError("synthetic: size must be at most " + std::to_string(limits::kMaxImageSide) +
                    ", channels 1 or 3, classes at most " + std::to_string(limits::kMaxClasses));
  }
  const int64_t pixels = s.size * s.size * s.channels;
  const std::string source = "synthetic " + std::to_string(s.count) + " x " +
                             std::to_string(s.size) + "x" + std::to_string(s.size) + "x" +
                             std::to_string(s.channels) + ", " + std::to_string(s.num_classes) +
                             " classes, seed " + std::to_string(options.seed);
  std::mt19937_64 rng(options.seed);
  // One pattern per class, drawn lazily would change with the order: draw them all up front, at
  // a coarse 8x8 resolution (upsampled), so that 1000 classes at 256 px cost 200 KB, not 200 MB.
  constexpr int64_t kCoarse = 8;
  std::vector<uint8_t> patterns(
      static_cast<size_t>(s.num_classes * kCoarse * kCoarse * s.channels));
  for (uint8_t& p : patterns) p = static_cast<uint8_t>(rng() & 0xff);

  const ImportOrder order = import_order(s.count, options);
  ShardWriter train(writer_config(train_prefix(options), s.size, s.size, s.channels, s.num_classes,
                                  {}, source, options));
  std::unique_ptr<ShardWriter> val;
  if (!order.val.empty()) {
    val = std::make_unique<ShardWriter>(writer_config(
        val_prefix(options), s.size, s.size, s.channels, s.num_classes, {}, source, options));
  }
  std::vector<uint8_t> image(static_cast<size_t>(pixels));
  // Sample i's label and noise come from its own seed, so the write order does not change them.
  auto write = [&](ShardWriter& writer, int64_t i) {
    std::mt19937_64 sample_rng(options.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i));
    const auto label = static_cast<int32_t>(sample_rng() % static_cast<uint64_t>(s.num_classes));
    const uint8_t* pattern = patterns.data() + label * kCoarse * kCoarse * s.channels;
    for (int64_t y = 0; y < s.size; ++y) {
      for (int64_t x = 0; x < s.size; ++x) {
        const int64_t cy = y * kCoarse / s.size, cx = x * kCoarse / s.size;
        for (int64_t c = 0; c < s.channels; ++c) {
          const int noise = static_cast<int>(sample_rng() & 0x3f) - 32;
          const int v = pattern[(cy * kCoarse + cx) * s.channels + c] + noise;
          image[static_cast<size_t>((y * s.size + x) * s.channels + c)] =
              static_cast<uint8_t>(v < 0     ? 0
                                   : v > 255 ? 255
                                             : v);
        }
      }
    }
    writer.add(image.data(), label);
  };
  for (int64_t i : order.train) write(train, i);
  for (int64_t i : order.val) write(*val, i);
  return finish_parts(train, val.get());
}

}  // namespace alexnet::io
