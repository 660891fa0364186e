// GPU assignment (comm/gpu_assignment.h) on CPUs: devices and NCCL ranks for G = 1, 2, 4 over
// several nodes, every refusal and its message, the --gpus-per-rank parser and the log line.
#include "comm/gpu_assignment.h"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace alexnet::comm {
namespace {

// The message of the std::invalid_argument `f` throws ("" when it throws nothing).
template <typename F>
std::string refusal(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(GpuAssignment, OneGpuPerRankTakesTheLocalRanksDevice) {
  const GpuAssignment a = assign_gpus(5, 8, 1, 4, 1, 4, "n1");
  EXPECT_EQ(a.devices, std::vector<int>{1});
  EXPECT_EQ(a.nccl_ranks, std::vector<int>{5});
  EXPECT_EQ(a.nccl_size, 8);
  EXPECT_EQ(a.gpus_per_rank, 1);
  EXPECT_EQ(a.node, "n1");
}

TEST(GpuAssignment, TwoGpusPerRankTakeConsecutiveBlocks) {
  const GpuAssignment a = assign_gpus(3, 4, 1, 2, 2, 4, "n2");
  EXPECT_EQ(a.devices, (std::vector<int>{2, 3}));
  EXPECT_EQ(a.nccl_ranks, (std::vector<int>{6, 7}));
  EXPECT_EQ(a.nccl_size, 8);
}

TEST(GpuAssignment, FourGpusPerRankOnEightGpuNodes) {
  const GpuAssignment a = assign_gpus(3, 4, 1, 2, 4, 8, "n2");
  EXPECT_EQ(a.devices, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(a.nccl_ranks, (std::vector<int>{12, 13, 14, 15}));
  EXPECT_EQ(a.nccl_size, 16);
}

TEST(GpuAssignment, FewerRanksThanGpusLeaveTheRestIdle) {
  const GpuAssignment a = assign_gpus(0, 1, 0, 1, 2, 8);
  EXPECT_EQ(a.devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(a.nccl_size, 2);
}

// Three nodes of 2 ranks each, node-major ranks, for every G that fits 4 GPUs a node: every NCCL
// rank of the job exactly once, and no device used twice on a node.
TEST(GpuAssignment, SeveralNodesCoverEveryNcclRankOnceAndShareNoDevice) {
  const int nodes = 3, per_node = 2, size = nodes * per_node, visible = 4;
  for (int g : {1, 2}) {
    std::set<int> nccl_ranks;
    for (int node = 0; node < nodes; ++node) {
      std::string name = "n";  // not "n" + to_string(): GCC 12's -Wrestrict misfires on it
      name += std::to_string(node);
      std::set<int> devices;
      for (int local = 0; local < per_node; ++local) {
        const int rank = node * per_node + local;
        const GpuAssignment a = assign_gpus(rank, size, local, per_node, g, visible, name);
        ASSERT_EQ(a.devices.size(), static_cast<size_t>(g));
        ASSERT_EQ(a.nccl_size, size * g);
        for (int d : a.devices) {
          EXPECT_GE(d, 0);
          EXPECT_LT(d, visible);
          EXPECT_TRUE(devices.insert(d).second) << "device " << d << " twice on node " << node;
        }
        for (int r : a.nccl_ranks) EXPECT_TRUE(nccl_ranks.insert(r).second) << "NCCL rank " << r;
      }
    }
    EXPECT_EQ(nccl_ranks.size(), static_cast<size_t>(size * g));
    EXPECT_EQ(*nccl_ranks.begin(), 0);
    EXPECT_EQ(*nccl_ranks.rbegin(), size * g - 1);
  }
}

// Nodes with different numbers of ranks (e.g. 3 ranks over 2 nodes): each node checks its own.
TEST(GpuAssignment, UnevenNodesAreEachCheckedOnTheirOwn) {
  EXPECT_EQ(assign_gpus(1, 3, 1, 2, 2, 4, "n0").devices, (std::vector<int>{2, 3}));
  EXPECT_EQ(assign_gpus(2, 3, 0, 1, 2, 4, "n1").nccl_ranks, (std::vector<int>{4, 5}));
}

TEST(GpuAssignment, TooManyGpusWantedOnANodeIsRefusedWithTheNumbers) {
  const std::string m = refusal([] { assign_gpus(1, 8, 1, 4, 2, 6, "gpu-node-3"); });
  EXPECT_NE(m.find("4 ranks on node gpu-node-3 want 2 GPUs each (8), 6 visible"), std::string::npos)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
  const std::string one = refusal([] { assign_gpus(0, 3, 0, 3, 1, 2, "n"); });
  EXPECT_NE(one.find("3 ranks on node n want 1 GPU each (3), 2 visible"), std::string::npos) << one;
}

// Slurm's --gpus-per-task (or a wrapper setting CUDA_VISIBLE_DEVICES per rank): every rank of the
// node sees exactly its own G devices and takes them as 0 ... G-1.
TEST(GpuAssignment, GpusBoundPerRankByTheLauncherAreTakenFromZero) {
  const GpuAssignment one = assign_gpus(5, 8, 5, 8, 1, 1, "n");
  EXPECT_TRUE(one.bound_per_rank);
  EXPECT_EQ(one.devices, std::vector<int>({0}));
  EXPECT_EQ(one.nccl_ranks, std::vector<int>({5}));
  const GpuAssignment two = assign_gpus(3, 4, 1, 2, 2, 2, "n");
  EXPECT_TRUE(two.bound_per_rank);
  EXPECT_EQ(two.devices, std::vector<int>({0, 1}));
  EXPECT_EQ(two.nccl_ranks, std::vector<int>({6, 7}));
  EXPECT_NE(describe_gpu_assignment(one, "3").find("bound to this rank by the launcher"),
            std::string::npos);
  EXPECT_FALSE(assign_gpus(0, 1, 0, 1, 2, 2).bound_per_rank);  // one rank: plainly all of them
}

TEST(GpuAssignment, GpusPerRankOutOfRangeIsRefused) {
  for (int g : {0, -1, 65}) {
    const std::string m = refusal([g] { assign_gpus(0, 1, 0, 1, g, 8); });
    EXPECT_NE(m.find("gpus per rank " + std::to_string(g)), std::string::npos) << m;
  }
}

TEST(GpuAssignment, NoVisibleDeviceIsRefused) {
  const std::string m = refusal([] { assign_gpus(0, 1, 0, 1, 1, 0, "n7"); });
  EXPECT_NE(m.find("no CUDA device visible on node n7"), std::string::npos) << m;
  EXPECT_NE(m.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << m;
}

TEST(GpuAssignment, RanksOutsideTheJobAreRefused) {
  EXPECT_NE(refusal([] { assign_gpus(2, 2, 0, 1, 1, 1); }).find("rank 2 of 2"), std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(-1, 2, 0, 1, 1, 1); }).find("rank -1 of 2"),
            std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(0, 0, 0, 1, 1, 1); }).find("rank 0 of 0"), std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(0, 2, 2, 2, 1, 4); }).find("local rank 2 of 2"),
            std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(0, 2, -1, 2, 1, 4); }).find("local rank -1 of 2"),
            std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(0, 2, 0, 3, 1, 4); }).find("local rank 0 of 3"),
            std::string::npos);
  EXPECT_NE(refusal([] { assign_gpus(0, 2, 0, 0, 1, 4); }).find("local rank 0 of 0"),
            std::string::npos);
}

TEST(GpuAssignment, NcclRankOverflowIsRefused) {
  const std::string m = refusal([] { assign_gpus(0, 1 << 30, 0, 1, 4, 8); });
  EXPECT_NE(m.find("NCCL's rank range"), std::string::npos) << m;
}

TEST(GpusPerRankFlag, AcceptsOneToSixtyFour) {
  EXPECT_EQ(parse_gpus_per_rank("1"), 1);
  EXPECT_EQ(parse_gpus_per_rank("2"), 2);
  EXPECT_EQ(parse_gpus_per_rank("08"), 8);
  EXPECT_EQ(parse_gpus_per_rank("64"), 64);
}

TEST(GpusPerRankFlag, RefusesEverythingElseNamingTheFlag) {
  for (const char* text :
       {"", "0", "00", "65", "99", "100", "-1", "+2", " 2", "2 ", "2x", "two", "1.5", "0x2"}) {
    const std::string m = refusal([text] { parse_gpus_per_rank(text); });
    EXPECT_NE(m.find(std::string("--gpus-per-rank '") + text + "'"), std::string::npos)
        << "'" << text << "': " << m;
  }
}

TEST(GpuAssignmentLog, NamesDevicesNcclRanksAndVisibleDevices) {
  const GpuAssignment a = assign_gpus(1, 2, 1, 2, 2, 4, "n1");
  EXPECT_EQ(describe_gpu_assignment(a, "4,5,6,7"),
            "rank 1 of 2 (local 1 of 2 on n1): GPUs 2,3 of 4 visible "
            "(CUDA_VISIBLE_DEVICES=4,5,6,7), NCCL ranks 2,3 of 4");
  const GpuAssignment one = assign_gpus(0, 1, 0, 1, 1, 1, "n0");
  EXPECT_EQ(describe_gpu_assignment(one, nullptr),
            "rank 0 of 1 (local 0 of 1 on n0): GPU 0 of 1 visible, NCCL rank 0 of 1");
}

}  // namespace
}  // namespace alexnet::comm
