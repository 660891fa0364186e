// The Communicator over MPI, for CPU training.
//
// Float all-reduces run our own ring (comm/ring_all_reduce.h: reduce-scatter, then all-gather,
// over MPI_Sendrecv) into staging buffers allocated once, rather than MPI_Allreduce: Open MPI's
// MPI_Allreduce allocates a message-sized temporary on every call, and on these VMs fresh pages
// cost 20-50x the bandwidth (../shared/REFERENCES.md); the ring also carries bf16/fp16 with fp32
// sums, which MPI's built-in reductions cannot. With several ranks on each of several nodes, the
// hierarchical all-reduce (comm/hierarchical_all_reduce.h) instead: shared memory inside the
// node, a ring per shard between nodes. Small and double reductions use MPI_Allreduce.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm {

class HierarchicalAllReduce;
class RingAllReduce;

// MPI's lifetime in the process: MPI_Init_thread at construction (at least
// MPI_THREAD_SERIALIZED: the gradient all-reduce runs on its own thread), MPI_Finalize at
// destruction. Works without mpirun too (a singleton run of one rank).
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  // True where MPI_THREAD_MULTIPLE was granted (any thread may call MPI at any time).
  bool thread_multiple() const { return thread_multiple_; }

 private:
  bool thread_multiple_ = false;
};

// comm.algorithm: how float all-reduces travel. kAuto: hierarchical where there is more than one
// node and more than one rank on each (the same number on every node), else the flat ring.
enum class AllReduceAlgorithm { kRing, kHierarchical, kAuto };

// "ring" | "hierarchical" | "auto"; throws std::invalid_argument naming the accepted values.
AllReduceAlgorithm parse_all_reduce_algorithm(const std::string& name);
const char* all_reduce_algorithm_name(AllReduceAlgorithm algorithm);

// Test-only: split each real node further into pretend nodes of `ranks_per_node` consecutive
// ranks (the last one smaller where it does not divide), so that the hierarchical logic runs on
// one machine (tests/comm/test_hierarchical_all_reduce.cc). They still share memory: they are on
// one machine.
struct PretendNodes {
  int ranks_per_node;
};

class MpiCommunicator final : public Communicator {
 public:
  // A duplicate of `comm` with MPI_ERRORS_RETURN, so that failures become exceptions that say
  // what was going on. Needs a live MpiSession. Collective over `comm`. The algorithm: kAuto.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD);
  MpiCommunicator(MPI_Comm comm, PretendNodes pretend);  // test-only, see PretendNodes
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return "mpi"; }
  int nodes() const { return nodes_; }

  // Chooses how float all-reduces travel (no communication: every rank decides alike). Throws
  // std::invalid_argument, one line, for kHierarchical where the nodes have different numbers
  // of ranks; kAuto then takes the ring. Call it on every rank before reserve.
  void set_algorithm(AllReduceAlgorithm requested);
  AllReduceAlgorithm algorithm() const { return algorithm_; }  // kRing or kHierarchical
  // What runs, for the job's first line: "hierarchical (2 nodes x 2 ranks)", "ring (4 ranks:
  // 1 node x 4 ranks)", or the ring and why auto did not take hierarchical on uneven nodes.
  std::string algorithm_description() const;

  // Allocates the staging (and, hierarchical, the node's shared window) a float all-reduce of up
  // to `count` values needs, so that no later call allocates (the first larger call would, once).
  // Collective over the node for the hierarchical algorithm when it grows.
  void reserve(size_t count, WireType wire);

  void all_reduce(float* data, size_t count, ReduceOp op, WireType wire) override;
  void all_reduce(double* data, size_t count, ReduceOp op) override;
  int64_t all_reduce_max(int64_t value) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void all_gather(const void* mine, void* all, size_t bytes_each) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  MpiCommunicator(MPI_Comm comm, int pretend_ranks_per_node);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm node_ = MPI_COMM_NULL;    // this rank's node (shared memory)
  MPI_Comm across_ = MPI_COMM_NULL;  // the same local rank on every node
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  int nodes_ = 1, smallest_node_ = 1, largest_node_ = 1;  // ranks on the nodes
  AllReduceAlgorithm algorithm_ = AllReduceAlgorithm::kRing;
  std::unique_ptr<RingAllReduce> ring_;                  // over every rank
  std::unique_ptr<HierarchicalAllReduce> hierarchical_;  // once chosen
};

}  // namespace alexnet::comm
