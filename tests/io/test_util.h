// Helpers shared by the io tests: a temporary folder and synthetic datasets whose pixels encode
// each sample's global index, so any mix-up of samples, labels or order is visible.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/shard_writer.h"
#include "tests/temp_dir.h"

namespace alexnet::io::testing {

// A fresh folder under the system's temporary folder, removed with everything in it.
using test::TempDir;

// Pixel (y, x, c) of sample `index`: a function of all four, so a sample shows who it is.
inline uint8_t pattern_pixel(int64_t index, int64_t y, int64_t x, int64_t c) {
  return static_cast<uint8_t>((index * 7 + y * 3 + x * 5 + c * 11 + (index >> 8)) & 0xFF);
}
inline int32_t pattern_label(int64_t index, int64_t classes) {
  return static_cast<int32_t>((index * 3) % classes);
}
inline std::vector<uint8_t> pattern_image(int64_t index, int64_t h, int64_t w, int64_t c) {
  std::vector<uint8_t> img(static_cast<size_t>(h * w * c));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t k = 0; k < c; ++k)
        img[static_cast<size_t>((y * w + x) * c + k)] = pattern_pixel(index, y, x, k);
  return img;
}

// Writes samples 0..n-1 in order as PREFIX-NNNNN.h5 shards; returns the shard paths.
inline std::vector<std::string> write_pattern_dataset(
    const std::string& prefix, int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes,
    int64_t shard_size, Compression compression = Compression::kNone) {
  ShardWriterConfig config;
  config.prefix = prefix;
  config.shard_size = shard_size;
  config.compression = compression;
  config.height = h;
  config.width = w;
  config.channels = c;
  config.num_classes = classes;
  for (int64_t k = 0; k < classes; ++k) config.class_names.push_back("class" + std::to_string(k));
  config.source = "test pattern";
  ShardWriter writer(config);
  for (int64_t i = 0; i < n; ++i)
    writer.add(pattern_image(i, h, w, c).data(), pattern_label(i, classes));
  return writer.finish();
}

}  // namespace alexnet::io::testing
