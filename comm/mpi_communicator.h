// The Communicator over MPI, for CPU training.
//
// Float all-reduces run our own ring (reduce-scatter, then all-gather, over MPI_Sendrecv) into
// staging buffers allocated once, rather than MPI_Allreduce: Open MPI's MPI_Allreduce allocates a
// message-sized temporary on every call, and on these VMs fresh pages cost 20-50x the bandwidth
// (../shared/REFERENCES.md); the ring also carries bf16/fp16 with fp32 sums, which MPI's
// built-in reductions cannot. Small and double reductions use MPI_Allreduce.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm {

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

class MpiCommunicator final : public Communicator {
 public:
  // A duplicate of `comm` with MPI_ERRORS_RETURN, so that failures become exceptions that say
  // what was going on. Needs a live MpiSession.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return "mpi"; }

  // Allocates the staging buffers a float all-reduce of up to `count` values needs, so that
  // no later call allocates (the first larger call would, once).
  void reserve(size_t count, WireType wire);

  void all_reduce(float* data, size_t count, ReduceOp op, WireType wire) override;
  void all_reduce(double* data, size_t count, ReduceOp op) override;
  int64_t all_reduce_max(int64_t value) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void all_gather(const void* mine, void* all, size_t bytes_each) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  void ring_all_reduce(float* data, size_t count, ReduceOp op, WireType wire);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<uint8_t> send_stage_, recv_stage_;  // one ring chunk each, in the wire type
};

}  // namespace alexnet::comm
