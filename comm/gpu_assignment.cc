// GPU assignment: validation, the device and NCCL rank arithmetic, and the log line.
#include "comm/gpu_assignment.h"

#include <climits>
#include <stdexcept>
#include <string>

namespace alexnet::comm {

namespace {

constexpr int kMaxGpusPerRank = 64;  // no node has more; larger values are typos

std::string join(const std::vector<int>& values) {
  std::string text;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(values[i]);
  }
  return text;
}

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("GPU assignment: " + message);
}

}  // namespace

GpuAssignment assign_gpus(int rank, int size, int local_rank, int local_size, int gpus_per_rank,
                          int visible_devices, const std::string& node) {
  const std::string g = std::to_string(gpus_per_rank);
  if (gpus_per_rank < 1 || gpus_per_rank > kMaxGpusPerRank) {
    fail("gpus per rank " + g + ": expected 1 to " + std::to_string(kMaxGpusPerRank));
  }
  if (size < 1 || rank < 0 || rank >= size) {
    fail("rank " + std::to_string(rank) + " of " + std::to_string(size) + " is not a rank");
  }
  if (local_size < 1 || local_size > size || local_rank < 0 || local_rank >= local_size) {
    fail("local rank " + std::to_string(local_rank) + " of " + std::to_string(local_size) +
         " on node " + node + " (job of " + std::to_string(size) + " ranks) is not a rank");
  }
  if (visible_devices < 1) {
    fail("no CUDA device visible on node " + node +
         " (no GPU or driver, or CUDA_VISIBLE_DEVICES empty)");
  }
  // local_size * G and size * G in 64 bits: both inputs are ints.
  const long long wanted = static_cast<long long>(local_size) * gpus_per_rank;
  // A launcher that binds GPUs per rank (Slurm's --gpus-per-task, a wrapper setting
  // CUDA_VISIBLE_DEVICES per rank) shows each rank exactly its own G devices.
  const bool bound_per_rank = local_size > 1 && visible_devices == gpus_per_rank;
  if (wanted > visible_devices && !bound_per_rank) {
    fail(std::to_string(local_size) + (local_size == 1 ? " rank" : " ranks") + " on node " + node +
         " want " + g + (gpus_per_rank == 1 ? " GPU" : " GPUs") + " each (" +
         std::to_string(wanted) + "), " + std::to_string(visible_devices) + " visible");
  }
  if (static_cast<long long>(size) * gpus_per_rank > INT_MAX) {
    fail(std::to_string(size) + " ranks of " + g + " GPUs exceed NCCL's rank range");
  }

  GpuAssignment a;
  a.rank = rank;
  a.size = size;
  a.local_rank = local_rank;
  a.local_size = local_size;
  a.gpus_per_rank = gpus_per_rank;
  a.visible_devices = visible_devices;
  a.node = node;
  a.nccl_size = size * gpus_per_rank;
  a.bound_per_rank = bound_per_rank;
  for (int i = 0; i < gpus_per_rank; ++i) {
    a.devices.push_back((bound_per_rank ? 0 : local_rank * gpus_per_rank) + i);
    a.nccl_ranks.push_back(rank * gpus_per_rank + i);
  }
  return a;
}

int parse_gpus_per_rank(const std::string& text) {
  const auto bad = [&]() -> std::invalid_argument {
    return std::invalid_argument("--gpus-per-rank '" + text +
                                 "': expected a whole number from 1 to " +
                                 std::to_string(kMaxGpusPerRank));
  };
  if (text.empty() || text.size() > 2) throw bad();
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw bad();
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > kMaxGpusPerRank) throw bad();
  return value;
}

std::string describe_gpu_assignment(const GpuAssignment& a, const char* cuda_visible_devices) {
  std::string text = "rank " + std::to_string(a.rank) + " of " + std::to_string(a.size) +
                     " (local " + std::to_string(a.local_rank) + " of " +
                     std::to_string(a.local_size) + " on " + a.node +
                     "): " + (a.devices.size() == 1 ? "GPU " : "GPUs ") + join(a.devices) + " of " +
                     std::to_string(a.visible_devices) + " visible" +
                     (a.bound_per_rank ? " (bound to this rank by the launcher)" : "");
  if (cuda_visible_devices != nullptr) {
    text += std::string(" (CUDA_VISIBLE_DEVICES=") + cuda_visible_devices + ")";
  }
  text += std::string(", NCCL ") + (a.nccl_ranks.size() == 1 ? "rank " : "ranks ") +
          join(a.nccl_ranks) + " of " + std::to_string(a.nccl_size);
  return text;
}

}  // namespace alexnet::comm
