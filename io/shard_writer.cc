// HDF5 shard writer: chunked, optionally gzip-compressed, atomic by rename.
#include "io/shard_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/dataset_format.h"
#include "io/error.h"
#include "io/hdf5_util.h"

namespace alexnet::io {

struct ShardWriter::Shard {
  std::string temp_path;
  h5::Handle file, images, labels;
  int64_t rows = 0;
};

namespace {

std::string shard_name(const std::string& prefix, size_t index) {
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "-%05zu.h5", index);
  return prefix + suffix;
}

// An extensible chunked dataset [0, dims...] of `type`.
h5::Handle create_extensible(hid_t file, const char* name, hid_t type,
                             const std::vector<hsize_t>& row_dims, hsize_t chunk_rows,
                             Compression compression, int level, const std::string& what) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{chunk_rows};
  for (hsize_t d : row_dims) {
    dims.push_back(d);
    max_dims.push_back(d);
    chunk.push_back(d);
  }
  int rank = static_cast<int>(dims.size());
  h5::Handle space(ALEXNET_H5_CHECK(H5Screate_simple(rank, dims.data(), max_dims.data()), what));
  h5::Handle plist(ALEXNET_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), what));
  ALEXNET_H5_CHECK(H5Pset_chunk(plist.get(), rank, chunk.data()), what);
  if (compression == Compression::kGzip) {
    ALEXNET_H5_CHECK(H5Pset_deflate(plist.get(), static_cast<unsigned>(level)), what);
  }
  return h5::Handle(ALEXNET_H5_CHECK(
      H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT), what));
}

// Appends `rows` rows from `data` to an extensible dataset holding `old_rows` rows.
void append_rows(hid_t dataset, hid_t mem_type, int64_t old_rows, int64_t rows,
                 const std::vector<hsize_t>& row_dims, const void* data, const std::string& what) {
  std::vector<hsize_t> new_dims{static_cast<hsize_t>(old_rows + rows)};
  std::vector<hsize_t> start{static_cast<hsize_t>(old_rows)}, count{static_cast<hsize_t>(rows)};
  for (hsize_t d : row_dims) {
    new_dims.push_back(d);
    start.push_back(0);
    count.push_back(d);
  }
  ALEXNET_H5_CHECK(H5Dset_extent(dataset, new_dims.data()), what);
  h5::Handle file_space(ALEXNET_H5_CHECK(H5Dget_space(dataset), what));
  ALEXNET_H5_CHECK(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                       count.data(), nullptr),
                   what);
  int rank = static_cast<int>(count.size());
  h5::Handle mem_space(ALEXNET_H5_CHECK(H5Screate_simple(rank, count.data(), nullptr), what));
  ALEXNET_H5_CHECK(
      H5Dwrite(dataset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, data), what);
}

}  // namespace

Compression parse_compression(const std::string& name) {
  if (name == "none") return Compression::kNone;
  if (name == "gzip") return Compression::kGzip;
  throw DataError("unknown compression '" + name + "' (expected none or gzip)");
}

int64_t ShardWriter::default_chunk_rows(int64_t sample_bytes) {
  return std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(1, sample_bytes));
}

ShardWriter::ShardWriter(ShardWriterConfig config) : config_(std::move(config)) {
  h5::quiet_errors();
  if (config_.prefix.empty()) throw DataError("no output prefix given");
  if (config_.height <= 0 || config_.width <= 0 || config_.channels <= 0) {
    throw DataError("'" + config_.prefix + "': image shape must be positive");
  }
  if (config_.num_classes <= 0) throw DataError("'" + config_.prefix + "': no classes");
  if (!config_.class_names.empty() &&
      static_cast<int64_t>(config_.class_names.size()) != config_.num_classes) {
    throw DataError("'" + config_.prefix + "': " + std::to_string(config_.class_names.size()) +
                    " class names for " + std::to_string(config_.num_classes) + " classes");
  }
  if (config_.gzip_level < 0 || config_.gzip_level > 9) {
    throw DataError("gzip level must be 0-9, got " + std::to_string(config_.gzip_level));
  }
  auto parent = std::filesystem::path(config_.prefix).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    throw DataError("'" + config_.prefix + "': output folder '" + parent.string() +
                    "' does not exist");
  }
  sample_bytes_ = config_.height * config_.width * config_.channels;
  chunk_rows_ = default_chunk_rows(sample_bytes_);
  if (config_.shard_size <= 0) {
    config_.shard_size = std::max<int64_t>(1, (int64_t{1} << 30) / sample_bytes_);
  }
  if (config_.shard_size < chunk_rows_) chunk_rows_ = config_.shard_size;
  chunk_images_.resize(static_cast<size_t>(chunk_rows_ * sample_bytes_));
  chunk_labels_.resize(static_cast<size_t>(chunk_rows_));
  channel_sum_.assign(static_cast<size_t>(config_.channels), 0);
  channel_sumsq_.assign(static_cast<size_t>(config_.channels), 0);
}

ShardWriter::~ShardWriter() {
  if (finished_) return;
  shard_.reset();
  std::error_code ec;  // never throw from a destructor
  for (const auto& p : temp_paths_) std::filesystem::remove(p, ec);
}

void ShardWriter::open_shard() {
  auto shard = std::make_unique<Shard>();
  size_t index = final_paths_.size();
  std::string final_path = shard_name(config_.prefix, index);
  shard->temp_path = final_path + ".tmp-" + std::to_string(::getpid());
  temp_paths_.push_back(shard->temp_path);
  final_paths_.push_back(final_path);
  const std::string what = "creating '" + shard->temp_path + "'";
  shard->file = h5::create_file(shard->temp_path);
  std::vector<hsize_t> row{static_cast<hsize_t>(config_.height),
                           static_cast<hsize_t>(config_.width),
                           static_cast<hsize_t>(config_.channels)};
  shard->images = create_extensible(shard->file.get(), format::kImages, H5T_STD_U8LE, row,
                                    static_cast<hsize_t>(chunk_rows_), config_.compression,
                                    config_.gzip_level, what);
  shard->labels = create_extensible(shard->file.get(), format::kLabels, H5T_STD_I32LE, {},
                                    static_cast<hsize_t>(std::max<int64_t>(chunk_rows_, 4096)),
                                    config_.compression, config_.gzip_level, what);
  shard_ = std::move(shard);
}

void ShardWriter::add(const uint8_t* image, int32_t label) {
  if (finished_) throw std::logic_error("ShardWriter::add after finish");
  if (label < 0 || label >= config_.num_classes) {
    throw DataError("'" + config_.prefix + "': label " + std::to_string(label) + " of sample " +
                    std::to_string(count_) + " is out of range [0, " +
                    std::to_string(config_.num_classes) + ")");
  }
  std::copy(image, image + sample_bytes_, chunk_images_.data() + chunk_fill_ * sample_bytes_);
  chunk_labels_[static_cast<size_t>(chunk_fill_)] = label;
  // Exact integer sums per channel: mean and std without rounding drift over a billion pixels.
  const auto channels = static_cast<size_t>(config_.channels);
  for (int64_t i = 0; i < sample_bytes_; i += config_.channels) {
    for (size_t c = 0; c < channels; ++c) {
      uint64_t v = image[i + static_cast<int64_t>(c)];
      channel_sum_[c] += v;
      channel_sumsq_[c] += v * v;
    }
  }
  ++chunk_fill_;
  ++count_;
  bool shard_full = shard_ && shard_->rows + chunk_fill_ >= config_.shard_size;
  if (chunk_fill_ == chunk_rows_ || shard_full) flush_chunk();
}

void ShardWriter::flush_chunk() {
  if (chunk_fill_ == 0) return;
  if (!shard_) open_shard();
  const std::string what = "writing '" + shard_->temp_path + "'";
  std::vector<hsize_t> row{static_cast<hsize_t>(config_.height),
                           static_cast<hsize_t>(config_.width),
                           static_cast<hsize_t>(config_.channels)};
  append_rows(shard_->images.get(), H5T_NATIVE_UINT8, shard_->rows, chunk_fill_, row,
              chunk_images_.data(), what);
  append_rows(shard_->labels.get(), H5T_NATIVE_INT32, shard_->rows, chunk_fill_, {},
              chunk_labels_.data(), what);
  shard_->rows += chunk_fill_;
  chunk_fill_ = 0;
  if (shard_->rows >= config_.shard_size) close_shard();
}

void ShardWriter::close_shard() {
  if (!shard_) return;
  const std::string what = "closing '" + shard_->temp_path + "'";
  ALEXNET_H5_CHECK(H5Fflush(shard_->file.get(), H5F_SCOPE_LOCAL), what);
  shard_.reset();
}

std::vector<std::string> ShardWriter::finish() {
  if (finished_) throw std::logic_error("ShardWriter::finish called twice");
  if (count_ == 0) throw DataError("'" + config_.prefix + "': no samples to write");
  flush_chunk();
  close_shard();

  std::vector<double> mean, stdev;
  const double pixels = static_cast<double>(count_) * static_cast<double>(config_.height) *
                        static_cast<double>(config_.width);
  for (size_t c = 0; c < channel_sum_.size(); ++c) {
    double m = static_cast<double>(channel_sum_[c]) / pixels;
    double var = static_cast<double>(channel_sumsq_[c]) / pixels - m * m;
    mean.push_back(m);
    stdev.push_back(std::sqrt(std::max(var, 1e-6)));  // a constant channel still divides safely
  }
  for (const auto& temp : temp_paths_) {
    h5::Handle file(ALEXNET_H5_CHECK(H5Fopen(temp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT),
                                     "reopening '" + temp + "' to write attributes"));
    h5::Handle root(
        ALEXNET_H5_CHECK(H5Gopen2(file.get(), "/", H5P_DEFAULT), "opening / of " + temp));
    h5::write_string_attribute(root.get(), format::kFormat, format::kFormatName);
    h5::write_int_attribute(root.get(), format::kNumClasses, config_.num_classes);
    if (!config_.class_names.empty()) {
      h5::write_string_array_attribute(root.get(), format::kClassNames, config_.class_names);
    }
    h5::write_float_array_attribute(root.get(), format::kMean, mean);
    h5::write_float_array_attribute(root.get(), format::kStd, stdev);
    h5::write_string_attribute(root.get(), format::kSource, config_.source);
  }
  // Everything is complete on disk: only now do the final names appear.
  for (size_t i = 0; i < temp_paths_.size(); ++i) {
    std::error_code ec;
    std::filesystem::rename(temp_paths_[i], final_paths_[i], ec);
    if (ec) {
      throw DataError("'" + final_paths_[i] +
                      "': cannot rename from temporary file: " + ec.message());
    }
  }
  finished_ = true;
  // Remove stale higher-numbered shards of an earlier, larger import under this prefix.
  for (size_t i = final_paths_.size();; ++i) {
    std::string stale = shard_name(config_.prefix, i);
    std::error_code ec;
    if (!std::filesystem::remove(stale, ec)) break;
  }
  return final_paths_;
}

}  // namespace alexnet::io
