// MNIST-family IDX files (images idx3-ubyte, labels idx1-ubyte, gzip-compressed or plain).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/import_common.h"

namespace alexnet::io {

struct IdxImages {
  int64_t count = 0, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [count, height, width]
};

// Reads and validates (magic, type, dimensions, length); DataError naming the file otherwise.
IdxImages read_idx_images(const std::string& path);
std::vector<int32_t> read_idx_labels(const std::string& path);

// Imports one images/labels pair. num_classes <= 0: max label + 1.
ImportResult import_idx(const std::string& images_path, const std::string& labels_path,
                        int64_t num_classes, const std::vector<std::string>& class_names,
                        const ImportOptions& options);

}  // namespace alexnet::io
