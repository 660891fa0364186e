// Writing shards and reading them back: pixels, labels, global indexing, attributes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/dataset.h"
#include "io/error.h"
#include "io/shard_writer.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::TempDir;

void expect_pattern(const Dataset& ds, int64_t classes) {
  const DatasetMeta& m = ds.meta();
  std::vector<uint8_t> buf;
  for (size_t s = 0; s < ds.shards().size(); ++s) {
    const ShardInfo& shard = ds.shards()[s];
    buf.resize(static_cast<size_t>(shard.num_samples) * ds.sample_bytes());
    ds.read_images(s, 0, shard.num_samples, buf.data());
    for (int64_t i = 0; i < shard.num_samples; ++i) {
      int64_t index = shard.first_index + i;
      auto expected = testing::pattern_image(index, m.height, m.width, m.channels);
      ASSERT_EQ(0,
                std::memcmp(expected.data(), buf.data() + i * ds.sample_bytes(), ds.sample_bytes()))
          << "sample " << index;
      ASSERT_EQ(ds.labels()[static_cast<size_t>(index)], testing::pattern_label(index, classes));
    }
  }
}

TEST(ShardWriter, RoundTripOverSeveralShards) {
  TempDir dir;
  // 103 samples of 9x7x3 in shards of 40: 40 + 40 + 23, with chunks smaller than a shard.
  auto files = testing::write_pattern_dataset(dir / "ds", 103, 9, 7, 3, 5, 40);
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], dir / "ds-00000.h5");
  Dataset ds = Dataset::open({dir / "ds-*.h5"});
  EXPECT_EQ(ds.size(), 103);
  ASSERT_EQ(ds.shards().size(), 3u);
  EXPECT_EQ(ds.shards()[1].first_index, 40);
  EXPECT_EQ(ds.shards()[2].num_samples, 23);
  EXPECT_EQ(ds.meta().num_classes, 5);
  EXPECT_FALSE(ds.meta().num_classes_inferred);
  EXPECT_EQ(ds.meta().class_names.size(), 5u);
  EXPECT_EQ(ds.meta().source, "test pattern");
  expect_pattern(ds, 5);
  // Partial reads in the middle of a shard.
  std::vector<uint8_t> part(5 * ds.sample_bytes());
  ds.read_images(1, 17, 5, part.data());
  auto expected = testing::pattern_image(40 + 19, 9, 7, 3);
  EXPECT_EQ(0,
            std::memcmp(expected.data(), part.data() + 2 * ds.sample_bytes(), ds.sample_bytes()));
  EXPECT_THROW(ds.read_images(2, 20, 5, part.data()), DataError);
}

TEST(ShardWriter, GzipRoundTripAndNoTemporariesLeft) {
  TempDir dir;
  testing::write_pattern_dataset(dir / "gz", 50, 8, 8, 1, 3, 0, Compression::kGzip);
  Dataset ds = Dataset::open({dir / "gz-00000.h5"});
  EXPECT_EQ(ds.shards()[0].filters, std::vector<std::string>{"gzip(4)"});
  expect_pattern(ds, 3);
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(ShardWriter, MeanAndStdArePerChannelOverAllPixels) {
  TempDir dir;
  const int64_t n = 21, h = 5, w = 6, c = 3;
  testing::write_pattern_dataset(dir / "st", n, h, w, c, 4, 8);
  std::vector<double> sum(c, 0), sumsq(c, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t k = 0; k < c; ++k) {
          double v = testing::pattern_pixel(i, y, x, k);
          sum[static_cast<size_t>(k)] += v;
          sumsq[static_cast<size_t>(k)] += v * v;
        }
  Dataset ds = Dataset::open({dir / "st-*.h5"});
  const double count = static_cast<double>(n * h * w);
  for (size_t k = 0; k < 3; ++k) {
    double mean = sum[k] / count, sd = std::sqrt(sumsq[k] / count - mean * mean);
    // Combining per-shard attributes in dataset.cc goes through E[x^2]: double rounding only.
    EXPECT_NEAR(ds.meta().mean[k], mean, 1e-9 * mean);
    EXPECT_NEAR(ds.meta().std[k], sd, 1e-9 * sd);
  }
}

TEST(ShardWriter, ReimportWithFewerShardsRemovesStaleOnes) {
  TempDir dir;
  testing::write_pattern_dataset(dir / "re", 30, 4, 4, 1, 2, 10);  // 3 shards
  testing::write_pattern_dataset(dir / "re", 15, 4, 4, 1, 2, 10);  // 2 shards
  Dataset ds = Dataset::open({dir / "re-*.h5"});
  EXPECT_EQ(ds.size(), 15);
  EXPECT_EQ(ds.shards().size(), 2u);
}

TEST(Dataset, ClassHistogramCountsLabels) {
  TempDir dir;
  testing::write_pattern_dataset(dir / "h", 40, 3, 3, 1, 4, 0);
  Dataset ds = Dataset::open({dir / "h-00000.h5"});
  auto hist = ds.class_histogram();
  ASSERT_EQ(hist.size(), 4u);
  std::vector<int64_t> expected(4, 0);
  for (int64_t i = 0; i < 40; ++i) ++expected[static_cast<size_t>(testing::pattern_label(i, 4))];
  EXPECT_EQ(hist, expected);
}

TEST(Dataset, ListsAndGlobsKeepTheGivenOrder) {
  TempDir dir;
  auto a = testing::write_pattern_dataset(dir / "a", 10, 3, 3, 1, 2, 0);
  auto b = testing::write_pattern_dataset(dir / "b", 12, 3, 3, 1, 2, 0);
  auto files = expand_paths({b[0], dir / "a-*.h5"});
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0], b[0]);
  EXPECT_EQ(files[1], a[0]);
}

}  // namespace
}  // namespace alexnet::io
