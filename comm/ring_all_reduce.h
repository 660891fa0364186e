// The ring all-reduce over MPI_Sendrecv (reduce-scatter, then all-gather) with its staging
// allocated once: the flat ring of MpiCommunicator over every rank, and the ring among the nodes'
// shard owners inside the hierarchical all-reduce (comm/hierarchical_all_reduce.h).
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm {

class RingAllReduce {
 public:
  // Over `comm` (not owned; it must outlive the ring and return errors, MPI_ERRORS_RETURN).
  // `label` names the ring in error messages ("ring", "node ring of local rank 1").
  RingAllReduce(MPI_Comm comm, std::string label);

  int rank() const { return rank_; }
  int size() const { return size_; }

  // Allocates the staging a call of up to `count` values needs, so that no later call allocates.
  void reserve(size_t count, WireType wire);

  // In place: every rank ends with the sum over the ring's ranks times `scale` (1 for a sum,
  // 1/P for an average over P ranks, which need not be this ring's size), every value rounded
  // through `wire` once by its owner, so that every rank holds the same bits. One rank: only the
  // scale (nothing travels, nothing is rounded).
  void run(float* data, size_t count, float scale, WireType wire);

 private:
  MPI_Comm comm_;
  std::string label_;
  int rank_ = 0, size_ = 1;
  std::vector<uint8_t> send_stage_,
      recv_stage_;  // one ring segment or chunk each, in the wire type
};

}  // namespace alexnet::comm
