// Files written by h5py (other chunking, filters, label and attribute types, or no attributes at
// all) read back exactly like the same samples written by ShardWriter.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "tests/io/test_util.h"
#include "tests/subprocess.h"

namespace alexnet::io {
namespace {

using testing::TempDir;
using testing::write_pattern_dataset;

const std::string kPython = "/usr/bin/python3";
const std::string kScript = ALEXNET_SOURCE_DIR "/tests/io/write_h5py_dataset.py";

// Odd sizes everywhere, so chunk edges fall inside images and rows.
constexpr int64_t kN = 37, kH = 13, kW = 11, kC = 3, kClasses = 5;

using test::read_text;
using test::run;
using test::shell_quote;

// All pixels and labels of a dataset, in global order.
struct Contents {
  std::vector<uint8_t> pixels;
  std::vector<int32_t> labels;
};

Contents read_all(const Dataset& ds) {
  Contents c;
  c.pixels.resize(static_cast<size_t>(ds.size()) * ds.sample_bytes());
  for (size_t s = 0; s < ds.shards().size(); ++s) {
    const ShardInfo& info = ds.shards()[s];
    ds.read_images(s, 0, info.num_samples,
                   c.pixels.data() + static_cast<size_t>(info.first_index) * ds.sample_bytes());
  }
  c.labels.assign(ds.labels().begin(), ds.labels().end());
  return c;
}

// Index of the first differing byte, or -1; keeps failure output short for 16 kB of pixels.
int64_t first_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::min(a.size(), b.size()));
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

class H5pyCompat : public ::testing::Test {
 protected:
  void SetUp() override {
    // Not a skip: without h5py this suite would silently stop guarding the format.
    ASSERT_TRUE(std::filesystem::exists(kPython))
        << kPython << " is missing; install python3 with python3-h5py and python3-numpy";
    const std::string log = dir_ / "import.log";
    ASSERT_EQ(run(shell_quote(kPython) + " -c 'import h5py, numpy'", log), 0)
        << kPython << " cannot import h5py and numpy (install python3-h5py, python3-numpy):\n"
        << read_text(log);
    ASSERT_TRUE(std::filesystem::exists(kScript)) << kScript << " is missing";
    reference_path_ = write_pattern_dataset(dir_ / "reference", kN, kH, kW, kC, kClasses, 0)[0];
  }

  // Writes the pattern with h5py into `name` with the script's `options`; returns the path.
  std::string write_h5py(const std::string& name, const std::string& options) {
    const std::string path = dir_ / name, log = dir_ / (name + ".log");
    const std::string command = shell_quote(kPython) + " " + shell_quote(kScript) + " " +
                                shell_quote(path) + " --n " + std::to_string(kN) + " --height " +
                                std::to_string(kH) + " --width " + std::to_string(kW) +
                                " --channels " + std::to_string(kC) + " --classes " +
                                std::to_string(kClasses) + " " + options;
    if (run(command, log) != 0) {
      throw std::runtime_error("h5py script failed: " + command + "\n" + read_text(log));
    }
    return path;
  }

  // The h5py file holds exactly the reference's pixels and labels, and reads the same in any
  // row range, including ranges that start and end inside chunks.
  void expect_same_samples(const Dataset& ds) {
    Dataset reference = Dataset::open({reference_path_});
    ASSERT_EQ(ds.size(), kN);
    ASSERT_EQ(ds.meta().height, kH);
    ASSERT_EQ(ds.meta().width, kW);
    ASSERT_EQ(ds.meta().channels, kC);
    Contents got = read_all(ds), want = read_all(reference);
    EXPECT_EQ(first_difference(got.pixels, want.pixels), -1) << "pixels differ at that byte";
    EXPECT_EQ(got.labels, want.labels);

    const size_t bytes = ds.sample_bytes();
    for (int64_t row = 0; row < kN; row += 2) {
      for (int64_t count : {int64_t{1}, int64_t{4}, int64_t{7}}) {
        if (row + count > kN) continue;
        std::vector<uint8_t> part(static_cast<size_t>(count) * bytes);
        ds.read_images(0, row, count, part.data());
        auto begin = want.pixels.begin() + static_cast<std::ptrdiff_t>(row * kH * kW * kC);
        std::vector<uint8_t> expected(begin, begin + static_cast<std::ptrdiff_t>(part.size()));
        EXPECT_EQ(first_difference(part, expected), -1)
            << "rows [" << row << ", " << row + count << ")";
      }
    }
  }

  TempDir dir_;
  std::string reference_path_;
};

TEST_F(H5pyCompat, ChunkedGzipShuffleInt64LabelsWithAttributes) {
  const std::string path = write_h5py("attrs.h5", "--chunks 3,13,5,3 --gzip --attrs");
  Dataset ds = Dataset::open({path});
  expect_same_samples(ds);
  ASSERT_EQ(ds.shards().size(), 1u);
  EXPECT_EQ(ds.shards()[0].chunk_rows, 3);
  EXPECT_EQ(ds.shards()[0].filters, (std::vector<std::string>{"shuffle", "gzip(4)"}));

  EXPECT_EQ(ds.meta().num_classes, kClasses);
  EXPECT_FALSE(ds.meta().num_classes_inferred);
  Dataset reference = Dataset::open({reference_path_});
  EXPECT_EQ(ds.meta().class_names, reference.meta().class_names);  // "class0", ...
  EXPECT_EQ(ds.meta().source, "");
  ASSERT_EQ(ds.meta().mean.size(), static_cast<size_t>(kC));
  ASSERT_EQ(ds.meta().std.size(), static_cast<size_t>(kC));
  for (size_t k = 0; k < static_cast<size_t>(kC); ++k) {
    // The script stores numpy's float32 of the exact statistics, ShardWriter float64: they agree
    // to float32 rounding (relative 2^-24, about 6e-8); 1e-6 allows for that and no more.
    const double mean = reference.meta().mean[k], stdev = reference.meta().std[k];
    EXPECT_NEAR(ds.meta().mean[k], mean, 1e-6 * mean) << "channel " << k;
    EXPECT_NEAR(ds.meta().std[k], stdev, 1e-6 * stdev) << "channel " << k;
    // And they really are the float32 values, not recomputed from the pixels.
    EXPECT_EQ(ds.meta().mean[k], static_cast<double>(static_cast<float>(ds.meta().mean[k])));
  }
}

TEST_F(H5pyCompat, OneImagePerChunkWithoutAttributes) {
  const std::string path = write_h5py("bare.h5", "--chunks 1,13,11,3");
  Dataset ds = Dataset::open({path});
  expect_same_samples(ds);
  EXPECT_EQ(ds.shards()[0].chunk_rows, 1);
  EXPECT_TRUE(ds.shards()[0].filters.empty());
  // No num_classes attribute: the labels 0..4 give 5 classes.
  EXPECT_EQ(ds.meta().num_classes, kClasses);
  EXPECT_TRUE(ds.meta().num_classes_inferred);
  EXPECT_TRUE(ds.meta().class_names.empty());
  EXPECT_TRUE(ds.meta().mean.empty());
  EXPECT_TRUE(ds.meta().std.empty());
  EXPECT_EQ(ds.class_histogram().size(), static_cast<size_t>(kClasses));
}

TEST_F(H5pyCompat, ContiguousWithSmallLabelTypes) {
  for (const char* type : {"uint8", "int16", "uint32"}) {
    SCOPED_TRACE(type);
    const std::string path =
        write_h5py(std::string("contiguous-") + type + ".h5", std::string("--label-dtype ") + type);
    Dataset ds = Dataset::open({path});
    expect_same_samples(ds);
    EXPECT_EQ(ds.shards()[0].chunk_rows, 0);  // contiguous
    EXPECT_TRUE(ds.meta().num_classes_inferred);
  }
}

TEST_F(H5pyCompat, MixedWithShardWriterFiles) {
  // An h5py shard and a ShardWriter shard with the same classes open together as one dataset.
  const std::string path = write_h5py("attrs.h5", "--chunks 3,13,5,3 --gzip --attrs");
  Dataset ds = Dataset::open({path, reference_path_});
  ASSERT_EQ(ds.size(), 2 * kN);
  Contents both = read_all(ds);
  Contents one = read_all(Dataset::open({reference_path_}));
  std::vector<uint8_t> twice = one.pixels;
  twice.insert(twice.end(), one.pixels.begin(), one.pixels.end());
  EXPECT_EQ(first_difference(both.pixels, twice), -1);
  EXPECT_EQ(ds.labels()[static_cast<size_t>(kN + 4)], one.labels[4]);
}

}  // namespace
}  // namespace alexnet::io
