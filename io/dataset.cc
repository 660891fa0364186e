// Opening, validating and reading a sharded HDF5 dataset.
#include "io/dataset.h"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "io/dataset_format.h"
#include "io/error.h"
#include "io/hdf5_util.h"
#include "io/limits.h"

namespace alexnet::io {

struct Dataset::Files {
  std::vector<h5::Handle> files;
  std::vector<h5::Handle> images;
};

namespace {

using limits::kMaxClasses;

// An existing file is taken as named even when its name has glob characters ("run[1].h5").
bool is_glob(const std::string& s) {
  std::error_code ec;
  return s.find_first_of("*?[") != std::string::npos && !std::filesystem::exists(s, ec);
}

std::string join(const std::vector<hsize_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Everything one shard file says about itself, before cross-shard checks.
struct ShardHeader {
  ShardInfo info;
  int64_t height = 0, width = 0, channels = 0;
  bool has_num_classes = false;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<double> mean, std;
  std::string source;
};

// A dataset claiming `bytes` of data must have them in the file: stored in full when unfiltered,
// at least 1/kMaxCompressionRatio of them when compressed, and never more than the file's size.
// Checked before anything of that size is allocated or read.
void check_storage(hid_t dataset, const char* name, long double bytes, hsize_t file_size,
                   const std::string& what) {
  const std::string context = "reading the storage size of '" + std::string(name) + "' in " + what;
  // Data kept outside the file cannot be checked against it (and may be missing there).
  {
    h5::Handle plist(ALEXNET_H5_CHECK(H5Dget_create_plist(dataset), context));
    const bool is_virtual = H5Pget_layout(plist.get()) == H5D_VIRTUAL;
    if (is_virtual || ALEXNET_H5_CHECK(H5Pget_external_count(plist.get()), context) > 0) {
      throw DataError(what + ": dataset '" + name + "' is " +
                      (is_virtual ? "a virtual dataset" : "stored in external files") +
                      ", which the reader does not accept (copy it into a regular dataset)");
    }
  }
  const auto stored = static_cast<long double>(h5::storage_size(dataset, context));
  const bool filtered = h5::has_filters(dataset, context);
  if (stored > static_cast<long double>(file_size)) {
    throw DataError(what + ": dataset '" + name + "' claims " +
                    std::to_string(static_cast<long long>(stored)) +
                    " stored bytes, more than the file's " + std::to_string(file_size) +
                    " (truncated or corrupt)");
  }
  if (bytes > stored * (filtered ? limits::kMaxCompressionRatio : 1)) {
    throw DataError(what + ": dataset '" + name + "' claims " +
                    std::to_string(static_cast<long long>(bytes)) + " bytes of data but the file " +
                    "stores only " + std::to_string(static_cast<long long>(stored)) +
                    (filtered ? " compressed" : "") + " (truncated, corrupt or never written)");
  }
}

ShardHeader read_header(const std::string& path, hid_t file, hid_t images,
                        std::vector<int32_t>& labels_out) {
  ShardHeader h;
  h.info.path = path;
  const std::string what = "'" + path + "'";
  hsize_t file_size = 0;
  ALEXNET_H5_CHECK(H5Fget_filesize(file, &file_size), "reading the size of " + what);

  // images: uint8 [N, H, W, C]
  h5::Handle image_type(
      ALEXNET_H5_CHECK(H5Dget_type(images), "reading the type of images in " + what));
  if (H5Tget_class(image_type.get()) != H5T_INTEGER || H5Tget_size(image_type.get()) != 1 ||
      H5Tget_sign(image_type.get()) != H5T_SGN_NONE) {
    throw DataError(what + ": dataset 'images' must be uint8, found " +
                    h5::type_name(image_type.get()));
  }
  auto dims = h5::dataset_shape(images, "reading the shape of images in " + what);
  if (dims.size() != 4) {
    throw DataError(what + ": dataset 'images' must be 4-D [N, H, W, C], found shape " +
                    join(dims));
  }
  if (dims[1] == 0 || dims[2] == 0 || dims[3] == 0) {
    throw DataError(what + ": dataset 'images' has an empty image shape " + join(dims));
  }
  if (dims[0] == 0) throw DataError(what + ": dataset 'images' holds no samples");
  if (dims[1] > limits::kMaxImageSide || dims[2] > limits::kMaxImageSide) {
    throw DataError(what + ": dataset 'images' has images of " + std::to_string(dims[1]) + "x" +
                    std::to_string(dims[2]) + ", larger than the limit of " +
                    std::to_string(limits::kMaxImageSide) + " per side");
  }
  if (!limits::valid_channels(static_cast<int64_t>(dims[3]))) {
    throw DataError(what + ": dataset 'images' has " + std::to_string(dims[3]) +
                    " channels, expected 1 or 3 (shape " + join(dims) + ")");
  }
  if (dims[0] > static_cast<hsize_t>(limits::kMaxShardSamples)) {
    throw DataError(what + ": dataset 'images' claims " + std::to_string(dims[0]) +
                    " samples, more than the limit of " + std::to_string(limits::kMaxShardSamples) +
                    " per file");
  }
  h.info.num_samples = static_cast<int64_t>(dims[0]);
  h.height = static_cast<int64_t>(dims[1]);
  h.width = static_cast<int64_t>(dims[2]);
  h.channels = static_cast<int64_t>(dims[3]);
  auto chunk = h5::chunk_shape(images, "reading the layout of " + what);
  if (!chunk.empty()) {
    long double chunk_bytes = 1;
    for (hsize_t d : chunk) chunk_bytes *= static_cast<long double>(d);
    if (chunk.size() != 4 || chunk_bytes > limits::kMaxChunkBytes) {
      throw DataError(what + ": dataset 'images' has chunks of " + join(chunk) +
                      ", more than the limit of " + std::to_string(limits::kMaxChunkBytes) +
                      " bytes");
    }
    // A chunk may be longer than an extensible dataset; a block never is.
    h.info.chunk_rows = std::min(static_cast<int64_t>(chunk[0]), h.info.num_samples);
  }
  const int64_t sample_bytes = h.height * h.width * h.channels;
  check_storage(
      images, format::kImages,
      static_cast<long double>(h.info.num_samples) * static_cast<long double>(sample_bytes),
      file_size, what);
  h.info.filters = h5::filter_names(images, "reading the filters of " + what);

  // labels: integer [N]
  h5::Handle labels = h5::open_dataset(file, format::kLabels, path);
  h5::Handle label_type(
      ALEXNET_H5_CHECK(H5Dget_type(labels.get()), "reading the type of labels in " + what));
  if (H5Tget_class(label_type.get()) != H5T_INTEGER) {
    throw DataError(what + ": dataset 'labels' must be integer (int32), found " +
                    h5::type_name(label_type.get()));
  }
  auto label_dims = h5::dataset_shape(labels.get(), "reading the shape of labels in " + what);
  if (label_dims.size() != 1 || label_dims[0] != dims[0]) {
    throw DataError(what + ": dataset 'labels' must have shape [" + std::to_string(dims[0]) +
                    "] to match images, found " + join(label_dims));
  }
  check_storage(
      labels.get(), format::kLabels,
      static_cast<long double>(dims[0]) * static_cast<long double>(H5Tget_size(label_type.get())),
      file_size, what);
  // Read as int64 so that no stored value is clamped before the range check (HDF5 saturates
  // on narrowing conversions), then narrow; in pieces, so that the int64 copy stays small.
  const std::string label_context = "reading labels of " + what;
  h5::Handle label_space(ALEXNET_H5_CHECK(H5Dget_space(labels.get()), label_context));
  constexpr hsize_t kPiece = hsize_t{1} << 20;
  std::vector<int64_t> wide(static_cast<size_t>(std::min(kPiece, dims[0])));
  labels_out.reserve(labels_out.size() + dims[0]);
  for (hsize_t start = 0; start < dims[0]; start += kPiece) {
    hsize_t count = std::min(kPiece, dims[0] - start);
    ALEXNET_H5_CHECK(
        H5Sselect_hyperslab(label_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr),
        label_context);
    h5::Handle mem_space(ALEXNET_H5_CHECK(H5Screate_simple(1, &count, nullptr), label_context));
    ALEXNET_H5_CHECK(H5Dread(labels.get(), H5T_NATIVE_INT64, mem_space.get(), label_space.get(),
                             H5P_DEFAULT, wide.data()),
                     label_context);
    for (size_t k = 0; k < count; ++k) {
      if (wide[k] < 0 || wide[k] >= kMaxClasses) {
        throw DataError(what + ": label " + std::to_string(wide[k]) + " at index " +
                        std::to_string(start + k) + " is out of range [0, " +
                        std::to_string(kMaxClasses) + ")");
      }
      labels_out.push_back(static_cast<int32_t>(wide[k]));
    }
  }

  // Attributes on the root group, all optional.
  h5::Handle root(ALEXNET_H5_CHECK(H5Gopen2(file, "/", H5P_DEFAULT), "opening / in " + what));
  if (h5::has_attribute(root.get(), format::kNumClasses)) {
    h.has_num_classes = true;
    h.num_classes = h5::read_int_attribute(root.get(), format::kNumClasses, what);
    if (h.num_classes <= 0 || h.num_classes > kMaxClasses) {
      throw DataError(what + ": attribute 'num_classes' must be in [1, " +
                      std::to_string(kMaxClasses) + "], found " + std::to_string(h.num_classes));
    }
  }
  if (h5::has_attribute(root.get(), format::kClassNames)) {
    h.class_names = h5::read_string_array_attribute(root.get(), format::kClassNames, what,
                                                    kMaxClasses, limits::kMaxNameBytes);
  }
  if (h5::has_attribute(root.get(), format::kMean)) {
    h.mean = h5::read_float_array_attribute(root.get(), format::kMean, what, 64);
  }
  if (h5::has_attribute(root.get(), format::kStd)) {
    h.std = h5::read_float_array_attribute(root.get(), format::kStd, what, 64);
  }
  if (h5::has_attribute(root.get(), format::kSource)) {
    h.source = h5::read_string_attribute(root.get(), format::kSource, what,
                                         limits::kMaxStringAttributeBytes);
  }
  auto check_per_channel = [&](const std::vector<double>& v, const char* name) {
    if (!v.empty() && static_cast<int64_t>(v.size()) != h.channels) {
      throw DataError(what + ": attribute '" + name + "' has " + std::to_string(v.size()) +
                      " values for " + std::to_string(h.channels) + " channels");
    }
  };
  check_per_channel(h.mean, format::kMean);
  check_per_channel(h.std, format::kStd);
  for (double s : h.std) {
    if (!(s > 0) || !std::isfinite(s)) {
      throw DataError(what + ": attribute 'std' must be positive and finite in every channel");
    }
  }
  for (double v : h.mean) {
    if (!std::isfinite(v)) throw DataError(what + ": attribute 'mean' must be finite");
  }
  if (h.has_num_classes && !h.class_names.empty() &&
      static_cast<int64_t>(h.class_names.size()) != h.num_classes) {
    throw DataError(what + ": attribute 'class_names' has " + std::to_string(h.class_names.size()) +
                    " names for " + std::to_string(h.num_classes) + " classes");
  }
  return h;
}

}  // namespace

std::vector<std::string> expand_paths(const std::vector<std::string>& paths_or_globs) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& arg : paths_or_globs) {
    std::vector<std::string> matches;
    if (is_glob(arg)) {
      glob_t g{};
      int rc = ::glob(arg.c_str(), 0, nullptr, &g);
      if (rc == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
      }
      globfree(&g);
      if (matches.empty()) throw DataError("'" + arg + "': no file matches this pattern");
      std::sort(matches.begin(), matches.end());
    } else {
      std::error_code ec;
      if (!std::filesystem::exists(arg, ec)) throw DataError("'" + arg + "': no such file");
      matches.push_back(arg);
    }
    for (auto& m : matches) {
      // (An unresolvable path, e.g. behind a folder without permission, is compared as given;
      // opening it reports the problem.)
      std::error_code ec;
      std::string key = std::filesystem::weakly_canonical(m, ec).string();
      if (ec) key = m;
      if (!seen.insert(key).second) throw DataError("'" + m + "': listed twice in the dataset");
      out.push_back(std::move(m));
    }
  }
  if (out.empty()) throw DataError("no dataset files given");
  return out;
}

Dataset::Dataset() : files_(std::make_unique<Files>()) {}
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

Dataset Dataset::open(const std::vector<std::string>& paths_or_globs) {
  h5::quiet_errors();
  Dataset ds;
  std::vector<ShardHeader> headers;
  for (const auto& path : expand_paths(paths_or_globs)) {
    h5::Handle file = h5::open_file_readonly(path);
    // No chunk cache for images: the reader reads whole chunks once each, and uncached chunks
    // go straight from the file into our buffer instead of through the cache (one copy less).
    h5::Handle access(ALEXNET_H5_CHECK(H5Pcreate(H5P_DATASET_ACCESS), "opening '" + path + "'"));
    ALEXNET_H5_CHECK(H5Pset_chunk_cache(access.get(), 0, 0, 1.0), "opening '" + path + "'");
    h5::Handle images = h5::open_dataset(file.get(), format::kImages, path, access.get());
    ShardHeader h = read_header(path, file.get(), images.get(), ds.labels_);
    h.info.first_index = ds.size_;
    ds.size_ += h.info.num_samples;
    ds.files_->files.push_back(std::move(file));
    ds.files_->images.push_back(std::move(images));
    headers.push_back(std::move(h));
  }

  // All shards agree with the first on image shape and classes.
  const ShardHeader& first = headers.front();
  auto disagree = [&](const ShardHeader& h, const std::string& what) {
    return DataError("'" + h.info.path + "': " + what + " disagrees with '" + first.info.path +
                     "'");
  };
  for (const auto& h : headers) {
    if (h.height != first.height || h.width != first.width || h.channels != first.channels) {
      throw disagree(h, "image shape " + std::to_string(h.height) + "x" + std::to_string(h.width) +
                            "x" + std::to_string(h.channels));
    }
    if (h.has_num_classes != first.has_num_classes || h.num_classes != first.num_classes) {
      throw disagree(h, "num_classes");
    }
    if (h.class_names != first.class_names) throw disagree(h, "class_names");
    if (h.mean.empty() != first.mean.empty() || h.std.empty() != first.std.empty()) {
      throw disagree(h, "presence of mean/std attributes");
    }
  }

  DatasetMeta& m = ds.meta_;
  m.height = first.height;
  m.width = first.width;
  m.channels = first.channels;
  m.class_names = first.class_names;
  m.source = first.source;

  // Dataset-wide mean and std from the shards' own, weighted by their sizes (identical where
  // the shards were written together, as alexnet-data does).
  if (!first.mean.empty() && !first.std.empty() && ds.size_ > 0) {
    auto c = static_cast<size_t>(m.channels);
    std::vector<double> sum(c, 0.0), sumsq(c, 0.0);
    for (const auto& h : headers) {
      for (size_t k = 0; k < c; ++k) {
        double n = static_cast<double>(h.info.num_samples);
        sum[k] += n * h.mean[k];
        sumsq[k] += n * (h.std[k] * h.std[k] + h.mean[k] * h.mean[k]);
      }
    }
    for (size_t k = 0; k < c; ++k) {
      double mean = sum[k] / static_cast<double>(ds.size_);
      double var = sumsq[k] / static_cast<double>(ds.size_) - mean * mean;
      m.mean.push_back(mean);
      m.std.push_back(std::sqrt(std::max(var, 1e-12)));
    }
  } else if (!first.mean.empty() && !first.std.empty()) {
    m.mean = first.mean;
    m.std = first.std;
  }

  // The number of classes: the attribute, else the class names, else max label + 1.
  int64_t classes = first.has_num_classes        ? first.num_classes
                    : !first.class_names.empty() ? static_cast<int64_t>(first.class_names.size())
                                                 : 0;
  int64_t max_label = -1;
  for (const auto& h : headers) {
    auto begin = ds.labels_.begin() + h.info.first_index;
    for (int64_t i = 0; i < h.info.num_samples; ++i) {
      int64_t label = begin[i];
      if (classes > 0 && label >= classes) {
        throw DataError("'" + h.info.path + "': label " + std::to_string(label) + " at index " +
                        std::to_string(i) + " is out of range [0, " + std::to_string(classes) +
                        ")");
      }
      max_label = std::max(max_label, label);
    }
  }
  m.num_classes_inferred = !first.has_num_classes;
  m.num_classes = classes > 0 ? classes : max_label + 1;
  if (!m.class_names.empty() && static_cast<int64_t>(m.class_names.size()) != m.num_classes) {
    throw DataError("'" + first.info.path + "': attribute 'class_names' has " +
                    std::to_string(m.class_names.size()) + " names for " +
                    std::to_string(m.num_classes) + " classes");
  }
  for (auto& h : headers) ds.shards_.push_back(std::move(h.info));
  return ds;
}

std::vector<int64_t> Dataset::class_histogram() const {
  std::vector<int64_t> counts(static_cast<size_t>(std::max<int64_t>(meta_.num_classes, 0)), 0);
  for (int32_t label : labels_) ++counts[static_cast<size_t>(label)];
  return counts;
}

void Dataset::read_images(size_t shard, int64_t row, int64_t count, uint8_t* dst) const {
  h5::quiet_errors();  // HDF5's error stack is per thread: this may be a loader thread
  const ShardInfo& info = shards_.at(shard);
  if (row < 0 || count < 0 || row + count > info.num_samples) {
    throw DataError("'" + info.path + "': read of rows [" + std::to_string(row) + ", " +
                    std::to_string(row + count) + ") past the end (" +
                    std::to_string(info.num_samples) + " samples)");
  }
  if (count == 0) return;
  hid_t images = files_->images[shard].get();
  const std::string what = "reading images [" + std::to_string(row) + ", " +
                           std::to_string(row + count) + ") of '" + info.path + "'";
  h5::Handle file_space(ALEXNET_H5_CHECK(H5Dget_space(images), what));
  hsize_t start[4] = {static_cast<hsize_t>(row), 0, 0, 0};
  hsize_t extent[4] = {static_cast<hsize_t>(count), static_cast<hsize_t>(meta_.height),
                       static_cast<hsize_t>(meta_.width), static_cast<hsize_t>(meta_.channels)};
  ALEXNET_H5_CHECK(
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, extent, nullptr), what);
  h5::Handle mem_space(ALEXNET_H5_CHECK(H5Screate_simple(4, extent, nullptr), what));
  ALEXNET_H5_CHECK(
      H5Dread(images, H5T_NATIVE_UINT8, mem_space.get(), file_space.get(), H5P_DEFAULT, dst), what);
}

}  // namespace alexnet::io
