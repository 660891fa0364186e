// Every kind of bad input to Dataset::open and ShardWriter gives a one-line DataError naming the
// file and the problem.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/dataset_format.h"
#include "io/error.h"
#include "io/hdf5_util.h"
#include "io/shard_writer.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::TempDir;
using testing::write_pattern_dataset;

// What a hand-made (possibly malformed) shard file holds. The defaults make a valid shard of 4
// samples of 5x6x3 and labels 0..3, so each test changes just the one thing it is about.
struct RawShard {
  bool has_images = true;
  hid_t image_type = H5T_STD_U8LE;
  std::vector<hsize_t> image_dims{4, 5, 6, 3};
  bool has_labels = true;
  hid_t label_type = H5T_STD_I32LE;
  std::vector<hsize_t> label_dims{4};
  std::vector<int32_t> labels{0, 1, 2, 3};  // resized to the label count, padded with 0
  std::optional<int64_t> num_classes;       // the attribute, when set
};

// Throws (failing the test) when an HDF5 call made by the test itself fails.
int64_t must(int64_t status, const char* what) {
  if (status < 0) throw std::runtime_error(std::string("test setup failed: ") + what);
  return status;
}

// Writes a dataset of `type` and shape `dims` from `data` given as `mem_type`; the values are
// converted by HDF5, so the same int buffer serves integer and float file types.
void write_dataset(hid_t file, const char* name, hid_t type, const std::vector<hsize_t>& dims,
                   hid_t mem_type, const void* data) {
  h5::Handle space(must(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        "H5Screate_simple"));
  h5::Handle dataset(
      must(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
           "H5Dcreate2"));
  must(H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite");
}

// Writes `spec` to `path` directly with the HDF5 C API, bypassing ShardWriter's own checks.
void write_raw_shard(const std::string& path, const RawShard& spec) {
  h5::quiet_errors();
  h5::Handle file(
      must(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "H5Fcreate"));
  if (spec.has_images) {
    size_t count = 1;
    for (hsize_t d : spec.image_dims) count *= d;
    std::vector<uint8_t> pixels(count);
    for (size_t i = 0; i < count; ++i) pixels[i] = static_cast<uint8_t>(i * 13);
    write_dataset(file.get(), format::kImages, spec.image_type, spec.image_dims, H5T_NATIVE_UINT8,
                  pixels.data());
  }
  if (spec.has_labels) {
    size_t count = 1;
    for (hsize_t d : spec.label_dims) count *= d;
    std::vector<int32_t> labels = spec.labels;
    labels.resize(count, 0);
    write_dataset(file.get(), format::kLabels, spec.label_type, spec.label_dims, H5T_NATIVE_INT32,
                  labels.data());
  }
  if (spec.num_classes) h5::write_int_attribute(file.get(), format::kNumClasses, *spec.num_classes);
}

// The message of the DataError that Dataset::open throws; fails the test when it throws nothing
// or something else.
std::string open_error(const std::vector<std::string>& paths) {
  try {
    Dataset::open(paths);
  } catch (const DataError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected DataError, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "Dataset::open accepted bad input";
  return "";
}

// The message is one line and contains each of `parts` (the file, a word naming the problem).
void expect_one_line_naming(const std::string& message, const std::vector<std::string>& parts) {
  EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
  for (const auto& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "message lacks '" << part << "': " << message;
  }
}

void expect_open_error(const std::vector<std::string>& paths,
                       const std::vector<std::string>& parts) {
  expect_one_line_naming(open_error(paths), parts);
}

// Regular files left in `dir`, temporaries included.
std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

TEST(DatasetBadInput, RawShardHelperWritesAValidShard) {
  // The malformed files below differ from this one in one thing only, so this must be accepted.
  TempDir dir;
  const std::string path = dir / "valid.h5";
  RawShard spec;
  spec.num_classes = 4;
  write_raw_shard(path, spec);
  Dataset ds = Dataset::open({path});
  EXPECT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.meta().num_classes, 4);
  EXPECT_EQ(ds.meta().channels, 3);
}

TEST(DatasetBadInput, MissingFile) {
  TempDir dir;
  const std::string path = dir / "missing.h5";
  expect_open_error({path}, {path, "no such file"});
}

TEST(DatasetBadInput, GlobMatchingNothing) {
  TempDir dir;
  write_pattern_dataset(dir / "data", 3, 4, 4, 1, 2, 0);  // other files exist, none match
  const std::string pattern = dir / "nothing-*.h5";
  expect_open_error({pattern}, {pattern, "no file matches"});
}

TEST(DatasetBadInput, NotAnHdf5File) {
  TempDir dir;
  const std::string path = dir / "notes.h5";
  std::ofstream(path) << "this is a text file, not HDF5\nsecond line\n";
  expect_open_error({path}, {path, "not an HDF5 file"});
}

TEST(DatasetBadInput, EmptyFile) {
  TempDir dir;
  const std::string path = dir / "empty.h5";
  std::ofstream{path};
  expect_open_error({path}, {path, "not an HDF5 file"});
}

TEST(DatasetBadInput, NoImagesDataset) {
  TempDir dir;
  const std::string path = dir / "no-images.h5";
  RawShard spec;
  spec.has_images = false;
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "no dataset 'images'"});
}

TEST(DatasetBadInput, NoLabelsDataset) {
  TempDir dir;
  const std::string path = dir / "no-labels.h5";
  RawShard spec;
  spec.has_labels = false;
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "no dataset 'labels'"});
}

TEST(DatasetBadInput, FloatImages) {
  TempDir dir;
  const std::string path = dir / "float-images.h5";
  RawShard spec;
  spec.image_type = H5T_IEEE_F32LE;
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "uint8", "float32"});
}

TEST(DatasetBadInput, SignedByteImages) {
  // Same size as uint8 but signed: pixels above 127 would come back negative.
  TempDir dir;
  const std::string path = dir / "int8-images.h5";
  RawShard spec;
  spec.image_type = H5T_STD_I8LE;
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "uint8", "int8"});
}

TEST(DatasetBadInput, ThreeDimensionalImages) {
  TempDir dir;
  const std::string path = dir / "images-3d.h5";
  RawShard spec;
  spec.image_dims = {4, 5, 6};  // grayscale without the channel axis
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "4-D", "[4, 5, 6]"});
}

TEST(DatasetBadInput, FloatLabels) {
  TempDir dir;
  const std::string path = dir / "float-labels.h5";
  RawShard spec;
  spec.label_type = H5T_IEEE_F32LE;
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "'labels'", "integer", "float32"});
}

TEST(DatasetBadInput, LabelCountDiffersFromImageCount) {
  TempDir dir;
  for (hsize_t count : {hsize_t{3}, hsize_t{5}}) {
    SCOPED_TRACE("labels: " + std::to_string(count));
    const std::string path = dir / ("labels-" + std::to_string(count) + ".h5");
    RawShard spec;
    spec.label_dims = {count};
    write_raw_shard(path, spec);
    expect_open_error({path}, {path, "'labels'", "shape", "[4]"});
  }
}

TEST(DatasetBadInput, TwoDimensionalLabels) {
  TempDir dir;
  const std::string path = dir / "labels-2d.h5";
  RawShard spec;
  spec.label_dims = {4, 1};  // the right count, but not a vector
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "'labels'", "shape"});
}

TEST(DatasetBadInput, ShardsDisagreeOnImageShape) {
  struct Case {
    const char* name;
    int64_t h, w, c;
  };
  for (const Case& k :
       {Case{"height", 5, 4, 3}, Case{"width", 4, 5, 3}, Case{"channels", 4, 4, 1}}) {
    SCOPED_TRACE(k.name);
    TempDir dir;
    auto first = write_pattern_dataset(dir / "a", 3, 4, 4, 3, 2, 0);
    auto second = write_pattern_dataset(dir / "b", 3, k.h, k.w, k.c, 2, 0);
    // The error names the odd one out and the shard it is compared with.
    expect_open_error({first[0], second[0]}, {second[0], first[0], "image shape", "disagrees"});
  }
}

TEST(DatasetBadInput, ShardsDisagreeOnNumClasses) {
  TempDir dir;
  auto first = write_pattern_dataset(dir / "a", 6, 4, 4, 1, 3, 0);
  auto second = write_pattern_dataset(dir / "b", 6, 4, 4, 1, 4, 0);
  expect_open_error({first[0], second[0]}, {second[0], "num_classes", "disagrees"});
}

TEST(DatasetBadInput, ShardsDisagreeOnPresenceOfNumClasses) {
  TempDir dir;
  const std::string with = dir / "with.h5", without = dir / "without.h5";
  RawShard spec;
  spec.num_classes = 4;
  write_raw_shard(with, spec);
  spec.num_classes.reset();
  write_raw_shard(without, spec);
  expect_open_error({with, without}, {without, "num_classes"});
}

TEST(DatasetBadInput, LabelNotBelowNumClasses) {
  TempDir dir;
  const std::string path = dir / "label-too-big.h5";
  RawShard spec;
  spec.num_classes = 3;
  spec.labels = {0, 1, 3, 2};  // 3 is one past the last class
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "label 3", "index 2", "out of range", "[0, 3)"});
}

TEST(DatasetBadInput, LabelOutOfRangeInSecondShardNamesThatShard) {
  TempDir dir;
  const std::string good = dir / "good.h5", bad = dir / "bad.h5";
  RawShard spec;
  spec.num_classes = 4;
  write_raw_shard(good, spec);
  spec.labels = {0, 1, 2, 9};
  write_raw_shard(bad, spec);
  // The index is within the file named, not the global index.
  expect_open_error({good, bad}, {bad, "label 9", "index 3", "out of range"});
}

TEST(DatasetBadInput, NegativeLabel) {
  TempDir dir;
  for (bool with_attribute : {true, false}) {
    SCOPED_TRACE(with_attribute ? "with num_classes" : "num_classes inferred");
    const std::string path = dir / (with_attribute ? "neg-attr.h5" : "neg-noattr.h5");
    RawShard spec;
    if (with_attribute) spec.num_classes = 4;
    spec.labels = {0, -1, 2, 3};
    write_raw_shard(path, spec);
    expect_open_error({path}, {path, "label -1", "index 1", "out of range"});
  }
}

TEST(DatasetBadInput, TruncatedFile) {
  TempDir dir;
  auto paths = write_pattern_dataset(dir / "data", 40, 8, 8, 3, 4, 0);
  ASSERT_EQ(paths.size(), 1u);
  const auto size = std::filesystem::file_size(paths[0]);
  std::filesystem::resize_file(paths[0], size / 2);
  expect_open_error({paths[0]}, {paths[0], "truncated"});
}

TEST(DatasetBadInput, SameFileListedTwice) {
  TempDir dir;
  auto paths = write_pattern_dataset(dir / "data", 4, 4, 4, 1, 2, 0);
  expect_open_error({paths[0], paths[0]}, {paths[0], "listed twice"});
}

TEST(DatasetBadInput, SameFileListedTwiceUnderAnotherSpelling) {
  // A glob and a path with "./" in it reach the same file: still the same file.
  TempDir dir;
  auto paths = write_pattern_dataset(dir / "data", 4, 4, 4, 1, 2, 0);
  const std::string dotted = (dir.path() / "." / "data-00000.h5").string();
  expect_open_error({paths[0], dotted}, {dotted, "listed twice"});
  expect_open_error({dir / "data-*.h5", paths[0]}, {paths[0], "listed twice"});
}

TEST(ShardWriterBadInput, RejectsOutOfRangeLabel) {
  TempDir dir;
  ShardWriterConfig config;
  config.prefix = dir / "data";
  config.height = 2;
  config.width = 3;
  config.channels = 1;
  config.num_classes = 5;
  ShardWriter writer(config);
  const std::vector<uint8_t> image(6, 7);
  writer.add(image.data(), 4);  // the last class is fine
  for (int32_t label : {5, -1, 1000}) {
    SCOPED_TRACE(label);
    try {
      writer.add(image.data(), label);
      ADD_FAILURE() << "label " << label << " accepted";
    } catch (const DataError& e) {
      expect_one_line_naming(
          e.what(), {config.prefix, "label " + std::to_string(label), "out of range", "[0, 5)"});
    }
  }
  EXPECT_EQ(writer.count(), 1);  // the rejected samples were not counted
}

TEST(ShardWriterBadInput, DestroyedWithoutFinishLeavesNoFiles) {
  TempDir dir;
  {
    ShardWriterConfig config;
    config.prefix = dir / "data";
    config.shard_size = 2;  // two whole shards and part of a third on disk below
    config.height = 5;
    config.width = 6;
    config.channels = 3;
    config.num_classes = 4;
    ShardWriter writer(config);
    for (int64_t i = 0; i < 5; ++i) {
      writer.add(testing::pattern_image(i, 5, 6, 3).data(), testing::pattern_label(i, 4));
    }
    // Temporaries exist while writing, or this test would prove nothing.
    EXPECT_FALSE(files_in(dir.path()).empty());
    for (const auto& name : files_in(dir.path())) {
      EXPECT_NE(name.find(".tmp"), std::string::npos) << "final name before finish(): " << name;
    }
  }
  EXPECT_TRUE(files_in(dir.path()).empty())
      << "left behind: " << ::testing::PrintToString(files_in(dir.path()));
}

TEST(ShardWriterBadInput, AbandonedAfterAnErrorLeavesNoFiles) {
  // The usual way finish() is never reached: a bad sample in the middle of an import.
  TempDir dir;
  ShardWriterConfig config;
  config.prefix = dir / "data";
  config.shard_size = 3;
  config.height = 4;
  config.width = 4;
  config.channels = 1;
  config.num_classes = 2;
  auto run_import = [&] {
    ShardWriter writer(config);
    for (int64_t i = 0; i < 7; ++i) writer.add(testing::pattern_image(i, 4, 4, 1).data(), 0);
    writer.add(testing::pattern_image(7, 4, 4, 1).data(), 2);
    writer.finish();
  };
  EXPECT_THROW(run_import(), DataError);
  EXPECT_TRUE(files_in(dir.path()).empty())
      << "left behind: " << ::testing::PrintToString(files_in(dir.path()));
}

TEST(ShardWriterBadInput, MissingOutputFolder) {
  TempDir dir;
  ShardWriterConfig config;
  config.prefix = dir / "no-such-folder/data";
  config.height = 4;
  config.width = 4;
  config.channels = 1;
  config.num_classes = 2;
  try {
    ShardWriter writer(config);
    ADD_FAILURE() << "ShardWriter accepted a prefix in a missing folder";
  } catch (const DataError& e) {
    expect_one_line_naming(e.what(), {dir / "no-such-folder", "does not exist"});
  }
  EXPECT_TRUE(files_in(dir.path()).empty());
}

// ---- Sizes that the file cannot hold -----------------------------------------------------------

// A chunked uint8 dataset whose chunks are never written: HDF5 stores nothing for it, whatever
// its shape claims.
void create_unwritten(hid_t file, const char* name, hid_t type, const std::vector<hsize_t>& dims,
                      const std::vector<hsize_t>& chunk, bool extensible = false) {
  std::vector<hsize_t> max_dims = dims;
  if (extensible) max_dims[0] = H5S_UNLIMITED;
  h5::Handle space(
      must(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()),
           "H5Screate_simple"));
  h5::Handle plist(must(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"));
  must(H5Pset_chunk(plist.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk");
  h5::Handle dataset(
      must(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, plist.get(), H5P_DEFAULT),
           "H5Dcreate2"));
}

// A shard with `images` and `labels` made by `make` on a fresh file.
template <typename F>
std::string make_shard(const TempDir& dir, const std::string& name, F make) {
  const std::string path = dir / name;
  h5::quiet_errors();
  h5::Handle file(
      must(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "H5Fcreate"));
  make(file.get());
  return path;
}

TEST(DatasetHostileSizes, SampleCountBeyondTheLimit) {
  TempDir dir;
  const hsize_t n = hsize_t{1} << 40;
  auto path = make_shard(dir, "2e40.h5", [&](hid_t f) {
    create_unwritten(f, format::kImages, H5T_STD_U8LE, {n, 5, 6, 3}, {1, 5, 6, 3});
    create_unwritten(f, format::kLabels, H5T_STD_I32LE, {n}, {1024});
  });
  expect_open_error({path}, {path, "1099511627776 samples", "limit"});
}

TEST(DatasetHostileSizes, SamplesTheFileDoesNotStore) {
  TempDir dir;
  const hsize_t n = hsize_t{1} << 30;
  auto path = make_shard(dir, "2e30.h5", [&](hid_t f) {
    create_unwritten(f, format::kImages, H5T_STD_U8LE, {n, 5, 6, 3}, {1024, 5, 6, 3});
    create_unwritten(f, format::kLabels, H5T_STD_I32LE, {n}, {1024});
  });
  expect_open_error({path}, {path, "'images'", "stores only 0"});
  // Images present, labels never written.
  auto labels_path = make_shard(dir, "labels-unwritten.h5", [&](hid_t f) {
    std::vector<uint8_t> pixels(4000 * 4, 1);
    write_dataset(f, format::kImages, H5T_STD_U8LE, {4000, 2, 2, 1}, H5T_NATIVE_UINT8,
                  pixels.data());
    create_unwritten(f, format::kLabels, H5T_STD_I32LE, {4000}, {1000});
  });
  expect_open_error({labels_path}, {labels_path, "'labels'", "stores only 0"});
}

TEST(DatasetHostileSizes, ImageSideChannelsAndChunkLimits) {
  TempDir dir;
  auto wide = make_shard(dir, "wide.h5", [&](hid_t f) {
    create_unwritten(f, format::kImages, H5T_STD_U8LE, {1, 60000, 60000, 1}, {1, 64, 64, 1});
    create_unwritten(f, format::kLabels, H5T_STD_I32LE, {1}, {1});
  });
  expect_open_error({wide}, {wide, "60000x60000", "limit"});

  RawShard four;
  four.image_dims = {4, 5, 6, 4};
  const std::string channels = dir / "channels.h5";
  write_raw_shard(channels, four);
  expect_open_error({channels}, {channels, "4 channels", "1 or 3"});

  auto chunky = make_shard(dir, "chunk.h5", [&](hid_t f) {
    create_unwritten(f, format::kImages, H5T_STD_U8LE, {4, 5, 6, 3}, {hsize_t{1} << 24, 5, 6, 3},
                     true);
    std::vector<int32_t> labels(4, 0);
    write_dataset(f, format::kLabels, H5T_STD_I32LE, {4}, H5T_NATIVE_INT32, labels.data());
  });
  expect_open_error({chunky}, {chunky, "chunks", "limit"});
}

TEST(DatasetHostileSizes, ZeroSamples) {
  TempDir dir;
  RawShard spec;
  spec.image_dims = {0, 5, 6, 3};
  spec.label_dims = {0};
  const std::string path = dir / "zero.h5";
  write_raw_shard(path, spec);
  expect_open_error({path}, {path, "no samples"});
}

TEST(DatasetHostileSizes, AttributesOutOfBounds) {
  TempDir dir;
  auto with = [&](const std::string& name, auto&& add) {
    const std::string path = dir / name;
    write_raw_shard(path, RawShard{});
    h5::Handle file(must(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen"));
    add(file.get());
    return path;
  };
  auto classes = with("classes.h5",
                      [](hid_t f) { h5::write_int_attribute(f, format::kNumClasses, 1000000000); });
  expect_open_error({classes}, {classes, "num_classes", "100000"});
  auto long_name = with("long-name.h5", [](hid_t f) {
    h5::write_string_array_attribute(f, format::kClassNames,
                                     {std::string(5000, 'x'), "b", "c", "d"});
  });
  expect_open_error({long_name}, {long_name, "class_names", "5000 bytes", "limit"});
  auto nan_mean = with("nan.h5", [](hid_t f) {
    h5::write_float_array_attribute(f, format::kMean, {1.0, std::nan(""), 3.0});
    h5::write_float_array_attribute(f, format::kStd, {1.0, 1.0, 1.0});
  });
  expect_open_error({nan_mean}, {nan_mean, "'mean'", "finite"});
}

}  // namespace
}  // namespace alexnet::io

namespace alexnet::io {
namespace {

// A label beyond int32 must be reported with its real value, not clamped by HDF5's conversion.
TEST(DatasetBadInput, HugeInt64LabelIsReportedNotClamped) {
  TempDir dir;
  const std::string path = dir / "huge-label.h5";
  RawShard spec;
  spec.has_labels = false;
  write_raw_shard(path, spec);
  {
    h5::Handle file(must(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen"));
    std::vector<int64_t> labels{0, 1, 3000000000, 1};
    write_dataset(file.get(), format::kLabels, H5T_STD_I64LE, {4}, H5T_NATIVE_INT64, labels.data());
  }
  expect_open_error({path}, {path, "label 3000000000", "index 2", "out of range"});
}

// class_names without num_classes: the names give the number of classes, not the labels.
TEST(DatasetBadInput, ClassNamesWithoutNumClassesSetTheClassCount) {
  TempDir dir;
  const std::string path = dir / "names.h5";
  RawShard spec;
  spec.labels = {0, 1, 2, 1};
  write_raw_shard(path, spec);
  {
    h5::Handle file(must(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "H5Fopen"));
    h5::write_string_array_attribute(file.get(), format::kClassNames, {"a", "b", "c", "d"});
  }
  Dataset ds = Dataset::open({path});
  EXPECT_EQ(ds.meta().num_classes, 4);
  EXPECT_EQ(ds.class_histogram(), (std::vector<int64_t>{1, 2, 1, 0}));
}

}  // namespace
}  // namespace alexnet::io
