// alexnet-data synthetic: the dataset a benchmark or scaling run uses where no real data is at
// hand. Right shapes and counts, labels in range, every class present, the same bytes for the
// same seed and different bytes for another, one-line errors for bad sizes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/error.h"
#include "io/synthetic_import.h"
#include "tests/temp_dir.h"

namespace alexnet::io {
namespace {

std::vector<uint8_t> all_images(const Dataset& ds) {
  std::vector<uint8_t> images(static_cast<size_t>(ds.size()) * ds.sample_bytes());
  for (size_t s = 0; s < ds.shards().size(); ++s) {
    const ShardInfo& shard = ds.shards()[s];
    ds.read_images(s, 0, shard.num_samples,
                   images.data() + static_cast<size_t>(shard.first_index) * ds.sample_bytes());
  }
  return images;
}

ImportOptions quiet(const std::string& out, uint64_t seed) {
  ImportOptions o;
  o.out = out;
  o.seed = seed;
  o.progress = false;
  return o;
}

TEST(SyntheticImport, WritesTheAskedShapeWithEveryClassAndASplit) {
  test::TempDir dir;
  SyntheticOptions s;
  s.count = 400;
  s.size = 40;
  s.channels = 3;
  s.num_classes = 7;
  ImportOptions o = quiet(dir / "syn", 3);
  o.val_fraction = 0.25;
  const ImportResult r = import_synthetic(s, o);
  EXPECT_EQ(r.train_count, 300);
  EXPECT_EQ(r.val_count, 100);
  const Dataset train = Dataset::open(r.train_files);
  EXPECT_EQ(train.meta().height, 40);
  EXPECT_EQ(train.meta().width, 40);
  EXPECT_EQ(train.meta().channels, 3);
  EXPECT_EQ(train.meta().num_classes, 7);
  for (int64_t n : train.class_histogram()) EXPECT_GT(n, 0);
  for (int32_t label : train.labels()) {
    EXPECT_GE(label, 0);
    EXPECT_LT(label, 7);
  }
}

TEST(SyntheticImport, IsDeterministicPerSeed) {
  test::TempDir dir;
  SyntheticOptions s;
  s.count = 50;
  s.size = 16;
  s.num_classes = 5;
  const auto a = all_images(Dataset::open(import_synthetic(s, quiet(dir / "a", 1)).train_files));
  const auto b = all_images(Dataset::open(import_synthetic(s, quiet(dir / "b", 1)).train_files));
  const auto c = all_images(Dataset::open(import_synthetic(s, quiet(dir / "c", 2)).train_files));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SyntheticImport, RejectsNonPositiveSizes) {
  test::TempDir dir;
  SyntheticOptions s;
  s.size = 0;
  EXPECT_THROW(import_synthetic(s, quiet(dir / "x", 0)), DataError);
  s.size = 8;
  s.num_classes = 0;
  EXPECT_THROW(import_synthetic(s, quiet(dir / "x", 0)), DataError);
}

}  // namespace
}  // namespace alexnet::io
