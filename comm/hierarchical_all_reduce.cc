// HierarchicalAllReduce: shared-memory reduce-scatter, a ring per shard among the nodes, and a
// shared-memory all-gather.
#include "comm/hierarchical_all_reduce.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "comm/mpi_check.h"

namespace alexnet::comm {

namespace {

// The node reduce's block: the owner's piece of its shard stays in L2 while every slot's same
// piece is added to it.
constexpr size_t kBlockFloats = size_t{1} << 16;

size_t shard_begin(size_t count, int shards, int k) {
  return count * static_cast<size_t>(k) / static_cast<size_t>(shards);
}

}  // namespace

HierarchicalAllReduce::HierarchicalAllReduce(MPI_Comm node, MPI_Comm across, int world_size)
    : node_(node), world_size_(world_size), across_ring_(across, "node ring") {
  ALEXNET_MPI_CHECK(MPI_Comm_rank(node_, &local_rank_), "asking the node-local rank");
  ALEXNET_MPI_CHECK(MPI_Comm_size(node_, &local_size_), "asking the ranks on this node");
}

HierarchicalAllReduce::~HierarchicalAllReduce() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) free_window();
}

void HierarchicalAllReduce::free_window() {
  if (window_ == MPI_WIN_NULL) return;
  // Not checked: this runs from the destructor too, where nothing may throw.
  MPI_Win_unlock_all(window_);
  MPI_Win_free(&window_);
  window_ = MPI_WIN_NULL;
  slots_.clear();
  slot_floats_ = 0;
}

void HierarchicalAllReduce::reserve(size_t count, WireType wire) {
  across_ring_.reserve(count / static_cast<size_t>(local_size_) + 1, wire);
  if (count <= slot_floats_) return;
  const std::string what =
      "the node's shared window for " + std::to_string(count) + " floats a rank";
  free_window();
  MPI_Info info = MPI_INFO_NULL;
  ALEXNET_MPI_CHECK(MPI_Info_create(&info), "making the hints of " + what);
  // Each rank's slot on pages of its own (first touched by its owner below), not one block.
  ALEXNET_MPI_CHECK(MPI_Info_set(info, "alloc_shared_noncontig", "true"),
                    "setting alloc_shared_noncontig for " + what);
  float* mine = nullptr;
  const int allocated = MPI_Win_allocate_shared(static_cast<MPI_Aint>(count * sizeof(float)),
                                                sizeof(float), info, node_, &mine, &window_);
  MPI_Info_free(&info);
  ALEXNET_MPI_CHECK(allocated, "allocating " + what);
  ALEXNET_MPI_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN),
                    "setting MPI_ERRORS_RETURN on " + what);
  // One passive epoch for the window's whole life: the ranks order their accesses with
  // MPI_Win_sync and a barrier (node_sync), the unified memory model's way for shared windows.
  ALEXNET_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_), "opening " + what);
  slots_.assign(static_cast<size_t>(local_size_), nullptr);
  for (int j = 0; j < local_size_; ++j) {
    MPI_Aint bytes = 0;
    int unit = 0;
    ALEXNET_MPI_CHECK(MPI_Win_shared_query(window_, j, &bytes, &unit, &slots_[j]),
                      "finding local rank " + std::to_string(j) + "'s slot in " + what);
  }
  std::memset(mine, 0, count * sizeof(float));  // every page touched now, not inside a step
  slot_floats_ = count;
  node_sync("after allocating the node's shared window");
}

void HierarchicalAllReduce::node_sync(const char* what) {
  ALEXNET_MPI_CHECK(MPI_Win_sync(window_), std::string("syncing the shared window ") + what);
  ALEXNET_MPI_CHECK(MPI_Barrier(node_), std::string("waiting for the node's ranks ") + what);
  ALEXNET_MPI_CHECK(MPI_Win_sync(window_), std::string("syncing the shared window ") + what);
}

void HierarchicalAllReduce::run(float* data, size_t count, ReduceOp op, WireType wire) {
  if (count == 0) return;
  reserve(count, wire);
  const int L = local_size_, me = local_rank_;
  const size_t mine_begin = shard_begin(count, L, me);
  const size_t mine_n = shard_begin(count, L, me + 1) - mine_begin;
  float* const my_slot = slots_[static_cast<size_t>(me)];

  // 1. This rank's values where the other shards' owners read them (its own shard it keeps).
  std::memcpy(my_slot, data, mine_begin * sizeof(float));
  std::memcpy(my_slot + mine_begin + mine_n, data + mine_begin + mine_n,
              (count - mine_begin - mine_n) * sizeof(float));
  node_sync("before the node's reduce-scatter");

  // 2. The node's sum of this rank's shard, block by block: its own values, then the others' in
  // local-rank order.
  for (size_t b = 0; b < mine_n; b += kBlockFloats) {
    const size_t n = std::min(kBlockFloats, mine_n - b);
    float* out = data + mine_begin + b;
    for (int j = 0; j < L; ++j) {
      if (j == me) continue;
      const float* in = slots_[static_cast<size_t>(j)] + mine_begin + b;
      for (size_t i = 0; i < n; ++i) out[i] += in[i];
    }
  }

  // 3. Among the nodes: the same shard's owners, one ring per local rank, all at once.
  const float scale = op == ReduceOp::kAverage ? 1.0f / static_cast<float>(world_size_) : 1.0f;
  across_ring_.run(data + mine_begin, mine_n, scale, wire);

  // 4. The finished shard where the node's other ranks read it (no one else reads this part of
  // this slot, so no wait before writing it), then every other shard from its owner's slot.
  std::memcpy(my_slot + mine_begin, data + mine_begin, mine_n * sizeof(float));
  node_sync("before the node's all-gather");
  for (int j = 0; j < L; ++j) {
    if (j == me) continue;
    const size_t b = shard_begin(count, L, j), n = shard_begin(count, L, j + 1) - b;
    std::memcpy(data + b, slots_[static_cast<size_t>(j)] + b, n * sizeof(float));
  }
  // Nobody writes its slot again (the next call) while another still reads it.
  node_sync("after the node's all-gather");
}

}  // namespace alexnet::comm
