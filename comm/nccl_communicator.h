// The Communicator over NCCL, for GPU training: gradient all-reduces over device memory.
//
// One NCCL communicator spans every GPU of every rank (comm/gpu_assignment.h: a rank drives G
// devices, NCCL rank r*G + g of size*G). Only the float all-reduce goes through NCCL; the small
// host-side operations (double all-reduce, max, broadcast, all-gather, barrier, abort) are the
// MpiCommunicator's underneath, which also gives rank, size and the node-local rank.
//
// Ordering: each device has a communication stream of its own. An all-reduce first records an
// event on that device's compute stream (the backend's stream, whose work produced the gradients)
// and makes the communication stream wait on it, so it may be called from another thread (the
// gradient buckets' communication thread) as soon as the gradients' kernels are enqueued. It
// returns when the reduced values are in place: later work on any stream may read them. The
// calling thread keeps its current device when that is one of this rank's; any other thread (one
// that never chose a device) is left on devices()[0].
//
// Failure: the communicators are non-blocking (ncclConfig_t::blocking = 0), and every wait
// (initialization, enqueueing, completion) polls cudaEventQuery and ncclCommGetAsyncError with
// a timeout. On an NCCL error (a peer died, the network failed) or a timeout, every communicator
// of this rank is aborted (ncclCommAbort) and std::runtime_error says what happened, so the job
// ends with a message instead of hanging; every later all-reduce throws at once.
//
// 16-bit wire types: the fp32 values are cast into a staging buffer (bf16 or fp16), reduced there
// and cast back. NCCL accumulates in the wire type itself (its bf16 sum rounds to bf16 at every
// step), unlike MpiCommunicator's ring, which sums in fp32: up to one rounding per GPU of the job
// instead of one in all, and fp16 sums can overflow past 65504. Replicas end identical: NCCL's
// algorithms reduce each element once and pass the result on (tests/gpu/test_nccl.cc checks it).
// fp32 on the wire rounds as any fp32 sum does, in NCCL's order.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/gpu_assignment.h"
#include "comm/mpi_communicator.h"

namespace alexnet::comm {

struct NcclOptions {
  // Longest wait for one all-reduce; 0 = none. Also the teardown's (60 s where 0).
  double timeout_seconds = 0;
  // Longest wait for the communicators' creation (all ranks must arrive); 0 = none.
  double init_timeout_seconds = 0;
  // Staging floats to allocate at construction for 16-bit wire types (see reserve()).
  size_t reserve_floats = 0;
};

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `mpi`'s ranks, which must all call it with the same G. `gpus` is this rank's
  // assign_gpus(...) (its rank and size must be mpi's); `compute_streams[g]` is the stream that
  // produces device gpus.devices[g]'s gradients (nullptr: the legacy default stream). Throws
  // std::runtime_error when NCCL cannot be set up (after init_timeout_seconds at most).
  NcclCommunicator(MpiCommunicator& mpi, const GpuAssignment& gpus,
                   std::span<const cudaStream_t> compute_streams, const NcclOptions& options = {});
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }  // ranks (processes), as MPI counts them
  int local_rank() const override { return mpi_.local_rank(); }
  int local_size() const override { return mpi_.local_size(); }
  std::string name() const override { return "nccl"; }

  int gpus_per_rank() const { return static_cast<int>(devices_.size()); }
  int nccl_size() const { return nccl_size_; }  // size() * gpus_per_rank(): kAverage's divisor
  const std::vector<int>& devices() const { return devices_; }
  // The compute stream of device g waits for nothing of ours: all_reduce has finished when it
  // returns. Exposed for profiling (events on it bracket the NCCL kernels).
  cudaStream_t communication_stream(int g) const { return comm_streams_[static_cast<size_t>(g)]; }
  bool aborted() const { return aborted_; }

  // Allocates the 16-bit staging buffers (one per device) an all-reduce of up to `count` floats
  // needs, so that no later call allocates. A larger call would grow them once (cudaFree and
  // cudaMalloc: it synchronizes the device); fp32 needs no staging.
  void reserve(size_t count);

  // Device memory of the one device (G == 1; with G > 1 use the per-device form). In place over
  // `count` floats of every GPU of the job; kAverage divides the sum by nccl_size().
  void all_reduce(float* data, size_t count, ReduceOp op, WireType wire) override;
  // One pointer per device of this rank (per_device[g] on devices()[g]), all reduced together:
  // one ncclAllReduce per device inside ncclGroupStart/End.
  void all_reduce(std::span<float* const> per_device, size_t count, ReduceOp op, WireType wire);

  void all_reduce(double* data, size_t count, ReduceOp op) override;
  int64_t all_reduce_max(int64_t value) override;
  void broadcast(void* data, size_t bytes, int root) override;
  void all_gather(const void* mine, void* all, size_t bytes_each) override;
  void barrier() override;
  // MPI_Abort: ends every rank of the job at once (NCCL state dies with the processes).
  [[noreturn]] void abort(int exit_code) override;

 private:
  void reduce_on_devices(std::span<float* const> per_device, size_t count, ReduceOp op,
                         WireType wire);
  // One look at every communicator: throws on an error, true while any is ncclInProgress.
  bool poll_communicators(const std::string& what);
  // Polls every communicator until none is ncclInProgress; throws on an error or after
  // `timeout_seconds` (0: never), naming `what`.
  void wait_for_communicators(const std::string& what, double timeout_seconds);
  // Polls the done events and the communicators until every event has completed.
  void wait_for_events(const std::string& what);
  void abort_communicators() noexcept;
  void release() noexcept;

  MpiCommunicator& mpi_;
  const NcclOptions options_;
  std::vector<int> devices_;
  std::vector<cudaStream_t> compute_streams_;  // not ours
  std::vector<cudaStream_t> comm_streams_;
  std::vector<cudaEvent_t> ready_events_, done_events_;
  std::vector<ncclComm_t> comms_;
  std::vector<void*> staging_;  // per device, staging_floats_ 16-bit values
  size_t staging_floats_ = 0;
  int nccl_size_ = 1;
  bool aborted_ = false;
};

}  // namespace alexnet::comm
