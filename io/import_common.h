// What every importer shares: output options, the train/validation split, the shuffled write
// order (so that blocks of consecutive samples are class-mixed for the reader), and writing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/shard_writer.h"

namespace alexnet::io {

struct ImportOptions {
  std::string out;         // output prefix
  int64_t shard_size = 0;  // samples per shard; 0: about 1 GiB of pixels
  Compression compression = Compression::kNone;
  int gzip_level = 4;
  double val_fraction = 0.0;  // > 0: PREFIX-train-NNNNN.h5 and PREFIX-val-NNNNN.h5
  bool shuffle = true;        // write in an order permuted by seed
  uint64_t seed = 0;
  bool progress = true;
};

struct ImportResult {
  std::vector<std::string> train_files, val_files;  // val_files empty without a split
  int64_t train_count = 0, val_count = 0;
};

// The order in which samples 0..n-1 are written: permuted by seed (or kept), then split into the
// training part and the last val_fraction of it as the validation part.
struct ImportOrder {
  std::vector<int64_t> train, val;
};
ImportOrder import_order(int64_t n, const ImportOptions& options);

// Output prefixes for the two parts: PREFIX (no split) or PREFIX-train / PREFIX-val.
std::string train_prefix(const ImportOptions& options);
std::string val_prefix(const ImportOptions& options);

// Finishes both parts (val may be null) once everything is written, and reports them.
ImportResult finish_parts(ShardWriter& train, ShardWriter* val);

// Writes an in-memory dataset (images [n, H, W, C] uint8, labels [n]).
ImportResult write_in_memory(const std::vector<uint8_t>& images, const std::vector<int32_t>& labels,
                             int64_t height, int64_t width, int64_t channels, int64_t num_classes,
                             const std::vector<std::string>& class_names, const std::string& source,
                             const ImportOptions& options);

// A ShardWriterConfig for one part.
ShardWriterConfig writer_config(const std::string& prefix, int64_t height, int64_t width,
                                int64_t channels, int64_t num_classes,
                                const std::vector<std::string>& class_names,
                                const std::string& source, const ImportOptions& options);

}  // namespace alexnet::io
