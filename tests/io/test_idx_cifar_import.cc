// import_idx and import_cifar: every pixel and label arrives, in order or shuffled, with the right
// attributes, shards and split; malformed inputs are rejected with a one-line DataError.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "io/cifar_import.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/idx_import.h"
#include "io/import_common.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::pattern_image;
using testing::pattern_label;
using testing::pattern_pixel;
using testing::TempDir;

using Bytes = std::vector<uint8_t>;

// ---- Writing inputs -----------------------------------------------------------------------------

void put_be32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// Writes `data` as is, or gzip-compressed with zlib when `gzip` is set.
void write_file(const std::string& path, const Bytes& data, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (f == nullptr) throw std::runtime_error("gzopen failed: " + path);
    int written = data.empty() ? 0 : gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
    if (gzclose(f) != Z_OK || written != static_cast<int>(data.size())) {
      throw std::runtime_error("gzwrite failed: " + path);
    }
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    if (!out) throw std::runtime_error("write failed: " + path);
  }
}

// IDX images (magic 0x00000803, then count, rows, columns, big-endian) holding the pattern.
Bytes idx_images(int64_t n, int64_t h, int64_t w) {
  Bytes out{0, 0, 0x08, 3};
  put_be32(out, static_cast<uint32_t>(n));
  put_be32(out, static_cast<uint32_t>(h));
  put_be32(out, static_cast<uint32_t>(w));
  for (int64_t i = 0; i < n; ++i) {
    Bytes img = pattern_image(i, h, w, 1);
    out.insert(out.end(), img.begin(), img.end());
  }
  return out;
}

// IDX labels (magic 0x00000801, then count).
Bytes idx_labels(const std::vector<int32_t>& labels) {
  Bytes out{0, 0, 0x08, 1};
  put_be32(out, static_cast<uint32_t>(labels.size()));
  for (int32_t l : labels) out.push_back(static_cast<uint8_t>(l));
  return out;
}

std::vector<int32_t> pattern_labels(int64_t n, int64_t classes) {
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(pattern_label(i, classes));
  return labels;
}

// ---- Reading outputs ----------------------------------------------------------------------------

struct Sample {
  Bytes image;
  int32_t label;
  // A plain loop: GCC 12's std::vector<uint8_t> <=> (memcmp) raises a false -Wstringop-overread.
  bool operator<(const Sample& o) const {
    for (size_t i = 0; i < image.size() && i < o.image.size(); ++i) {
      if (image[i] != o.image[i]) return image[i] < o.image[i];
    }
    if (image.size() != o.image.size()) return image.size() < o.image.size();
    return label < o.label;
  }
  bool operator==(const Sample& o) const { return image == o.image && label == o.label; }
};

// Every sample of the dataset, in global index order.
std::vector<Sample> read_all(const Dataset& ds) {
  std::vector<Sample> out;
  for (size_t s = 0; s < ds.shards().size(); ++s) {
    const ShardInfo& info = ds.shards()[s];
    Bytes pixels(static_cast<size_t>(info.num_samples) * ds.sample_bytes());
    ds.read_images(s, 0, info.num_samples, pixels.data());
    for (int64_t i = 0; i < info.num_samples; ++i) {
      auto begin = pixels.begin() + static_cast<std::ptrdiff_t>(i * ds.sample_bytes());
      out.push_back({Bytes(begin, begin + static_cast<std::ptrdiff_t>(ds.sample_bytes())),
                     ds.labels()[static_cast<size_t>(info.first_index + i)]});
    }
  }
  return out;
}

std::vector<Sample> pattern_samples(int64_t n, int64_t h, int64_t w, int64_t c, int64_t classes) {
  std::vector<Sample> out;
  for (int64_t i = 0; i < n; ++i)
    out.push_back({pattern_image(i, h, w, c), pattern_label(i, classes)});
  return out;
}

std::vector<Sample> sorted(std::vector<Sample> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Per-channel mean and population standard deviation over every pixel, two-pass in double, as
// numpy's images.mean(axis=(0,1,2)) and images.std(axis=(0,1,2)) compute them.
std::pair<std::vector<double>, std::vector<double>> numpy_mean_std(const std::vector<Sample>& s,
                                                                   int64_t channels) {
  const auto c = static_cast<size_t>(channels);
  std::vector<double> sum(c, 0.0), mean(c), sq(c, 0.0), stdev(c);
  double pixels = 0;
  for (const auto& x : s) {
    for (size_t i = 0; i < x.image.size(); ++i) sum[i % c] += x.image[i];
    pixels += static_cast<double>(x.image.size() / c);
  }
  for (size_t k = 0; k < c; ++k) mean[k] = sum[k] / pixels;
  for (const auto& x : s) {
    for (size_t i = 0; i < x.image.size(); ++i) {
      double d = x.image[i] - mean[i % c];
      sq[i % c] += d * d;
    }
  }
  for (size_t k = 0; k < c; ++k) stdev[k] = std::sqrt(sq[k] / pixels);
  return {mean, stdev};
}

// The stored statistics are exact integer sums divided once, so they agree with the two-pass
// double computation up to a few ulps; 1e-9 relative leaves a wide margin and still catches any
// real mistake (a wrong channel, a missed sample, a sample-vs-pixel count), which are >= 1e-3.
void expect_stats(const Dataset& ds, const std::vector<Sample>& samples) {
  auto [mean, stdev] = numpy_mean_std(samples, ds.meta().channels);
  ASSERT_EQ(ds.meta().mean.size(), mean.size());
  ASSERT_EQ(ds.meta().std.size(), stdev.size());
  for (size_t k = 0; k < mean.size(); ++k) {
    EXPECT_NEAR(ds.meta().mean[k], mean[k], 1e-9 * std::abs(mean[k])) << "channel " << k;
    EXPECT_NEAR(ds.meta().std[k], stdev[k], 1e-9 * std::abs(stdev[k])) << "channel " << k;
  }
}

std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

ImportOptions quiet_options(const std::string& out) {
  ImportOptions o;
  o.out = out;
  o.progress = false;
  return o;
}

// Runs `f`, expects a one-line DataError containing each of `parts`.
template <typename F>
void expect_data_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no DataError thrown";
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    for (const auto& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "lacks '" << part << "': " << message;
    }
  }
}

// ---- IDX ----------------------------------------------------------------------------------------

// Odd sizes, so that no row/column/sample confusion can go unnoticed.
constexpr int64_t kN = 53, kH = 7, kW = 5, kClasses = 10;

class IdxImport : public ::testing::Test {
 protected:
  void SetUp() override {
    images_ = dir_ / "images-idx3-ubyte.gz";
    labels_ = dir_ / "labels-idx1-ubyte.gz";
    write_file(images_, idx_images(kN, kH, kW), true);
    write_file(labels_, idx_labels(pattern_labels(kN, kClasses)), true);
  }
  TempDir dir_;
  std::string images_, labels_;
};

TEST_F(IdxImport, InOrderWithoutShuffle) {
  ImportOptions o = quiet_options(dir_ / "out");
  o.shuffle = false;
  ImportResult r = import_idx(images_, labels_, 0, {}, o);
  EXPECT_EQ(r.train_count, kN);
  EXPECT_EQ(r.val_count, 0);
  ASSERT_EQ(r.train_files, std::vector<std::string>{dir_ / "out-00000.h5"});
  EXPECT_TRUE(r.val_files.empty());

  Dataset ds = Dataset::open(r.train_files);
  EXPECT_EQ(ds.size(), kN);
  EXPECT_EQ(ds.meta().height, kH);
  EXPECT_EQ(ds.meta().width, kW);
  EXPECT_EQ(ds.meta().channels, 1);
  auto expected = pattern_samples(kN, kH, kW, 1, kClasses);
  auto got = read_all(ds);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].image, expected[i].image) << "sample " << i;
    EXPECT_EQ(got[i].label, expected[i].label) << "sample " << i;
  }
}

TEST_F(IdxImport, ShuffledKeepsEverySampleWithItsLabel) {
  ImportOptions o = quiet_options(dir_ / "out");
  o.seed = 17;
  ImportResult r = import_idx(images_, labels_, 0, {}, o);
  auto got = read_all(Dataset::open(r.train_files));
  auto expected = pattern_samples(kN, kH, kW, 1, kClasses);
  // The order changed (the identity has probability 1/53! under a working shuffle) ...
  EXPECT_NE(got, expected);
  // ... but the set of (image, label) pairs did not.
  EXPECT_EQ(sorted(got), sorted(expected));

  // The same seed gives the same order; another seed another.
  ImportOptions same = quiet_options(dir_ / "same");
  same.seed = 17;
  EXPECT_EQ(read_all(Dataset::open(import_idx(images_, labels_, 0, {}, same).train_files)), got);
  ImportOptions other = quiet_options(dir_ / "other");
  other.seed = 18;
  EXPECT_NE(read_all(Dataset::open(import_idx(images_, labels_, 0, {}, other).train_files)), got);
}

TEST_F(IdxImport, PlainUncompressedFiles) {
  const std::string images = dir_ / "plain-images", labels = dir_ / "plain-labels";
  write_file(images, idx_images(kN, kH, kW), false);
  write_file(labels, idx_labels(pattern_labels(kN, kClasses)), false);
  ImportOptions o = quiet_options(dir_ / "out");
  o.shuffle = false;
  auto got = read_all(Dataset::open(import_idx(images, labels, 0, {}, o).train_files));
  EXPECT_EQ(got, pattern_samples(kN, kH, kW, 1, kClasses));
}

TEST_F(IdxImport, Attributes) {
  std::vector<std::string> names;
  for (int64_t k = 0; k < kClasses; ++k) names.push_back("name " + std::to_string(k));
  ImportResult r = import_idx(images_, labels_, 0, names, quiet_options(dir_ / "out"));
  Dataset ds = Dataset::open(r.train_files);
  EXPECT_EQ(ds.meta().num_classes, kClasses);
  EXPECT_FALSE(ds.meta().num_classes_inferred);  // written as an attribute by the importer
  EXPECT_EQ(ds.meta().class_names, names);
  EXPECT_NE(ds.meta().source.find("images-idx3-ubyte.gz"), std::string::npos) << ds.meta().source;
  expect_stats(ds, pattern_samples(kN, kH, kW, 1, kClasses));
}

TEST_F(IdxImport, NumClassesFromLabelsOrGiven) {
  // Labels 0..9 of 10 classes: without names or a count, max label + 1.
  Dataset inferred =
      Dataset::open(import_idx(images_, labels_, 0, {}, quiet_options(dir_ / "a")).train_files);
  EXPECT_EQ(inferred.meta().num_classes, kClasses);
  EXPECT_TRUE(inferred.meta().class_names.empty());
  // More classes than appear in the labels is fine.
  Dataset given =
      Dataset::open(import_idx(images_, labels_, 12, {}, quiet_options(dir_ / "b")).train_files);
  EXPECT_EQ(given.meta().num_classes, 12);
  EXPECT_EQ(given.class_histogram().size(), 12u);
}

TEST_F(IdxImport, ShardSizeSplitsIntoFiles) {
  ImportOptions o = quiet_options(dir_ / "out");
  o.shard_size = 16;
  o.shuffle = false;
  ImportResult r = import_idx(images_, labels_, 0, {}, o);
  // 53 = 16 + 16 + 16 + 5.
  ASSERT_EQ(r.train_files.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r.train_files[i], dir_ / ("out-0000" + std::to_string(i) + ".h5"));
  }
  Dataset ds = Dataset::open({dir_ / "out-*.h5"});
  ASSERT_EQ(ds.shards().size(), 4u);
  const int64_t sizes[] = {16, 16, 16, 5};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(ds.shards()[i].num_samples, sizes[i]) << "shard " << i;
    EXPECT_EQ(ds.shards()[i].first_index, static_cast<int64_t>(i) * 16) << "shard " << i;
  }
  EXPECT_EQ(read_all(ds), pattern_samples(kN, kH, kW, 1, kClasses));
  // Statistics are dataset-wide, not per shard.
  expect_stats(ds, pattern_samples(kN, kH, kW, 1, kClasses));
}

TEST_F(IdxImport, ValidationSplitSizesAndDisjointness) {
  ImportOptions o = quiet_options(dir_ / "out");
  o.val_fraction = 0.2;
  o.shard_size = 20;
  ImportResult r = import_idx(images_, labels_, 0, {}, o);
  // round(0.2 * 53) = 11 validation samples.
  EXPECT_EQ(r.val_count, 11);
  EXPECT_EQ(r.train_count, kN - 11);
  EXPECT_EQ(r.train_files.size(), 3u);  // 42 = 20 + 20 + 2
  EXPECT_EQ(r.val_files, std::vector<std::string>{dir_ / "out-val-00000.h5"});
  EXPECT_EQ(r.train_files.front(), dir_ / "out-train-00000.h5");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "out-00000.h5"));

  auto train = read_all(Dataset::open({dir_ / "out-train-*.h5"}));
  auto val = read_all(Dataset::open({dir_ / "out-val-*.h5"}));
  EXPECT_EQ(static_cast<int64_t>(train.size()), kN - 11);
  EXPECT_EQ(static_cast<int64_t>(val.size()), 11);
  // Every image is distinct, so disjoint images mean disjoint samples.
  // Keyed as strings: GCC 12 raises a false -Wstringop-overread on std::set<std::vector<uint8_t>>.
  auto key = [](const Bytes& b) { return std::string(b.begin(), b.end()); };
  std::set<std::string> train_images, val_images;
  for (const auto& s : train) train_images.insert(key(s.image));
  for (const auto& s : val) {
    val_images.insert(key(s.image));
    EXPECT_EQ(train_images.count(key(s.image)), 0u) << "a validation sample is also in training";
  }
  EXPECT_EQ(train_images.size(), train.size());
  EXPECT_EQ(val_images.size(), val.size());
  auto all = train;
  all.insert(all.end(), val.begin(), val.end());
  EXPECT_EQ(sorted(all), sorted(pattern_samples(kN, kH, kW, 1, kClasses)));
}

TEST_F(IdxImport, GzipCompressedShards) {
  ImportOptions o = quiet_options(dir_ / "out");
  o.compression = Compression::kGzip;
  o.gzip_level = 6;
  o.shuffle = false;
  Dataset ds = Dataset::open(import_idx(images_, labels_, 0, {}, o).train_files);
  ASSERT_EQ(ds.shards().size(), 1u);
  EXPECT_EQ(ds.shards()[0].filters, std::vector<std::string>{"gzip(6)"});
  EXPECT_EQ(read_all(ds), pattern_samples(kN, kH, kW, 1, kClasses));
}

TEST_F(IdxImport, RejectsBadInputWithoutWritingAnything) {
  const std::string out = dir_ / "out";
  auto attempt = [&](const std::string& images, const std::string& labels, int64_t classes = 0) {
    return [=] { import_idx(images, labels, classes, {}, quiet_options(out)); };
  };

  // Wrong magic: a labels file where images are expected, and vice versa (number of dimensions),
  // and a type other than unsigned byte.
  expect_data_error(attempt(labels_, labels_), {labels_, "dimensions"});
  expect_data_error(attempt(images_, images_), {images_, "dimensions"});
  Bytes wrong_type = idx_images(kN, kH, kW);
  wrong_type[2] = 0x0D;  // float
  const std::string float_images = dir_ / "float-images";
  write_file(float_images, wrong_type, true);
  expect_data_error(attempt(float_images, labels_), {float_images, "magic"});
  const std::string text = dir_ / "text";
  write_file(text, Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'}, false);
  expect_data_error(attempt(text, labels_), {text, "magic"});

  // Truncated pixel data: the header promises 53 images, the file holds 52 and a half.
  Bytes truncated = idx_images(kN, kH, kW);
  truncated.resize(truncated.size() - static_cast<size_t>(kH * kW + kH * kW / 2));
  const std::string short_images = dir_ / "short-images.gz";
  write_file(short_images, truncated, true);
  expect_data_error(attempt(short_images, labels_), {short_images, "truncated"});
  // Truncated header.
  const std::string stub = dir_ / "stub";
  write_file(stub, Bytes{0, 0, 8, 3, 0, 0}, false);
  expect_data_error(attempt(stub, labels_), {stub, "truncated"});
  // A gzip stream cut short: the decompressor sees the end of the file mid-stream.
  Bytes gz;
  {
    const std::string whole = dir_ / "whole.gz";
    write_file(whole, idx_images(kN, kH, kW), true);
    std::ifstream in(whole, std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
    std::filesystem::remove(whole);
  }
  gz.resize(gz.size() / 2);
  const std::string cut = dir_ / "cut.gz";
  write_file(cut, gz, false);
  expect_data_error(attempt(cut, labels_), {cut});
  // Extra bytes after the data.
  Bytes extra = idx_images(kN, kH, kW);
  extra.push_back(0);
  const std::string long_images = dir_ / "long-images";
  write_file(long_images, extra, false);
  expect_data_error(attempt(long_images, labels_), {long_images, "extra bytes"});

  // Labels count differs from images count.
  const std::string few_labels = dir_ / "few-labels";
  write_file(few_labels, idx_labels(pattern_labels(kN - 1, kClasses)), true);
  expect_data_error(attempt(images_, few_labels), {few_labels, images_, "52 labels for 53"});

  // A label not below the number of classes given.
  std::vector<int32_t> labels = pattern_labels(kN, 5);
  labels[30] = 5;
  const std::string big_label = dir_ / "big-label";
  write_file(big_label, idx_labels(labels), true);
  expect_data_error(attempt(images_, big_label, 5), {big_label, "label 5", "index 30", "range"});

  // Missing files.
  const std::string missing = dir_ / "missing.gz";
  expect_data_error(attempt(missing, labels_), {missing, "no such file"});
  expect_data_error(attempt(images_, missing), {missing, "no such file"});

  // No output at all, not even temporaries.
  std::vector<std::string> after;
  for (const auto& name : files_in(dir_.path())) {
    if (name.rfind("out", 0) == 0) after.push_back(name);
  }
  EXPECT_TRUE(after.empty()) << ::testing::PrintToString(after);
}

// Sizes in a header are checked against the file (and the limits in io/limits.h) before anything
// is allocated: these headers claim gigabytes in files of a few bytes, and fail at once.
TEST_F(IdxImport, HeaderSizesAreCheckedAgainstTheFile) {
  const std::string out = dir_ / "out";
  auto attempt = [&](const std::string& images, const std::string& labels) {
    return [=] { import_idx(images, labels, 0, {}, quiet_options(out)); };
  };
  auto labels_claiming = [](uint32_t n) {
    Bytes b{0, 0, 0x08, 1};
    put_be32(b, n);
    b.resize(b.size() + 32, 1);
    return b;
  };
  // Plain: the file must be exactly as long as the header says.
  const std::string plain = dir_ / "labels-2g";
  write_file(plain, labels_claiming(2000000000), false);
  expect_data_error(attempt(images_, plain), {plain, "truncated", "2000000000 labels"});
  // gzip: at most 1032 bytes out per byte in (deflate's limit).
  const std::string gz = dir_ / "labels-2g.gz";
  write_file(gz, labels_claiming(2000000000), true);
  expect_data_error(attempt(images_, gz), {gz, "truncated", "gzip file"});
  // Beyond the per-file limit of samples.
  const std::string huge = dir_ / "labels-4g";
  write_file(huge, labels_claiming(0xFFFFFFFFu), false);
  expect_data_error(attempt(images_, huge), {huge, "4294967295", "limit"});

  auto images_claiming = [](uint32_t n, uint32_t h, uint32_t w) {
    Bytes b{0, 0, 0x08, 3};
    put_be32(b, n);
    put_be32(b, h);
    put_be32(b, w);
    b.resize(b.size() + 64, 0);
    return b;
  };
  const std::string wide = dir_ / "images-60000";
  write_file(wide, images_claiming(1, 60000, 60000), false);
  expect_data_error(attempt(wide, labels_), {wide, "60000x60000", "limit"});
  const std::string many = dir_ / "images-1g.gz";
  write_file(many, images_claiming(1000000000, 28, 28), true);
  expect_data_error(attempt(many, labels_), {many, "truncated", "1000000000 images"});
}

TEST_F(IdxImport, EmptyFilesAndFoldersAreNamed) {
  const std::string out = dir_ / "out";
  const std::string empty = dir_ / "empty";
  write_file(empty, {}, false);
  expect_data_error([&] { import_idx(images_, empty, 0, {}, quiet_options(out)); },
                    {empty, "empty file"});
  const std::string folder = dir_ / "folder";
  std::filesystem::create_directory(folder);
  expect_data_error([&] { import_idx(folder, labels_, 0, {}, quiet_options(out)); },
                    {folder, "folder"});
  expect_data_error([&] { read_idx_labels(folder); }, {folder, "folder"});
}

TEST_F(IdxImport, LabelCountIsCheckedBeforeThePixelsAreRead) {
  // The images file is truncated, but the mismatch in counts is what is reported: the header is
  // compared before the data is read.
  Bytes images = idx_images(kN + 1, kH, kW);
  images.resize(images.size() - 3);
  const std::string path = dir_ / "images-plus-one";
  write_file(path, images, true);
  expect_data_error([&] { import_idx(path, labels_, 0, {}, quiet_options(dir_ / "out")); },
                    {labels_, path, "53 labels for 54 images"});
}

// ---- CIFAR --------------------------------------------------------------------------------------

constexpr int64_t kSide = 32, kPlane = kSide * kSide;

// CIFAR records for samples first..first+n-1: [label bytes..., R plane, G plane, B plane], each
// plane row-major; the pixels are the HWC pattern, so a CHW/HWC mix-up shows.
Bytes cifar_records(int64_t first, int64_t n, const std::vector<std::vector<uint8_t>>& labels) {
  Bytes out;
  for (int64_t i = first; i < first + n; ++i) {
    for (const auto& l : labels) out.push_back(l[static_cast<size_t>(i)]);
    for (int64_t c = 0; c < 3; ++c) {
      for (int64_t p = 0; p < kPlane; ++p) out.push_back(pattern_pixel(i, p / kSide, p % kSide, c));
    }
  }
  return out;
}

class CifarImport : public ::testing::Test {
 protected:
  // Labels of sample i: CIFAR-10 i % 10; CIFAR-100 coarse (i * 3) % 20 and fine (i * 7) % 100.
  void SetUp() override {
    for (int64_t i = 0; i < 40; ++i) {
      label10_.push_back(static_cast<uint8_t>(i % 10));
      coarse_.push_back(static_cast<uint8_t>((i * 3) % 20));
      fine_.push_back(static_cast<uint8_t>((i * 7) % 100));
    }
  }
  // Samples first..first+n-1 with the given labels, pixels in HWC.
  std::vector<Sample> expected(int64_t first, int64_t n, const std::vector<uint8_t>& labels) const {
    std::vector<Sample> out;
    for (int64_t i = first; i < first + n; ++i) {
      out.push_back({pattern_image(i, kSide, kSide, 3), labels[static_cast<size_t>(i)]});
    }
    return out;
  }
  ImportOptions in_order(const std::string& name) const {
    ImportOptions o = quiet_options(dir_ / name);
    o.shuffle = false;
    return o;
  }
  TempDir dir_;
  std::vector<uint8_t> label10_, coarse_, fine_;
};

TEST_F(CifarImport, Cifar10PixelsInHwcAndLabels) {
  // Two batches: their samples follow each other in file order.
  const std::string b1 = dir_ / "data_batch_1.bin", b2 = dir_ / "data_batch_2.bin";
  write_file(b1, cifar_records(0, 7, {label10_}), false);
  write_file(b2, cifar_records(7, 5, {label10_}), false);
  ASSERT_EQ(std::filesystem::file_size(b1), 7u * 3073);
  ImportResult r = import_cifar({b1, b2}, CifarLabels::kFine, {}, in_order("out"));
  EXPECT_EQ(r.train_count, 12);
  Dataset ds = Dataset::open(r.train_files);
  EXPECT_EQ(ds.meta().height, 32);
  EXPECT_EQ(ds.meta().width, 32);
  EXPECT_EQ(ds.meta().channels, 3);
  EXPECT_EQ(ds.meta().num_classes, 10);
  EXPECT_TRUE(ds.meta().class_names.empty());  // no batches.meta.txt here
  auto got = read_all(ds);
  auto want = expected(0, 12, label10_);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].label, want[i].label) << "sample " << i;
    ASSERT_EQ(got[i].image, want[i].image) << "sample " << i;
  }
  expect_stats(ds, want);
}

TEST_F(CifarImport, Cifar10ClassNamesFromBatchesMeta) {
  const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                       "dog",      "frog",       "horse", "ship", "truck"};
  std::ofstream meta(dir_ / "batches.meta.txt");
  // As shipped: one name per line, then a blank line; a CRLF line and a trailing space as well.
  for (size_t k = 0; k < names.size(); ++k) meta << names[k] << (k == 3 ? " \r\n" : "\n");
  meta << "\n";
  meta.close();
  const std::string batch = dir_ / "test_batch.bin";
  write_file(batch, cifar_records(0, 10, {label10_}), false);
  Dataset ds =
      Dataset::open(import_cifar({batch}, CifarLabels::kFine, {}, in_order("out")).train_files);
  EXPECT_EQ(ds.meta().class_names, names);
  // Names given explicitly win over the file.
  std::vector<std::string> mine;
  for (int k = 0; k < 10; ++k) {
    mine.emplace_back("c");  // not "c" + to_string(k): GCC 12 raises a false -Wrestrict on it
    mine.back() += std::to_string(k);
  }
  Dataset given =
      Dataset::open(import_cifar({batch}, CifarLabels::kFine, mine, in_order("given")).train_files);
  EXPECT_EQ(given.meta().class_names, mine);
}

TEST_F(CifarImport, Cifar100FineAndCoarseLabels) {
  const std::string batch = dir_ / "train.bin";
  write_file(batch, cifar_records(0, 23, {coarse_, fine_}), false);
  ASSERT_EQ(std::filesystem::file_size(batch), 23u * 3074);

  Dataset fine =
      Dataset::open(import_cifar({batch}, CifarLabels::kFine, {}, in_order("fine")).train_files);
  EXPECT_EQ(fine.meta().num_classes, 100);
  EXPECT_EQ(read_all(fine), expected(0, 23, fine_));

  Dataset coarse = Dataset::open(
      import_cifar({batch}, CifarLabels::kCoarse, {}, in_order("coarse")).train_files);
  EXPECT_EQ(coarse.meta().num_classes, 20);
  EXPECT_EQ(read_all(coarse), expected(0, 23, coarse_));
}

TEST_F(CifarImport, Cifar100ClassNamesFromLabelNameFiles) {
  std::ofstream fine_names(dir_ / "fine_label_names.txt"),
      coarse_names(dir_ / "coarse_label_names.txt");
  std::vector<std::string> fine, coarse;
  for (int k = 0; k < 100; ++k) fine.push_back("fine" + std::to_string(k));
  for (int k = 0; k < 20; ++k) coarse.push_back("coarse" + std::to_string(k));
  for (const auto& n : fine) fine_names << n << "\n";
  for (const auto& n : coarse) coarse_names << n << "\n";
  fine_names.close();
  coarse_names.close();
  const std::string batch = dir_ / "test.bin";
  write_file(batch, cifar_records(0, 5, {coarse_, fine_}), false);
  EXPECT_EQ(Dataset::open(import_cifar({batch}, CifarLabels::kFine, {}, in_order("f")).train_files)
                .meta()
                .class_names,
            fine);
  EXPECT_EQ(
      Dataset::open(import_cifar({batch}, CifarLabels::kCoarse, {}, in_order("c")).train_files)
          .meta()
          .class_names,
      coarse);
}

TEST_F(CifarImport, ShuffledKeepsEverySample) {
  const std::string batch = dir_ / "data_batch_1.bin";
  write_file(batch, cifar_records(0, 30, {label10_}), false);
  ImportOptions o = quiet_options(dir_ / "out");
  o.seed = 5;
  auto got = read_all(Dataset::open(import_cifar({batch}, CifarLabels::kFine, {}, o).train_files));
  auto want = expected(0, 30, label10_);
  EXPECT_NE(got, want);  // the identity has probability 1/30! under a working shuffle
  EXPECT_EQ(sorted(got), sorted(want));
}

TEST_F(CifarImport, RejectsBadInput) {
  auto attempt = [&](std::vector<std::string> files, CifarLabels which = CifarLabels::kFine) {
    return [=, this] { import_cifar(files, which, {}, quiet_options(dir_ / "out")); };
  };
  // A size that is not a whole number of records of either kind.
  Bytes data = cifar_records(0, 2, {label10_});
  data.resize(data.size() + 5);
  const std::string odd = dir_ / "odd.bin";
  write_file(odd, data, false);
  expect_data_error(attempt({odd}), {odd, "size " + std::to_string(data.size()), "records"});
  const std::string empty = dir_ / "empty.bin";
  write_file(empty, {}, false);
  expect_data_error(attempt({empty}), {empty, "size 0"});

  // CIFAR-10 and CIFAR-100 batches in one import.
  const std::string ten = dir_ / "ten.bin", hundred = dir_ / "hundred.bin";
  write_file(ten, cifar_records(0, 2, {label10_}), false);
  write_file(hundred, cifar_records(0, 2, {coarse_, fine_}), false);
  expect_data_error(attempt({ten, hundred}), {hundred, "mixes"});

  // Labels out of range: 10 in CIFAR-10, 20 as a coarse CIFAR-100 label.
  std::vector<uint8_t> bad10 = label10_;
  bad10[1] = 10;
  const std::string bad_ten = dir_ / "bad-ten.bin";
  write_file(bad_ten, cifar_records(0, 3, {bad10}), false);
  expect_data_error(attempt({bad_ten}), {bad_ten, "label 10", "record 1", "range"});
  std::vector<uint8_t> bad_coarse = coarse_;
  bad_coarse[2] = 20;
  const std::string bad_hundred = dir_ / "bad-hundred.bin";
  write_file(bad_hundred, cifar_records(0, 3, {bad_coarse, fine_}), false);
  expect_data_error(attempt({bad_hundred}, CifarLabels::kCoarse),
                    {bad_hundred, "label 20", "record 2", "range"});

  // Missing file; a names file with the wrong number of names.
  const std::string missing = dir_ / "missing.bin";
  expect_data_error(attempt({missing}), {missing, "no such file"});
  std::ofstream(dir_ / "batches.meta.txt") << "cat\ndog\n";
  expect_data_error(attempt({ten}), {dir_ / "batches.meta.txt", "2 class names for 10"});

  for (const auto& name : files_in(dir_.path())) {
    EXPECT_NE(name.rfind("out", 0), 0u) << "output written despite the error: " << name;
  }
}

}  // namespace
}  // namespace alexnet::io
