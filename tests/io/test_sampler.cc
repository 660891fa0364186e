// The sharding property, without MPI: one plan per rank in one process.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "io/sampler.h"

namespace alexnet::io {
namespace {

// Shards of uneven sizes and chunkings, as a real multi-file dataset has.
std::vector<ShardInfo> make_shards(int64_t total) {
  std::vector<ShardInfo> shards;
  const int64_t sizes[] = {37, 100, 5, 64};
  const int64_t chunks[] = {4, 0, 1, 16};
  int64_t first = 0;
  for (int i = 0; first < total; ++i) {
    ShardInfo s;
    s.path = "shard" + std::to_string(i);
    s.num_samples = std::min(sizes[i % 4] * (1 + i / 4), total - first);
    s.chunk_rows = chunks[i % 4];
    s.first_index = first;
    first += s.num_samples;
    shards.push_back(s);
  }
  return shards;
}

// Checks that the plan's reads, window offsets and slots produce exactly plan.order.
void expect_consistent(const EpochPlan& plan, const std::vector<ShardInfo>& shards) {
  for (const auto& w : plan.windows) {
    std::vector<int64_t> buffer(static_cast<size_t>(w.samples), -1);  // global index per slot
    for (size_t r = w.first_read; r < w.end_read; ++r) {
      const auto& read = plan.reads[r];
      for (int64_t k = 0; k < read.count; ++k) {
        buffer[static_cast<size_t>(read.window_offset + k)] =
            shards[read.shard].first_index + read.row + k;
      }
    }
    for (int64_t k = 0; k < w.samples; ++k) {
      size_t pos = static_cast<size_t>(w.first_position + k);
      ASSERT_EQ(buffer[static_cast<size_t>(plan.slot[pos])], plan.order[pos]);
    }
  }
}

class SamplerProperty : public ::testing::TestWithParam<std::tuple<int64_t, int>> {};

TEST_P(SamplerProperty, ShuffledEpochSeesEverySampleAtMostOnceAndAllButTheTail) {
  auto [total, world] = GetParam();
  auto shards = make_shards(total);
  // A small block size relative to the data, so that there are many blocks to permute.
  auto blocks = make_blocks(shards, 100, 800);
  SamplerConfig config{.seed = 17, .shuffle = true, .window_blocks = 3};
  std::vector<int64_t> previous_epoch_rank0;
  std::set<int64_t> seen_over_epochs;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int> count(static_cast<size_t>(total), 0);
    for (int rank = 0; rank < world; ++rank) {
      EpochPlan plan = plan_epoch(blocks, total, config, epoch, rank, world);
      ASSERT_EQ(static_cast<int64_t>(plan.order.size()), total / world);
      expect_consistent(plan, shards);
      for (int64_t i : plan.order) {
        ASSERT_GE(i, 0);
        ASSERT_LT(i, total);
        ++count[static_cast<size_t>(i)];
        seen_over_epochs.insert(i);
      }
      // Identical between runs.
      EXPECT_EQ(plan.order, plan_epoch(blocks, total, config, epoch, rank, world).order);
      if (rank == 0) {
        if (epoch > 0 && total / world >= 20) {
          EXPECT_NE(plan.order, previous_epoch_rank0);
        }
        previous_epoch_rank0 = plan.order;
      }
    }
    int64_t once = std::count(count.begin(), count.end(), 1);
    EXPECT_EQ(std::count_if(count.begin(), count.end(), [](int c) { return c > 1; }), 0);
    EXPECT_EQ(once, total / world * world);  // the dropped tail is total mod world samples
  }
  if (total % world != 0 && total >= 100) {
    // The dropped tail changes with the epoch: over three epochs nearly everything is seen.
    EXPECT_GT(static_cast<int64_t>(seen_over_epochs.size()), total - total % world);
  }
}

TEST_P(SamplerProperty, EvaluationSeesEverySampleExactlyOnceInFileOrder) {
  auto [total, world] = GetParam();
  auto shards = make_shards(total);
  auto blocks = make_blocks(shards, 100, 800);
  SamplerConfig config{.seed = 3, .shuffle = false, .window_blocks = 2};
  std::vector<int64_t> all;
  int64_t smallest = total, largest = 0;
  for (int rank = 0; rank < world; ++rank) {
    EpochPlan plan = plan_epoch(blocks, total, config, 5, rank, world);
    expect_consistent(plan, shards);
    EXPECT_TRUE(std::is_sorted(plan.order.begin(), plan.order.end()));
    smallest = std::min<int64_t>(smallest, static_cast<int64_t>(plan.order.size()));
    largest = std::max<int64_t>(largest, static_cast<int64_t>(plan.order.size()));
    all.insert(all.end(), plan.order.begin(), plan.order.end());
  }
  ASSERT_EQ(static_cast<int64_t>(all.size()), total);
  for (int64_t i = 0; i < total; ++i) ASSERT_EQ(all[static_cast<size_t>(i)], i);
  EXPECT_LE(largest - smallest, 1);
}

INSTANTIATE_TEST_SUITE_P(RanksAndSizes, SamplerProperty,
                         ::testing::Combine(::testing::Values<int64_t>(8, 100, 1001, 4099),
                                            ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8)),
                         [](const auto& param_info) {
                           return "n" + std::to_string(std::get<0>(param_info.param)) + "_ranks" +
                                  std::to_string(std::get<1>(param_info.param));
                         });

TEST(Sampler, BlocksAreWholeChunksOfAboutTheRequestedSize) {
  auto shards = make_shards(1000);
  auto blocks = make_blocks(shards, 100, 1600);  // 16 samples a block
  int64_t covered = 0;
  for (const auto& b : blocks) {
    const ShardInfo& s = shards[b.shard];
    int64_t chunk = s.chunk_rows > 0 ? s.chunk_rows : 1;
    EXPECT_EQ(b.row % chunk, 0) << "block starts inside a chunk";
    bool last = b.row + b.count == s.num_samples;
    if (!last) {
      EXPECT_EQ(b.count % chunk, 0);
    }
    EXPECT_LE(b.count, 16 + chunk);
    EXPECT_EQ(b.first_index, s.first_index + b.row);
    covered += b.count;
  }
  EXPECT_EQ(covered, 1000);
}

TEST(Sampler, OrderIsMixedAcrossTheWholeDataset) {
  // With block shuffling the first samples a rank sees come from all over the dataset.
  auto shards = make_shards(4096);
  auto blocks = make_blocks(shards, 100, 800);
  EpochPlan plan =
      plan_epoch(blocks, 4096, {.seed = 1, .shuffle = true, .window_blocks = 4}, 0, 0, 1);
  std::set<int64_t> region;
  for (size_t k = 0; k < 256; ++k) region.insert(plan.order[k] / 512);
  EXPECT_GE(region.size(), 4u);
}

TEST(Sampler, RejectsBadRank) {
  auto blocks = make_blocks(make_shards(10), 1, 4);
  EXPECT_THROW(plan_epoch(blocks, 10, {}, 0, 2, 2), std::invalid_argument);
  EXPECT_THROW(plan_epoch(blocks, 10, {}, 0, 0, 0), std::invalid_argument);
}

}  // namespace
}  // namespace alexnet::io
