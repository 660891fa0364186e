// A dataset: one or more HDF5 shard files opened, validated and indexed as one sample sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace alexnet::io {

// What the whole dataset says about itself (agreed across shards).
struct DatasetMeta {
  int64_t height = 0, width = 0, channels = 0;
  int64_t num_classes = 0;
  bool num_classes_inferred = false;     // no attribute: max label + 1
  std::vector<std::string> class_names;  // empty where the files carry none
  std::vector<double> mean, std;         // per channel, pixel units; empty where absent
  std::string source;
};

struct ShardInfo {
  std::string path;
  int64_t num_samples = 0;
  int64_t first_index = 0;  // global index of this shard's first sample
  int64_t chunk_rows = 0;   // rows per HDF5 chunk of `images`, 0 when not chunked
  std::vector<std::string> filters;
};

// Expands each argument: a file name is kept (and must exist), a glob is expanded and sorted
// (and must match something). The same file listed twice is an error.
std::vector<std::string> expand_paths(const std::vector<std::string>& paths_or_globs);

// Opens every shard, checks the schema (images uint8 [N,H,W,C], labels integer [N], attributes
// well-typed), checks that all shards agree, loads all labels and checks them in range. Any
// problem throws DataError naming the file. Keeps the files open for reading images.
class Dataset {
 public:
  static Dataset open(const std::vector<std::string>& paths_or_globs);
  Dataset(Dataset&&) noexcept;
  Dataset& operator=(Dataset&&) noexcept;
  ~Dataset();

  const DatasetMeta& meta() const { return meta_; }
  const std::vector<ShardInfo>& shards() const { return shards_; }
  int64_t size() const { return size_; }
  size_t sample_bytes() const {
    return static_cast<size_t>(meta_.height * meta_.width * meta_.channels);
  }
  std::span<const int32_t> labels() const { return labels_; }  // in global index order
  // Number of samples per class, [num_classes].
  std::vector<int64_t> class_histogram() const;

  // Reads images rows [row, row + count) of one shard into dst (count * sample_bytes() bytes,
  // HWC per sample) in one HDF5 read. Safe to call from any one thread at a time per Dataset.
  void read_images(size_t shard, int64_t row, int64_t count, uint8_t* dst) const;

 private:
  Dataset();
  struct Files;  // open HDF5 handles
  std::unique_ptr<Files> files_;
  DatasetMeta meta_;
  std::vector<ShardInfo> shards_;
  std::vector<int32_t> labels_;
  int64_t size_ = 0;
};

}  // namespace alexnet::io
