// The hierarchical all-reduce (comm.algorithm=hierarchical), for several ranks on each of several
// nodes: a reduce-scatter inside the node over shared memory, a ring among the nodes' owners of
// each shard (local rank i of every node owns shard i and rings with the other nodes' local rank
// i, so that every rank's NIC carries 1/L of the traffic, not one rank's all of it), then an
// all-gather inside the node. Only 1/L of the gradient crosses the network from each rank, and
// the P - 1 ring steps over the network become N - 1 (N nodes of L ranks).
//
// The node's shared memory is one MPI-3 shared window (MPI_Win_allocate_shared), allocated once
// by reserve(): every rank's slot holds its whole gradient, so that the owner of shard i reads
// shard i of every slot directly (one pass, no messages, no copies through MPI's own shared-memory
// transport). fp32 inside the node; the wire type only between nodes, where the ring's owner
// rounds its chunk as every receiver does, and the node's all-gather copies exact fp32, so every
// replica holds the same bits.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "comm/ring_all_reduce.h"

namespace alexnet::comm {

class HierarchicalAllReduce {
 public:
  // `node`: the ranks of this node (they must share memory); `across`: this local rank's peers,
  // one on every node; both not owned, returning errors (MPI_ERRORS_RETURN). Every node must have
  // the same number of ranks (MpiCommunicator checks). `world_size` divides an average.
  HierarchicalAllReduce(MPI_Comm node, MPI_Comm across, int world_size);
  ~HierarchicalAllReduce();  // frees the window: every rank of the node destroys its own
  HierarchicalAllReduce(const HierarchicalAllReduce&) = delete;
  HierarchicalAllReduce& operator=(const HierarchicalAllReduce&) = delete;

  // The shared window for `count` floats a rank and the ring's staging; collective over the
  // node when it grows (every rank of the node calls it with the same count, as all_reduce does).
  void reserve(size_t count, WireType wire);

  void run(float* data, size_t count, ReduceOp op, WireType wire);

 private:
  void free_window();
  // Every rank's writes to the window seen by every other before any goes on.
  void node_sync(const char* what);

  MPI_Comm node_;
  int local_rank_ = 0, local_size_ = 1, world_size_ = 1;
  RingAllReduce across_ring_;
  MPI_Win window_ = MPI_WIN_NULL;
  size_t slot_floats_ = 0;
  std::vector<float*> slots_;  // each local rank's slot, at this process's addresses
};

}  // namespace alexnet::comm
