// The prefetching loader end to end over real HDF5 shards.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/error.h"
#include "io/loader.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::TempDir;

constexpr int64_t kH = 9, kW = 8, kC = 3, kClasses = 7;

struct Fixture {
  TempDir dir;
  Dataset ds;
  explicit Fixture(int64_t n, int64_t shard = 40)
      : ds([&] {
          testing::write_pattern_dataset(dir / "ld", n, kH, kW, kC, kClasses, shard);
          return Dataset::open({dir / "ld-*.h5"});
        }()) {}
};

// Identity augmentation: full-size center crop, no normalization, NHWC, so that a batch's
// floats are exactly the stored bytes.
LoaderConfig identity_config(int64_t batch, bool shuffle) {
  LoaderConfig c;
  c.batch_size = batch;
  c.sampler = {.seed = 4, .shuffle = shuffle, .window_blocks = 2};
  c.block_bytes = 10 * kH * kW * kC;  // ~10 samples a block: many blocks even in small tests
  c.drop_last = shuffle;
  c.augment = {.crop_height = kH, .crop_width = kW, .layout = Layout::kNHWC};
  c.workers = 2;
  c.prefetch = 3;
  return c;
}

void expect_sample_matches(const Batch& b, int64_t i) {
  const int64_t index = b.indices[i];
  auto expected = testing::pattern_image(index, kH, kW, kC);
  const float* got = b.images + i * kH * kW * kC;
  for (size_t k = 0; k < expected.size(); ++k) {
    ASSERT_EQ(got[k], static_cast<float>(expected[k])) << "sample " << index << " element " << k;
  }
  ASSERT_EQ(b.labels[i], testing::pattern_label(index, kClasses));
}

TEST(Loader, EvaluationDeliversEverySampleOnceInOrderWithAShortLastBatch) {
  Fixture f(103);
  Loader loader(f.ds, identity_config(16, false));
  EXPECT_EQ(loader.steps_per_epoch(), 7);  // 6 full batches and one of 7
  int64_t next_index = 0, steps = 0;
  while (const Batch* b = loader.next()) {
    EXPECT_EQ(b->step, steps);
    EXPECT_EQ(b->size, steps < 6 ? 16 : 7);
    for (int64_t i = 0; i < b->size; ++i) {
      ASSERT_EQ(b->indices[i], next_index++);
      expect_sample_matches(*b, i);
    }
    ++steps;
  }
  EXPECT_EQ(next_index, 103);
  EXPECT_EQ(loader.next(), nullptr);
}

TEST(Loader, RanksFollowTheirPlansAndTogetherCoverTheEpoch) {
  Fixture f(250);
  const int world = 3;
  std::vector<int> seen(250, 0);
  for (int rank = 0; rank < world; ++rank) {
    LoaderConfig c = identity_config(8, true);
    c.rank = rank;
    c.world = world;
    Loader loader(f.ds, c);
    EXPECT_EQ(loader.steps_per_epoch(), 250 / 3 / 8);
    auto blocks = make_blocks(f.ds.shards(), f.ds.sample_bytes(), c.block_bytes);
    EpochPlan plan = plan_epoch(blocks, 250, c.sampler, 0, rank, world);
    size_t position = 0;
    while (const Batch* b = loader.next()) {
      ASSERT_EQ(b->size, 8);
      for (int64_t i = 0; i < b->size; ++i) {
        ASSERT_EQ(b->indices[i], plan.order[position++]);
        expect_sample_matches(*b, i);
        ++seen[static_cast<size_t>(b->indices[i])];
      }
    }
    EXPECT_EQ(position, static_cast<size_t>(250 / 3 / 8 * 8));
  }
  EXPECT_EQ(std::count_if(seen.begin(), seen.end(), [](int s) { return s > 1; }), 0);
}

// Copies every batch of a loader run (images, labels, indices) for comparison.
struct LoaderRun {
  std::vector<std::vector<float>> images;
  std::vector<std::vector<int64_t>> indices;
  std::vector<std::pair<int64_t, int64_t>> epoch_step;
};
LoaderRun collect(Loader& loader) {
  LoaderRun r;
  while (const Batch* b = loader.next()) {
    r.images.emplace_back(b->images, b->images + b->size * loader.sample_elements());
    r.indices.emplace_back(b->indices, b->indices + b->size);
    r.epoch_step.emplace_back(b->epoch, b->step);
  }
  return r;
}

LoaderConfig training_config(int workers) {
  LoaderConfig c;
  c.batch_size = 10;
  c.sampler = {.seed = 21, .shuffle = true, .window_blocks = 3};
  c.block_bytes = 6 * kH * kW * kC;
  c.augment = {.crop_height = 7,
               .crop_width = 6,
               .random_crop = true,
               .flip = true,
               .pad = 1,
               .lighting_std = 0.1f,
               .mean = {120, 110, 100},
               .std = {50, 60, 70}};
  c.workers = workers;
  c.prefetch = 4;
  c.epochs = 3;
  return c;
}

TEST(Loader, SameBatchesWhateverTheWorkerCount) {
  Fixture f(131);
  Loader one(f.ds, training_config(1));
  Loader three(f.ds, training_config(3));
  LoaderRun a = collect(one), b = collect(three);
  ASSERT_EQ(a.images.size(), 3u * 13u);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.images, b.images);
  for (const auto& batch : a.images)
    for (float v : batch) ASSERT_TRUE(std::isfinite(v));
  // Epochs differ in order and augmentation.
  EXPECT_NE(a.indices[0], a.indices[13]);
}

TEST(Loader, ResumingMidEpochContinuesTheSameStream) {
  Fixture f(131);
  Loader full(f.ds, training_config(2));
  LoaderRun all = collect(full);
  LoaderConfig c = training_config(2);
  c.start_epoch = 1;
  c.start_step = 5;
  c.epochs = 2;  // the rest of epoch 1, then epoch 2
  Loader resumed(f.ds, c);
  LoaderRun rest = collect(resumed);
  const size_t skip = 13 + 5;
  ASSERT_EQ(rest.images.size(), all.images.size() - skip);
  for (size_t i = 0; i < rest.images.size(); ++i) {
    EXPECT_EQ(rest.epoch_step[i], all.epoch_step[i + skip]);
    EXPECT_EQ(rest.indices[i], all.indices[i + skip]);
    EXPECT_EQ(rest.images[i], all.images[i + skip]);
  }
}

TEST(Loader, StoppingEarlyJoinsCleanly) {
  Fixture f(200);
  LoaderConfig c = training_config(2);
  c.epochs = 0;  // without end
  for (int k = 0; k < 3; ++k) {
    Loader loader(f.ds, c);
    for (int i = 0; i < 25; ++i) ASSERT_NE(loader.next(), nullptr);  // crosses epoch ends
  }  // destructor with threads blocked on full slots
}

TEST(Loader, AReadErrorReachesTheTrainerAsDataError) {
  TempDir dir;
  auto files =
      testing::write_pattern_dataset(dir / "bad", 300, kH, kW, kC, kClasses, 0, Compression::kGzip);
  Dataset ds = Dataset::open(files);
  // Corrupt compressed chunk data in the middle of the file, after it was opened and checked:
  // the I/O thread's H5Dread fails in the deflate filter.
  {
    auto size = std::filesystem::file_size(files[0]);
    std::FILE* f = std::fopen(files[0].c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fseek(f, static_cast<long>(size / 2), SEEK_SET);
    std::vector<char> garbage(512, '\x5a');
    std::fwrite(garbage.data(), 1, garbage.size(), f);
    std::fclose(f);
  }
  Loader loader(ds, identity_config(16, false));
  try {
    while (loader.next() != nullptr) {
    }
    FAIL() << "reading a corrupt file succeeded";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad-00000.h5"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(Loader, RejectsBadConfigs) {
  Fixture f(20);
  LoaderConfig c = identity_config(8, true);
  c.batch_size = 0;
  EXPECT_THROW(Loader(f.ds, c), DataError);
  c = identity_config(30, true);  // fewer samples than one batch
  EXPECT_THROW(Loader(f.ds, c), DataError);
  c = identity_config(8, true);
  c.rank = 2;
  c.world = 2;
  EXPECT_THROW(Loader(f.ds, c), DataError);
  c = identity_config(8, true);
  c.augment.crop_height = 50;
  EXPECT_THROW(Loader(f.ds, c), DataError);
}

}  // namespace
}  // namespace alexnet::io
