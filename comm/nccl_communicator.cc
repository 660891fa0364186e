// NcclCommunicator: set-up over MPI, the polled all-reduce, abort on failure or timeout.
#include "comm/nccl_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "comm/nccl_check.h"
#include "io/cuda/cast_kernels.h"
#include "io/cuda/cuda_check.h"
#include "io/numeric/precision.h"

namespace alexnet::comm {

namespace {

using Clock = std::chrono::steady_clock;

// Restores the calling thread's current device on the way out: all_reduce runs on whatever
// thread calls it and must not leave that thread on another of this rank's GPUs. A device that is
// not one of `ours` is not restored: a thread that never chose a device (the gradient buckets'
// communication thread) reports device 0, and cudaSetDevice(0) would create a context on GPU 0
// in every rank that does not drive it (hundreds of MB each). Such a thread stays on ours[0].
class CurrentDeviceGuard {
 public:
  explicit CurrentDeviceGuard(const std::vector<int>& ours) {
    if (cudaGetDevice(&device_) != cudaSuccess ||
        std::find(ours.begin(), ours.end(), device_) == ours.end()) {
      device_ = -1;
    }
  }
  ~CurrentDeviceGuard() {
    if (device_ >= 0) cudaSetDevice(device_);
  }
  CurrentDeviceGuard(const CurrentDeviceGuard&) = delete;
  CurrentDeviceGuard& operator=(const CurrentDeviceGuard&) = delete;

 private:
  int device_ = -1;
};

// Between polls: spin briefly (a bucket's all-reduce takes tens of microseconds to
// milliseconds), then sleep so that a long wait leaves the cores to the data loader.
class Backoff {
 public:
  void pause() {
    if (++polls_ < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

 private:
  int polls_ = 0;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

numeric::Precision wire_precision(WireType wire) {
  return wire == WireType::kBFloat16 ? numeric::Precision::kBFloat16 : numeric::Precision::kFloat16;
}

ncclDataType_t wire_nccl_type(WireType wire) {
  switch (wire) {
    case WireType::kFloat32:
      return ncclFloat32;
    case WireType::kBFloat16:
      return ncclBfloat16;
    case WireType::kFloat16:
      return ncclFloat16;
  }
  return ncclFloat32;
}

// Runs `calls` between ncclGroupStart and ncclGroupEnd. The group is closed even when a call
// throws: an open group would swallow every later NCCL call of this thread.
template <typename Calls>
void in_group(const std::string& what, Calls&& calls) {
  ALEXNET_NCCL_CHECK(ncclGroupStart(), what);
  try {
    calls();
  } catch (...) {
    ncclGroupEnd();
    throw;
  }
  ALEXNET_NCCL_CHECK_ASYNC(ncclGroupEnd(), what);
}

// Teardown waits this long where no timeout was configured: a job ending after a peer's failure
// must not hang in its destructor.
constexpr double kDefaultTeardownSeconds = 60;

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", seconds);
  return text;
}

}  // namespace

NcclCommunicator::NcclCommunicator(MpiCommunicator& mpi, const GpuAssignment& gpus,
                                   std::span<const cudaStream_t> compute_streams,
                                   const NcclOptions& options)
    : mpi_(mpi),
      options_(options),
      devices_(gpus.devices),
      compute_streams_(compute_streams.begin(), compute_streams.end()),
      nccl_size_(gpus.nccl_size) {
  const size_t g_count = devices_.size();
  // Checked on every rank, then agreed on: a rank that threw alone would leave the others
  // waiting in the next collective.
  std::string problem;
  if (g_count == 0 || gpus.nccl_ranks.size() != g_count) {
    problem = "the GPU assignment lists no devices";
  } else if (gpus.rank != mpi.rank() || gpus.size != mpi.size()) {
    problem = "the GPU assignment is for rank " + std::to_string(gpus.rank) + " of " +
              std::to_string(gpus.size) + ", this is rank " + std::to_string(mpi.rank()) + " of " +
              std::to_string(mpi.size());
  } else if (compute_streams_.size() != g_count) {
    problem = std::to_string(compute_streams_.size()) + " compute streams for " +
              std::to_string(g_count) + " devices";
  }
  if (mpi.all_reduce_max(problem.empty() ? 0 : 1) != 0) {
    throw std::invalid_argument("NCCL communicator on rank " + std::to_string(mpi.rank()) + ": " +
                                (problem.empty() ? "another rank's set-up was refused" : problem));
  }
  // Every rank must build the same NCCL world: a rank with another G would wait forever.
  const int64_t g = static_cast<int64_t>(g_count);
  const int64_t g_max = mpi.all_reduce_max(g), g_min = -mpi.all_reduce_max(-g);
  if (g_max != g_min) {
    throw std::invalid_argument("NCCL communicator: ranks disagree on GPUs per rank (" +
                                std::to_string(g_min) + " to " + std::to_string(g_max) + ")");
  }

  // Rank 0's id for everyone, with its success: a failure there must not leave the other ranks
  // waiting in NCCL's bootstrap for an id that never worked.
  struct {
    ncclUniqueId id;
    int32_t status;
  } root{};
  if (mpi.rank() == 0) root.status = static_cast<int32_t>(ncclGetUniqueId(&root.id));
  mpi.broadcast(&root, sizeof root, 0);
  if (root.status != ncclSuccess) {
    throw std::runtime_error(
        "NCCL communicator: ncclGetUniqueId failed on rank 0: " +
        std::string(ncclGetErrorString(static_cast<ncclResult_t>(root.status))));
  }

  CurrentDeviceGuard keep_device(devices_);
  try {
    comm_streams_.assign(g_count, nullptr);
    ready_events_.assign(g_count, nullptr);
    done_events_.assign(g_count, nullptr);
    staging_.assign(g_count, nullptr);
    for (size_t i = 0; i < g_count; ++i) {
      const std::string what = "setting up NCCL on device " + std::to_string(devices_[i]);
      ALEXNET_CUDA_CHECK(cudaSetDevice(devices_[i]), what);
      ALEXNET_CUDA_CHECK(cudaStreamCreateWithFlags(&comm_streams_[i], cudaStreamNonBlocking), what);
      ALEXNET_CUDA_CHECK(cudaEventCreateWithFlags(&ready_events_[i], cudaEventDisableTiming), what);
      ALEXNET_CUDA_CHECK(cudaEventCreateWithFlags(&done_events_[i], cudaEventDisableTiming), what);
    }

    // Non-blocking communicators: creation, enqueueing and teardown go on in the background and
    // are polled here, so that a missing peer ends in a timeout rather than a hang.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    comms_.assign(g_count, nullptr);
    const std::string what = "creating the NCCL communicator of rank " +
                             std::to_string(mpi.rank()) + " (NCCL size " +
                             std::to_string(nccl_size_) + ")";
    // One thread creating several ranks of one communicator must group the calls: each would
    // otherwise wait for the others.
    in_group(what, [&] {
      for (size_t i = 0; i < g_count; ++i) {
        ALEXNET_CUDA_CHECK(cudaSetDevice(devices_[i]), what);
        ALEXNET_NCCL_CHECK_ASYNC(
            ncclCommInitRankConfig(&comms_[i], nccl_size_, root.id, gpus.nccl_ranks[i], &config),
            what);
      }
    });
    wait_for_communicators(what, options_.init_timeout_seconds);
    reserve(options_.reserve_floats);
  } catch (...) {
    abort_communicators();
    release();
    throw;
  }
}

NcclCommunicator::~NcclCommunicator() {
  CurrentDeviceGuard keep_device(devices_);
  if (!aborted_) {
    // Finalize flushes outstanding work and leaves the peers cleanly; non-blocking, so the G
    // calls of one thread cannot wait on one another. On any trouble: abort instead.
    try {
      bool all_started = true;
      for (ncclComm_t comm : comms_) {
        const ncclResult_t r = ncclCommFinalize(comm);
        if (r != ncclSuccess && r != ncclInProgress) all_started = false;
      }
      if (!all_started) throw std::runtime_error("ncclCommFinalize failed");
      wait_for_communicators("closing the NCCL communicators", options_.timeout_seconds > 0
                                                                   ? options_.timeout_seconds
                                                                   : kDefaultTeardownSeconds);
      for (ncclComm_t& comm : comms_) {
        ncclCommDestroy(comm);
        comm = nullptr;
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d: %s; aborting the NCCL communicators\n", mpi_.rank(), e.what());
      abort_communicators();
    }
  }
  release();
}

void NcclCommunicator::abort_communicators() noexcept {
  for (ncclComm_t& comm : comms_) {
    if (comm != nullptr) ncclCommAbort(comm);
    comm = nullptr;
  }
  aborted_ = true;
}

void NcclCommunicator::release() noexcept {
  // Unchecked: this runs on the way out, possibly after a CUDA failure.
  for (size_t i = 0; i < devices_.size(); ++i) {
    cudaSetDevice(devices_[i]);
    if (i < staging_.size() && staging_[i] != nullptr) cudaFree(staging_[i]);
    if (i < ready_events_.size() && ready_events_[i] != nullptr) cudaEventDestroy(ready_events_[i]);
    if (i < done_events_.size() && done_events_[i] != nullptr) cudaEventDestroy(done_events_[i]);
    if (i < comm_streams_.size() && comm_streams_[i] != nullptr) {
      cudaStreamDestroy(comm_streams_[i]);
    }
  }
  staging_.clear();
  ready_events_.clear();
  done_events_.clear();
  comm_streams_.clear();
  staging_floats_ = 0;
}

void NcclCommunicator::reserve(size_t count) {
  if (count <= staging_floats_) return;
  CurrentDeviceGuard keep_device(devices_);
  const std::string what = "allocating NCCL staging for " + std::to_string(count) + " values";
  for (size_t i = 0; i < devices_.size(); ++i) {
    ALEXNET_CUDA_CHECK(cudaSetDevice(devices_[i]), what);
    if (staging_[i] != nullptr) {
      ALEXNET_CUDA_CHECK(cudaFree(staging_[i]), what);
      staging_[i] = nullptr;
    }
    ALEXNET_CUDA_CHECK(cudaMalloc(&staging_[i], count * sizeof(uint16_t)), what);
  }
  staging_floats_ = count;
}

bool NcclCommunicator::poll_communicators(const std::string& what) {
  bool busy = false;
  for (size_t i = 0; i < comms_.size(); ++i) {
    ncclResult_t state = ncclSuccess;
    ALEXNET_NCCL_CHECK(ncclCommGetAsyncError(comms_[i], &state), what);
    if (state == ncclInProgress) {
      busy = true;
    } else if (state != ncclSuccess) {
      throw PeerLost("rank " + std::to_string(mpi_.rank()) + ": NCCL failed on device " +
                     std::to_string(devices_[i]) + " while " + what + ": " +
                     nccl_error_text(state) +
                     (state == ncclRemoteError ? " (a peer rank failed or went away)" : "") +
                     "; the NCCL communicators were aborted");
    }
  }
  return busy;
}

void NcclCommunicator::wait_for_communicators(const std::string& what, double timeout_seconds) {
  const Clock::time_point start = Clock::now();
  Backoff backoff;
  while (poll_communicators(what)) {
    if (timeout_seconds > 0 && seconds_since(start) > timeout_seconds) {
      throw PeerLost("rank " + std::to_string(mpi_.rank()) + ": timed out after " +
                     seconds_text(timeout_seconds) + " " + what +
                     " (a peer rank stopped, is stuck, or never arrived); the NCCL "
                     "communicators were aborted");
    }
    backoff.pause();
  }
}

void NcclCommunicator::wait_for_events(const std::string& what) {
  const Clock::time_point start = Clock::now();
  Backoff backoff;
  size_t pending = 0;  // the first device whose event has not completed
  while (pending < done_events_.size()) {
    const cudaError_t status = cudaEventQuery(done_events_[pending]);
    if (status == cudaSuccess) {
      ++pending;
      continue;
    }
    if (status != cudaErrorNotReady) {
      ALEXNET_CUDA_CHECK(status, what);
    }
    // Errors of NCCL's own (network, peers) show here while the kernels wait for data.
    poll_communicators(what);
    if (options_.timeout_seconds > 0 && seconds_since(start) > options_.timeout_seconds) {
      throw PeerLost("rank " + std::to_string(mpi_.rank()) + ": timed out after " +
                     seconds_text(options_.timeout_seconds) + " " + what +
                     " (a peer rank stopped or is stuck; the NCCL communicators were "
                     "aborted)");
    }
    backoff.pause();
  }
}

void NcclCommunicator::all_reduce(float* data, size_t count, ReduceOp op, WireType wire) {
  if (devices_.size() != 1) {
    throw std::logic_error("NcclCommunicator::all_reduce(float*): this rank drives " +
                           std::to_string(devices_.size()) + " GPUs; pass one pointer per device");
  }
  float* const one[1] = {data};
  reduce_on_devices(one, count, op, wire);
}

void NcclCommunicator::all_reduce(std::span<float* const> per_device, size_t count, ReduceOp op,
                                  WireType wire) {
  if (per_device.size() != devices_.size()) {
    throw std::invalid_argument(
        "NcclCommunicator::all_reduce: " + std::to_string(per_device.size()) + " pointers for " +
        std::to_string(devices_.size()) + " devices");
  }
  reduce_on_devices(per_device, count, op, wire);
}

void NcclCommunicator::reduce_on_devices(std::span<float* const> per_device, size_t count,
                                         ReduceOp op, WireType wire) {
  if (aborted_) {
    throw std::runtime_error("NCCL all-reduce on rank " + std::to_string(mpi_.rank()) +
                             ": the communicators were aborted after an earlier failure");
  }
  if (count == 0) return;
  const bool staged = wire != WireType::kFloat32;
  if (staged) reserve(count);
  const std::string what = "all-reducing " + std::to_string(count) + " floats (" +
                           wire_type_name(wire) + " on the wire)";
  const ncclRedOp_t nccl_op = op == ReduceOp::kAverage ? ncclAvg : ncclSum;
  const ncclDataType_t type = wire_nccl_type(wire);
  CurrentDeviceGuard keep_device(devices_);
  try {
    // The gradients are ready when the compute stream's work so far is done.
    for (size_t i = 0; i < devices_.size(); ++i) {
      ALEXNET_CUDA_CHECK(cudaSetDevice(devices_[i]), what);
      ALEXNET_CUDA_CHECK(cudaEventRecord(ready_events_[i], compute_streams_[i]), what);
      ALEXNET_CUDA_CHECK(cudaStreamWaitEvent(comm_streams_[i], ready_events_[i], 0), what);
      if (staged) {
        cuda::cast_from_float(per_device[i], staging_[i], count, wire_precision(wire),
                              comm_streams_[i]);  // checks its launch
      }
    }
    in_group(what, [&] {
      for (size_t i = 0; i < devices_.size(); ++i) {
        void* buffer = staged ? staging_[i] : static_cast<void*>(per_device[i]);
        ALEXNET_NCCL_CHECK_ASYNC(
            ncclAllReduce(buffer, buffer, count, type, nccl_op, comms_[i], comm_streams_[i]), what);
      }
    });
    // Non-blocking communicators: nothing more may be enqueued on their streams until the
    // operation has actually been launched.
    wait_for_communicators(what, options_.timeout_seconds);
    for (size_t i = 0; i < devices_.size(); ++i) {
      ALEXNET_CUDA_CHECK(cudaSetDevice(devices_[i]), what);
      if (staged) {
        cuda::cast_to_float(staging_[i], per_device[i], count, wire_precision(wire),
                            comm_streams_[i]);  // checks its launch
      }
      ALEXNET_CUDA_CHECK(cudaEventRecord(done_events_[i], comm_streams_[i]), what);
    }
    wait_for_events(what);
  } catch (...) {
    // After any failure NCCL's state is unknown and peers may be stuck in this collective:
    // abort (their NCCL sees the abort or our disappearance) and let the job end with the reason.
    abort_communicators();
    throw;
  }
}

void NcclCommunicator::all_reduce(double* data, size_t count, ReduceOp op) {
  mpi_.all_reduce(data, count, op);
}

int64_t NcclCommunicator::all_reduce_max(int64_t value) { return mpi_.all_reduce_max(value); }

void NcclCommunicator::broadcast(void* data, size_t bytes, int root) {
  mpi_.broadcast(data, bytes, root);
}

void NcclCommunicator::all_gather(const void* mine, void* all, size_t bytes_each) {
  mpi_.all_gather(mine, all, bytes_each);
}

void NcclCommunicator::barrier() { mpi_.barrier(); }

void NcclCommunicator::abort(int exit_code) { mpi_.abort(exit_code); }

}  // namespace alexnet::comm
