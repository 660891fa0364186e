// Epoch plans: block-permuted, rank-sliced, window-shuffled sample orders.
#include "io/sampler.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "io/random.h"

namespace alexnet::io {

std::vector<Block> make_blocks(const std::vector<ShardInfo>& shards, size_t sample_bytes,
                               size_t block_bytes) {
  std::vector<Block> blocks;
  const auto target_rows =
      static_cast<int64_t>(std::max<size_t>(1, block_bytes / std::max<size_t>(1, sample_bytes)));
  for (size_t s = 0; s < shards.size(); ++s) {
    const ShardInfo& shard = shards[s];
    int64_t chunk = shard.chunk_rows > 0 ? shard.chunk_rows : 1;
    // Round to whole chunks so that no chunk is decompressed twice.
    int64_t rows = std::max<int64_t>(1, (target_rows + chunk / 2) / chunk) * chunk;
    for (int64_t row = 0; row < shard.num_samples; row += rows) {
      int64_t count = std::min(rows, shard.num_samples - row);
      blocks.push_back({static_cast<uint32_t>(s), row, count, shard.first_index + row});
    }
  }
  return blocks;
}

int64_t samples_for_rank(int64_t total, bool shuffle, int rank, int world) {
  if (shuffle) return total / world;
  return total * (rank + 1) / world - total * rank / world;
}

EpochPlan plan_epoch(const std::vector<Block>& blocks, int64_t total, const SamplerConfig& config,
                     int64_t epoch, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) {
    throw std::invalid_argument("plan_epoch: rank " + std::to_string(rank) + " of world " +
                                std::to_string(world));
  }
  if (config.window_blocks < 1) throw std::invalid_argument("plan_epoch: window_blocks < 1");

  // 1. Block order, the same on every rank.
  std::vector<size_t> block_order(blocks.size());
  std::iota(block_order.begin(), block_order.end(), size_t{0});
  if (config.shuffle) {
    CounterRng rng(config.seed, RngPurpose::kBlockOrder, static_cast<uint64_t>(epoch));
    rng.shuffle(block_order.data(), block_order.size());
  }

  // 2. This rank's contiguous slice [begin, end) of the concatenated sample sequence.
  int64_t begin = config.shuffle ? total / world * rank : total * rank / world;
  int64_t end = begin + samples_for_rank(total, config.shuffle, rank, world);

  // Cut the slice into reads (whole blocks, partial at the slice's two edges) and windows.
  EpochPlan plan;
  plan.order.reserve(static_cast<size_t>(end - begin));
  int64_t position = 0;  // in the concatenated sequence
  for (size_t b : block_order) {
    const Block& block = blocks[b];
    int64_t lo = std::max(begin, position), hi = std::min(end, position + block.count);
    if (lo < hi) {
      plan.reads.push_back({block.shard, block.row + (lo - position), hi - lo, 0});
      for (int64_t k = lo; k < hi; ++k) plan.order.push_back(block.first_index + (k - position));
    }
    position += block.count;
    if (position >= end) break;
  }
  if (position < end && end > begin) {
    throw std::logic_error("plan_epoch: blocks cover fewer samples than the dataset holds");
  }

  // 3. Windows of window_blocks reads, shuffled inside.
  int64_t first_position = 0;
  for (size_t r = 0; r < plan.reads.size(); r += static_cast<size_t>(config.window_blocks)) {
    EpochPlan::Window w{r,
                        std::min(plan.reads.size(), r + static_cast<size_t>(config.window_blocks)),
                        first_position, 0};
    for (size_t i = w.first_read; i < w.end_read; ++i) {
      plan.reads[i].window_offset = w.samples;
      w.samples += plan.reads[i].count;
    }
    first_position += w.samples;
    plan.windows.push_back(w);
  }
  plan.slot.resize(plan.order.size());
  for (size_t wi = 0; wi < plan.windows.size(); ++wi) {
    const auto& w = plan.windows[wi];
    int32_t* slot = plan.slot.data() + w.first_position;
    int64_t* order = plan.order.data() + w.first_position;
    std::iota(slot, slot + w.samples, int32_t{0});
    if (config.shuffle) {
      CounterRng rng(config.seed, RngPurpose::kWindowShuffle, static_cast<uint64_t>(epoch),
                     (static_cast<uint64_t>(rank) << 40) | wi);
      rng.shuffle(slot, static_cast<uint64_t>(w.samples));
      // order follows the slots: the window's samples sit in the buffer in read order.
      std::vector<int64_t> in_read_order(order, order + w.samples);
      for (int64_t k = 0; k < w.samples; ++k)
        order[k] = in_read_order[static_cast<size_t>(slot[k])];
    }
  }
  return plan;
}

int64_t max_window_samples(const std::vector<Block>& blocks, const SamplerConfig& config) {
  int64_t largest = 0;
  for (const auto& b : blocks) largest = std::max(largest, b.count);
  // A window holds at most window_blocks reads, each at most one block long.
  return largest * config.window_blocks;
}

}  // namespace alexnet::io
