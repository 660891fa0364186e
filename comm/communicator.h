// The collective operations data-parallel training needs, behind one interface: MPI on CPUs
// (comm/mpi_communicator.h), NCCL on GPUs (the GPU backend's, over device memory). Every
// replica calls the same operations in the same order; all are blocking for the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace alexnet::comm {

enum class ReduceOp { kSum, kAverage };

// What gradient values travel as. 16-bit types halve the bytes on the wire; every sum is still
// accumulated in fp32, and every rank ends with the same values (the owner of each reduced
// chunk rounds its own copy through the wire type too, so replicas never drift apart).
enum class WireType { kFloat32, kBFloat16, kFloat16 };

// "fp32" | "bf16" | "fp16"; throws std::invalid_argument naming the accepted values.
WireType parse_wire_type(const std::string& name);
const char* wire_type_name(WireType type);

// A collective that cannot complete because a peer failed, went away or stopped answering within
// the timeout (the job ends with "peer lost", exit status 5, rather than hang).
class PeerLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This process's index among the ranks on its node (which GPU it drives).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;    // ranks on this node
  virtual std::string name() const = 0;  // "mpi", "nccl"

  // In place over `count` floats of every rank; kAverage divides the sum by size().
  virtual void all_reduce(float* data, size_t count, ReduceOp op,
                          WireType wire = WireType::kFloat32) = 0;
  // Small host-side reductions (metrics, counters), exact in double.
  virtual void all_reduce(double* data, size_t count, ReduceOp op) = 0;
  // The largest value over ranks, e.g. of a "stop requested" flag.
  virtual int64_t all_reduce_max(int64_t value) = 0;
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank's `bytes_each` bytes, rank order, into `all` (size() * bytes_each bytes).
  virtual void all_gather(const void* mine, void* all, size_t bytes_each) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with `exit_code`, without waiting for any of them.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

}  // namespace alexnet::comm
