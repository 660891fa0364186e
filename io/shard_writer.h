// Writes a dataset as HDF5 shards: temporary names while writing, renamed only when complete.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace alexnet::io {

enum class Compression { kNone, kGzip };
Compression parse_compression(const std::string& name);  // "none" | "gzip"; DataError otherwise

struct ShardWriterConfig {
  std::string prefix;      // shards are PREFIX-00000.h5, PREFIX-00001.h5, ...
  int64_t shard_size = 0;  // samples per shard; 0: about 1 GiB of pixels per shard
  Compression compression = Compression::kNone;
  int gzip_level = 4;
  int64_t height = 0, width = 0, channels = 0;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  // empty, or num_classes names
  std::string source;
};

// Appends samples in order; finish() writes the dataset-wide attributes (mean and std are
// computed over every pixel written) and renames the temporary files to their final names.
// If finish() is never reached (an error, an exception), the destructor removes the temporaries,
// so nothing half-written is left under the output names.
class ShardWriter {
 public:
  explicit ShardWriter(ShardWriterConfig config);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // image: H*W*C uint8, HWC. label must be in [0, num_classes).
  void add(const uint8_t* image, int32_t label);
  int64_t count() const { return count_; }
  // Returns the final shard paths. Stale shards of an earlier import under the same prefix
  // (higher numbers than written now) are removed so that PREFIX-*.h5 names exactly this dataset.
  std::vector<std::string> finish();

  static int64_t default_chunk_rows(int64_t sample_bytes);  // about 1 MiB per chunk

 private:
  struct Shard;
  void open_shard();
  void flush_chunk();
  void close_shard();

  ShardWriterConfig config_;
  int64_t sample_bytes_;
  int64_t chunk_rows_;
  std::unique_ptr<Shard> shard_;  // the shard being written
  std::vector<std::string> temp_paths_, final_paths_;
  std::vector<uint8_t> chunk_images_;  // [chunk_rows, H, W, C]
  std::vector<int32_t> chunk_labels_;
  int64_t chunk_fill_ = 0;
  int64_t count_ = 0;
  std::vector<uint64_t> channel_sum_, channel_sumsq_;
  bool finished_ = false;
};

}  // namespace alexnet::io
