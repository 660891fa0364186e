// Which GPUs each rank drives: plain bookkeeping (no CUDA here), so that every case is tested on
// CPUs. A rank drives G = gpus_per_rank devices; the ranks of one node take consecutive blocks,
// local rank l the devices l*G ... l*G + G - 1. Every GPU of the job is one NCCL rank: global rank
// r's g-th device is NCCL rank r*G + g of size*G.
//
// Device ordinals count among the VISIBLE devices: cudaGetDeviceCount and cudaSetDevice already
// honour CUDA_VISIBLE_DEVICES, so with CUDA_VISIBLE_DEVICES=4,5,6,7 ordinal 0 is physical GPU 4.
// Pass cudaGetDeviceCount's answer as visible_devices; the assignment never reads the variable
// itself (describe_gpu_assignment shows it in the log line, where the physical GPU matters).
#pragma once

#include <string>
#include <vector>

namespace alexnet::comm {

struct GpuAssignment {
  int rank = 0, size = 1;              // MPI rank and ranks in the job
  int local_rank = 0, local_size = 1;  // among the ranks on this node
  int gpus_per_rank = 1;               // G
  int visible_devices = 0;             // CUDA devices this process sees
  std::string node;                    // host name, for messages
  std::vector<int> devices;            // G ordinals among the visible devices
  std::vector<int> nccl_ranks;         // the NCCL rank of each of those devices
  int nccl_size = 1;                   // size * G: every GPU of the job
  // The launcher bound GPUs per rank: each rank of a node sees only its own G devices (Slurm's
  // --gpus-per-task, CUDA_VISIBLE_DEVICES set per rank), so it takes 0 ... G-1.
  bool bound_per_rank = false;
};

// Throws std::invalid_argument (one line) on an impossible layout: G < 1, rank outside
// [0, size), local_rank outside [0, local_size), local_size > size, no visible device, or more
// GPUs wanted on the node than it shows ("4 ranks on node n1 want 2 GPUs each (8), 6 visible"),
// unless each rank sees exactly G devices: then the launcher bound them per rank and every rank
// takes its 0 ... G-1 (if it did not, NCCL refuses two ranks on one device at start-up).
GpuAssignment assign_gpus(int rank, int size, int local_rank, int local_size, int gpus_per_rank,
                          int visible_devices, const std::string& node = "this node");

// A --gpus-per-rank value: a whole number from 1 to 64 (no sign, no spaces, no suffix); throws
// std::invalid_argument naming the flag and what was given.
int parse_gpus_per_rank(const std::string& text);

// For the log, e.g. "rank 1 of 2 (local 1 of 2 on n1): GPUs 2,3 of 4 visible
// (CUDA_VISIBLE_DEVICES=4,5,6,7), NCCL ranks 2,3 of 4". `cuda_visible_devices` is the variable's
// value, nullptr when unset (as std::getenv gives it).
std::string describe_gpu_assignment(const GpuAssignment& assignment,
                                    const char* cuda_visible_devices);

}  // namespace alexnet::comm
