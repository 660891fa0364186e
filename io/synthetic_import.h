// Synthetic datasets: random images of a chosen size and class count, for benchmarks and scaling
// runs where no real data is at hand (a GPU machine without network, a new cluster). Each class
// has its own random pattern and every sample is that pattern blended with fresh noise, so that a
// model can learn it and the loss curve means something.
#pragma once

#include <cstdint>

#include "io/import_common.h"

namespace alexnet::io {

struct SyntheticOptions {
  int64_t count = 1024;  // samples, before a validation split
  int64_t size = 256;    // height and width
  int64_t channels = 3;
  int64_t num_classes = 1000;
};

// Writes the dataset as import_* would (options.out, split, shards); the same seed gives the
// same bytes. Throws DataError for non-positive sizes.
ImportResult import_synthetic(const SyntheticOptions& synthetic, const ImportOptions& options);

}  // namespace alexnet::io
