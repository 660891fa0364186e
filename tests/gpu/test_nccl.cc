// NcclCommunicator (comm/nccl_communicator.h) on real GPUs, with MPI around GoogleTest
// (tests/comm/mpi_test_main.cc). Every test works at any number of ranks: each GPU of the job
// fills its buffer from (seed, NCCL rank), so every rank knows the exact answer.
//   - alone under CTest (one rank, one GPU): the all-reduce over device memory, sum and average,
//     fp32, bf16 and fp16 on the wire; a blocked compute stream ending in a timeout and abort.
//   - one rank driving all its node's GPUs (G > 1): the grouped all-reduce.
//   - under `mpirun -np 2` (tests/gpu/two_process_nccl.sh), each rank its own GPU: the same
//     all-reduces across processes, replicas identical, and a silent peer ending in a timeout.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/gpu_assignment.h"
#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "io/numeric/precision.h"
#include "tests/gpu/gpu_test.h"

namespace alexnet::comm {
namespace {

#define CHECK_CUDA(call) ASSERT_EQ((call), cudaSuccess) << #call

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "this node";
  return name;
}

// The job's layout with G GPUs a rank; GTEST_SKIP's reason in `skip` where the node has too few.
// Every rank of a node sees the same device count, so all ranks skip together.
GpuAssignment assignment(MpiCommunicator& mpi, int gpus_per_rank, std::string* skip) {
  const int visible = trainer::cuda_device_count();
  if (mpi.local_size() * gpus_per_rank > visible) {
    *skip = "needs " + std::to_string(mpi.local_size() * gpus_per_rank) + " GPUs on the node, " +
            std::to_string(visible) + " visible";
    return {};
  }
  return assign_gpus(mpi.rank(), mpi.size(), mpi.local_rank(), mpi.local_size(), gpus_per_rank,
                     visible, host_name());
}

std::vector<float> nccl_rank_data(size_t n, int nccl_rank) {
  std::mt19937 rng(777 + static_cast<uint32_t>(nccl_rank));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

float through_wire(float x, WireType wire) {
  switch (wire) {
    case WireType::kBFloat16:
      return numeric::bf16_to_float(numeric::float_to_bf16(x));
    case WireType::kFloat16:
      return numeric::fp16_to_float(numeric::float_to_fp16(x));
    case WireType::kFloat32:
      break;
  }
  return x;
}

// The exact (double) sum or average over every GPU of the job of its wire-rounded input.
std::vector<double> exact_result(size_t n, int nccl_size, ReduceOp op, WireType wire) {
  std::vector<double> exact(n, 0.0);
  for (int r = 0; r < nccl_size; ++r) {
    const std::vector<float> v = nccl_rank_data(n, r);
    for (size_t i = 0; i < n; ++i) exact[i] += through_wire(v[i], wire);
  }
  if (op == ReduceOp::kAverage) {
    for (double& x : exact) x /= nccl_size;
  }
  return exact;
}

// Worst absolute error allowed. Every |partial sum| <= p (inputs in [-1, 1], p GPUs), and NCCL
// rounds each of at most p - 1 additions to the wire type (bf16: unit roundoff 2^-9, fp16 2^-12,
// fp32 2^-24), plus the final cast and ncclAvg's pre-multiplication by 1/p: (p + 2) roundings of
// at most p * u each. Inputs are compared after their own wire rounding (exact_result).
double tolerance(int p, WireType wire) {
  const double u = wire == WireType::kBFloat16  ? std::ldexp(1.0, -9)
                   : wire == WireType::kFloat16 ? std::ldexp(1.0, -12)
                                                : std::ldexp(1.0, -24);
  return (p + 2) * p * u;
}

// Device buffers and a compute stream on one device, released in order.
class DeviceBuffer {
 public:
  DeviceBuffer(int device, size_t n) : device_(device), n_(n) {
    if (cudaSetDevice(device) != cudaSuccess || cudaStreamCreate(&stream_) != cudaSuccess ||
        cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(float)) != cudaSuccess) {
      throw std::runtime_error("cannot set up a buffer on device " + std::to_string(device));
    }
  }
  ~DeviceBuffer() {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    cudaFree(data_);
    cudaStreamDestroy(stream_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* data() { return data_; }
  cudaStream_t stream() const { return stream_; }
  // Enqueued on the compute stream: the all-reduce must wait for it (its ready event).
  cudaError_t upload(const std::vector<float>& v) {
    cudaSetDevice(device_);
    return cudaMemcpyAsync(data_, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice,
                           stream_);
  }
  std::vector<float> download() {
    std::vector<float> v(n_);
    cudaSetDevice(device_);
    if (cudaMemcpy(v.data(), data_, n_ * sizeof(float), cudaMemcpyDeviceToHost) != cudaSuccess) {
      throw std::runtime_error("cannot read device " + std::to_string(device_));
    }
    return v;
  }

 private:
  int device_;
  size_t n_;
  cudaStream_t stream_ = nullptr;
  float* data_ = nullptr;
};

// True when every rank holds the same bytes as rank 0.
bool same_on_every_rank(MpiCommunicator& mpi, const std::vector<float>& v) {
  std::vector<float> root = v;
  mpi.broadcast(root.data(), root.size() * sizeof(float), 0);
  const int64_t differs = std::memcmp(root.data(), v.data(), v.size() * sizeof(float)) != 0;
  return mpi.all_reduce_max(differs) == 0;
}

struct Case {
  WireType wire;
  ReduceOp op;
};

class NcclAllReduce : public ::testing::TestWithParam<Case> {};

TEST_P(NcclAllReduce, MatchesTheExactResultOnEveryGpuOfTheJob) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  const Case c = GetParam();
  MpiCommunicator mpi;
  std::string skip;
  const GpuAssignment gpus = assignment(mpi, 1, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  // Odd sizes (no multiple of NCCL's chunking), one above the reserved staging (it grows once).
  const std::vector<size_t> counts = {1, 1237, 262147, 300001};
  DeviceBuffer buffer(gpus.devices[0], counts.back());
  const cudaStream_t streams[1] = {buffer.stream()};
  NcclOptions options;
  options.timeout_seconds = 120;
  options.init_timeout_seconds = 120;
  options.reserve_floats = 262147;
  NcclCommunicator nccl(mpi, gpus, streams, options);
  ASSERT_EQ(nccl.nccl_size(), mpi.size());
  const int p = nccl.nccl_size();
  for (size_t n : counts) {
    SCOPED_TRACE("count " + std::to_string(n));
    CHECK_CUDA(buffer.upload(nccl_rank_data(n, gpus.nccl_ranks[0])));
    nccl.all_reduce(buffer.data(), n, c.op, c.wire);
    std::vector<float> got = buffer.download();
    got.resize(n);
    const std::vector<double> exact = exact_result(n, p, c.op, c.wire);
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_FALSE(std::isnan(got[i])) << "at " << i;
      worst = std::max(worst, std::abs(got[i] - exact[i]));
    }
    if (p == 1) {
      // One GPU: the sum and the average are its own values, rounded through the wire once.
      EXPECT_EQ(worst, 0.0);
    } else {
      EXPECT_LE(worst, tolerance(p, c.wire));
    }
    EXPECT_TRUE(same_on_every_rank(mpi, got)) << "replicas differ";
  }
  EXPECT_FALSE(nccl.aborted());
}

INSTANTIATE_TEST_SUITE_P(WiresAndOps, NcclAllReduce,
                         ::testing::Values(Case{WireType::kFloat32, ReduceOp::kSum},
                                           Case{WireType::kFloat32, ReduceOp::kAverage},
                                           Case{WireType::kBFloat16, ReduceOp::kSum},
                                           Case{WireType::kBFloat16, ReduceOp::kAverage},
                                           Case{WireType::kFloat16, ReduceOp::kSum},
                                           Case{WireType::kFloat16, ReduceOp::kAverage}),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return std::string(wire_type_name(param.param.wire)) +
                                  (param.param.op == ReduceOp::kSum ? "_sum" : "_average");
                         });

// G = every GPU of this rank's share of the node, in one process: one ncclAllReduce per device
// in a group; every device ends with the job's sum.
TEST(NcclGrouped, AllDevicesOfARankReduceTogether) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  MpiCommunicator mpi;
  const int g = trainer::cuda_device_count() / mpi.local_size();
  if (g < 2)
    GTEST_SKIP() << "needs 2 GPUs per rank (" << trainer::cuda_device_count() << " visible)";
  std::string skip;
  const GpuAssignment gpus = assignment(mpi, g, &skip);
  ASSERT_TRUE(skip.empty()) << skip;
  const size_t n = 100003;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  std::vector<cudaStream_t> streams;
  std::vector<float*> pointers;
  for (int i = 0; i < g; ++i) {
    buffers.push_back(std::make_unique<DeviceBuffer>(gpus.devices[i], n));
    streams.push_back(buffers.back()->stream());
    pointers.push_back(buffers.back()->data());
  }
  NcclOptions options;
  options.timeout_seconds = 120;
  options.init_timeout_seconds = 120;
  options.reserve_floats = n;
  NcclCommunicator nccl(mpi, gpus, streams, options);
  EXPECT_EQ(nccl.nccl_size(), mpi.size() * g);
  // One pointer for several devices is a usage error, before anything is enqueued.
  EXPECT_THROW(nccl.all_reduce(pointers[0], n, ReduceOp::kSum, WireType::kFloat32),
               std::logic_error);
  for (WireType wire : {WireType::kFloat32, WireType::kBFloat16}) {
    SCOPED_TRACE(wire_type_name(wire));
    for (int i = 0; i < g; ++i) {
      CHECK_CUDA(buffers[static_cast<size_t>(i)]->upload(nccl_rank_data(n, gpus.nccl_ranks[i])));
    }
    nccl.all_reduce(pointers, n, ReduceOp::kSum, wire);
    const std::vector<double> exact = exact_result(n, nccl.nccl_size(), ReduceOp::kSum, wire);
    const std::vector<float> first = buffers[0]->download();
    double worst = 0;
    for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(first[i] - exact[i]));
    EXPECT_LE(worst, tolerance(nccl.nccl_size(), wire));
    for (int i = 1; i < g; ++i) {
      EXPECT_TRUE(buffers[static_cast<size_t>(i)]->download() == first)
          << "device " << gpus.devices[i] << " differs from device " << gpus.devices[0];
    }
    EXPECT_TRUE(same_on_every_rank(mpi, first)) << "replicas differ";
  }
}

// Blocks a stream until released (cudaLaunchHostFunc): stands for a compute stream that never
// finishes its gradients.
struct Gate {
  std::atomic<bool> open{false};
  static void CUDART_CB wait(void* self) {
    auto* gate = static_cast<Gate*>(self);
    while (!gate->open.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

// One GPU in the job: fp32 sum in place on one rank enqueues no NCCL kernel at all, so nothing
// runs on the aborted communicator once the gate opens. The compute stream is held; the
// all-reduce must give up after its timeout, abort, and refuse later calls.
TEST(NcclTimeout, BlockedComputeStreamTimesOutAndAborts) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  MpiCommunicator mpi;
  if (mpi.size() != 1) GTEST_SKIP() << "a one-rank case (its NCCL op must enqueue nothing)";
  std::string skip;
  const GpuAssignment gpus = assignment(mpi, 1, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  const size_t n = 1000;
  DeviceBuffer buffer(gpus.devices[0], n);
  const cudaStream_t streams[1] = {buffer.stream()};
  NcclOptions options;
  options.timeout_seconds = 0.5;
  options.init_timeout_seconds = 120;
  NcclCommunicator nccl(mpi, gpus, streams, options);

  Gate gate;
  CHECK_CUDA(cudaLaunchHostFunc(buffer.stream(), &Gate::wait, &gate));
  // Opens the gate whatever happens below (ncclCommAbort may wait for the device).
  std::thread opener([&gate] {
    std::this_thread::sleep_for(std::chrono::seconds(3));
    gate.open = true;
  });
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    nccl.all_reduce(buffer.data(), n, ReduceOp::kSum, WireType::kFloat32);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  opener.join();
  EXPECT_NE(message.find("timed out after 0.5 s"), std::string::npos) << message;
  EXPECT_NE(message.find("aborted"), std::string::npos) << message;
  EXPECT_GE(waited, 0.5);
  EXPECT_TRUE(nccl.aborted());
  try {
    nccl.all_reduce(buffer.data(), n, ReduceOp::kSum, WireType::kFloat32);
    ADD_FAILURE() << "an all-reduce after the abort ran";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("aborted after an earlier failure"), std::string::npos)
        << e.what();
  }
  // The host-side operations still work (they are MPI's).
  double x = 2;
  nccl.all_reduce(&x, 1, ReduceOp::kSum);
  EXPECT_EQ(x, 2.0);
}

// Two processes, each its own GPU (two_process_nccl.sh): after one good all-reduce, rank 1 stays
// out of the next one. Rank 0 must time out and abort rather than hang; then both go on (over
// MPI) and tear down. Last in the file: it leaves an aborted NCCL world behind.
TEST(NcclTwoProcess, SilentPeerTimesOutAndAborts) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  MpiCommunicator mpi;
  if (mpi.size() != 2) GTEST_SKIP() << "needs mpirun -np 2 (two_process_nccl.sh)";
  std::string skip;
  const GpuAssignment gpus = assignment(mpi, 1, &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  const size_t n = 65537;
  DeviceBuffer buffer(gpus.devices[0], n);
  const cudaStream_t streams[1] = {buffer.stream()};
  NcclOptions options;
  options.timeout_seconds = 5;  // the first all-reduce also connects the peers
  options.init_timeout_seconds = 120;
  NcclCommunicator nccl(mpi, gpus, streams, options);
  CHECK_CUDA(buffer.upload(nccl_rank_data(n, gpus.nccl_ranks[0])));
  nccl.all_reduce(buffer.data(), n, ReduceOp::kSum, WireType::kFloat32);
  ASSERT_FALSE(nccl.aborted());
  if (mpi.rank() == 0) {
    std::string message;
    try {
      nccl.all_reduce(buffer.data(), n, ReduceOp::kSum, WireType::kFloat32);
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_TRUE(message.find("timed out") != std::string::npos ||
                message.find("NCCL failed") != std::string::npos)
        << message;
    EXPECT_TRUE(nccl.aborted());
  }
  mpi.barrier();
}

}  // namespace
}  // namespace alexnet::comm
