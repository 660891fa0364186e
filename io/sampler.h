// Which samples each rank reads in an epoch, in what order, and in which HDF5 reads.
//
// The dataset is cut into blocks of whole HDF5 chunks (about block_bytes each) inside each shard.
// Every epoch, with shuffling on:
//   1. the block order is permuted by (seed, epoch), identically on every rank;
//   2. the samples, concatenated in that block order, are cut into R equal contiguous slices,
//      one per rank; the last N mod R samples of the epoch's order are dropped (a different set
//      each epoch), so every rank runs the same number of steps and no sample is seen twice;
//   3. each rank reads its slice a window of `window_blocks` blocks at a time and visits the
//      window's samples in an order permuted by (seed, epoch, rank, window).
// Without shuffling (evaluation) the blocks stay in file order and the slices split all N
// samples (sizes differ by at most one), so every sample is seen exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/dataset.h"

namespace alexnet::io {

struct Block {
  uint32_t shard = 0;
  int64_t row = 0;          // first row inside the shard
  int64_t count = 0;        // rows
  int64_t first_index = 0;  // global index of the first row
};

// Whole chunks per block, at least one chunk and about block_bytes; a shard's last block may be
// shorter. Contiguous (unchunked) shards are cut at block_bytes.
std::vector<Block> make_blocks(const std::vector<ShardInfo>& shards, size_t sample_bytes,
                               size_t block_bytes);

struct SamplerConfig {
  uint64_t seed = 0;
  bool shuffle = true;        // false: file order, every sample once (evaluation)
  int64_t window_blocks = 8;  // blocks whose samples are shuffled together
};

struct EpochPlan {
  struct Read {
    uint32_t shard;
    int64_t row, count;     // rows [row, row + count) of the shard
    int64_t window_offset;  // where the rows land in the window buffer, in samples
  };
  struct Window {
    size_t first_read, end_read;  // reads[first_read, end_read)
    int64_t first_position;       // index into order of the window's first sample
    int64_t samples;
  };
  std::vector<Read> reads;
  std::vector<Window> windows;
  std::vector<int64_t> order;  // global sample indices in the order this rank consumes them
  std::vector<int32_t> slot;   // slot[k]: offset of order[k] inside its window buffer
};

// Samples one rank sees per epoch: N / R with shuffling (tail dropped), else its share of N.
int64_t samples_for_rank(int64_t total, bool shuffle, int rank, int world);

EpochPlan plan_epoch(const std::vector<Block>& blocks, int64_t total, const SamplerConfig& config,
                     int64_t epoch, int rank, int world);

// Most samples any window can hold: the loader's window buffer is sized once from this.
int64_t max_window_samples(const std::vector<Block>& blocks, const SamplerConfig& config);

}  // namespace alexnet::io
