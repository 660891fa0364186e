// The hierarchical all-reduce (comm/hierarchical_all_reduce.h) under mpirun, on the nodes MPI
// sees and on pretend nodes (PretendNodes, test-only) so that 2 nodes x 2 ranks run on one
// machine: every wire type against the exact sum, replicas bitwise identical, odd counts and
// counts below the rank count; the same values as the flat ring (exactly for integer-valued fp32,
// within rounding otherwise); what auto chooses, and the refusal of uneven nodes.
//
// Over emulated hosts (tests/comm/hierarchical_hosts.sh) ALEXNET_TEST_EXPECT_NODES says how many
// nodes MPI must see, which RealNodes checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "tests/comm/all_reduce_checks.h"

// Counts every operator new of this binary (test_comm_mpi), to see that an all-reduce after
// reserve() allocates nothing.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace
[[gnu::noinline]] void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// Not inlined: GCC would then see a new-expression's pointer reach free() and warn.
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace alexnet::comm {
namespace {

using checks::rank_data;
using checks::rank_integers;
using checks::same_on_every_rank;
using checks::wire_tolerance;

// 0: the nodes MPI sees; k > 0: pretend nodes of k ranks inside them.
std::unique_ptr<MpiCommunicator> make_comm(int pretend_ranks_per_node) {
  if (pretend_ranks_per_node == 0) return std::make_unique<MpiCommunicator>();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, PretendNodes{pretend_ranks_per_node});
}

std::string nodes_name(int pretend) {
  return pretend == 0 ? "real_nodes" : "pretend_nodes_of_" + std::to_string(pretend);
}

struct Case {
  int pretend;  // as make_comm
  size_t count;
  WireType wire;
  ReduceOp op;
};

class HierarchicalAllReduce : public ::testing::TestWithParam<Case> {};

TEST_P(HierarchicalAllReduce, MatchesTheExactSumAndLeavesReplicasIdentical) {
  const Case c = GetParam();
  const auto comm = make_comm(c.pretend);
  comm->set_algorithm(AllReduceAlgorithm::kHierarchical);
  ASSERT_EQ(comm->algorithm(), AllReduceAlgorithm::kHierarchical);
  const int p = comm->size();
  std::vector<float> data = rank_data(c.count, comm->rank());
  std::vector<double> exact(c.count, 0.0);
  for (int r = 0; r < p; ++r) {
    const std::vector<float> other = rank_data(c.count, r);
    for (size_t i = 0; i < c.count; ++i) exact[i] += other[i];
  }
  if (c.op == ReduceOp::kAverage) {
    for (double& x : exact) x /= p;
  }
  double largest = 0;
  for (double x : exact) largest = std::max(largest, std::abs(x));
  comm->reserve(c.count, c.wire);
  comm->all_reduce(data.data(), c.count, c.op, c.wire);
  double worst = 0;
  for (size_t i = 0; i < c.count; ++i) {
    ASSERT_FALSE(std::isnan(data[i])) << "at " << i;
    worst = std::max(worst, std::abs(data[i] - exact[i]));
  }
  if (c.count > 0) {
    EXPECT_LE(worst, wire_tolerance(c.wire, p) * std::max(1.0, largest))
        << comm->algorithm_description();
  }
  EXPECT_TRUE(same_on_every_rank(*comm, data)) << "replicas differ after the all-reduce";
  // A second call on the same staging: nothing of the first is left behind in the window.
  std::vector<float> again = rank_data(c.count, comm->rank());
  comm->all_reduce(again.data(), c.count, c.op, c.wire);
  EXPECT_TRUE(again == data) << "a second all-reduce of the same values differs";
}

std::vector<Case> cases() {
  std::vector<Case> all;
  for (int pretend : {0, 1, 2}) {
    for (size_t count : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{1001}}) {
      all.push_back({pretend, count, WireType::kFloat32, ReduceOp::kSum});
    }
    all.push_back({pretend, 5, WireType::kBFloat16, ReduceOp::kSum});
    all.push_back({pretend, 3, WireType::kFloat16, ReduceOp::kAverage});
    // Over one ring segment (1 MiB) per shard: the segmented exchange between nodes.
    for (WireType wire : {WireType::kFloat32, WireType::kBFloat16, WireType::kFloat16}) {
      all.push_back({pretend, 1000003, wire, ReduceOp::kAverage});
    }
    all.push_back({pretend, 1000003, WireType::kBFloat16, ReduceOp::kSum});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Sizes, HierarchicalAllReduce, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return nodes_name(param.param.pretend) + "_" +
                                  std::to_string(param.param.count) + "_" +
                                  wire_type_name(param.param.wire) +
                                  (param.param.op == ReduceOp::kSum ? "_sum" : "_average");
                         });

class HierarchicalAgainstRing : public ::testing::TestWithParam<int> {};

// The flat ring's result from the same inputs: the sums are taken in another order, so they agree
// exactly where every partial sum is exact (integer-valued fp32), else within the rounding.
TEST_P(HierarchicalAgainstRing, SameValuesAsTheFlatRing) {
  const auto comm = make_comm(GetParam());
  const int p = comm->size();
  const size_t n = 300007;
  for (WireType wire : {WireType::kFloat32, WireType::kBFloat16, WireType::kFloat16}) {
    for (bool integers : {true, false}) {
      const std::vector<float> mine =
          integers ? rank_integers(n, comm->rank()) : rank_data(n, comm->rank());
      std::vector<float> ring = mine, hierarchical = mine;
      comm->set_algorithm(AllReduceAlgorithm::kRing);
      comm->all_reduce(ring.data(), n, ReduceOp::kSum, wire);
      comm->set_algorithm(AllReduceAlgorithm::kHierarchical);
      comm->all_reduce(hierarchical.data(), n, ReduceOp::kSum, wire);
      EXPECT_TRUE(same_on_every_rank(*comm, hierarchical)) << wire_type_name(wire);
      // Integers up to 64 p: exact in every wire type while p <= 4 (bf16 holds 8 bits).
      if (integers && (wire == WireType::kFloat32 || 64 * p <= 256)) {
        EXPECT_TRUE(ring == hierarchical) << wire_type_name(wire) << " integers";
        continue;
      }
      double worst = 0;
      for (size_t i = 0; i < n; ++i) {
        worst = std::max(worst, static_cast<double>(std::abs(ring[i] - hierarchical[i])));
      }
      // Both within the bound of the exact sum (values up to p in magnitude), so within twice it.
      const double bound = 2 * wire_tolerance(wire, p) * (integers ? 64.0 * p : 1.0 * p);
      EXPECT_LE(worst, bound) << wire_type_name(wire) << (integers ? " integers" : " floats");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Nodes, HierarchicalAgainstRing, ::testing::Values(0, 1, 2),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return nodes_name(param.param);
                         });

// Staging and window come from reserve(): the calls after it allocate nothing, in any wire type,
// on either algorithm, switching between them too.
TEST(AllReduceStaging, NothingAllocatedOnceReserved) {
  MpiCommunicator comm(MPI_COMM_WORLD, PretendNodes{2});
  const size_t n = 300007;
  std::vector<float> data = rank_data(n, comm.rank());
  for (auto algorithm : {AllReduceAlgorithm::kRing, AllReduceAlgorithm::kHierarchical}) {
    comm.set_algorithm(algorithm);
    comm.reserve(n, WireType::kFloat32);  // the larger staging of the wire types
  }
  const int64_t before = g_allocations.load();
  for (auto algorithm : {AllReduceAlgorithm::kRing, AllReduceAlgorithm::kHierarchical}) {
    comm.set_algorithm(algorithm);
    for (WireType wire : {WireType::kFloat32, WireType::kBFloat16, WireType::kFloat16}) {
      comm.all_reduce(data.data(), n, ReduceOp::kAverage, wire);
      comm.all_reduce(data.data(), n / 3, ReduceOp::kSum, wire);
    }
  }
  const int64_t allocated = g_allocations.load() - before;
  EXPECT_EQ(allocated, 0) << "operator new calls inside the all-reduces";
}

TEST(AllReduceChoice, AutoTakesHierarchicalOnlyForSeveralNodesOfSeveralRanks) {
  const int p = MpiCommunicator().size();
  for (int pretend : {1, 2}) {
    MpiCommunicator comm(MPI_COMM_WORLD, PretendNodes{pretend});
    if (p % pretend != 0) continue;
    const int nodes = p / pretend;
    EXPECT_EQ(comm.nodes(), nodes);
    EXPECT_EQ(comm.local_size(), pretend);
    EXPECT_EQ(comm.local_rank(), comm.rank() % pretend);
    comm.set_algorithm(AllReduceAlgorithm::kAuto);
    if (nodes > 1 && pretend > 1) {
      EXPECT_EQ(comm.algorithm(), AllReduceAlgorithm::kHierarchical);
      EXPECT_EQ(comm.algorithm_description(), "hierarchical (" + std::to_string(nodes) +
                                                  " nodes x " + std::to_string(pretend) +
                                                  " ranks)");
    } else {
      EXPECT_EQ(comm.algorithm(), AllReduceAlgorithm::kRing);
      EXPECT_EQ(comm.algorithm_description().rfind("ring (" + std::to_string(p) + " ranks: ", 0),
                0u)
          << comm.algorithm_description();
    }
    comm.set_algorithm(AllReduceAlgorithm::kRing);
    EXPECT_EQ(comm.algorithm(), AllReduceAlgorithm::kRing);
  }
}

TEST(AllReduceChoice, UnevenNodesAreRefusedByHierarchicalAndGetTheRingFromAuto) {
  MpiCommunicator comm(MPI_COMM_WORLD, PretendNodes{3});
  if (comm.size() % 3 == 0 || comm.size() < 3) {
    GTEST_SKIP() << "needs a rank count that 3 does not divide, above 3 (mpirun -np 4)";
  }
  try {
    comm.set_algorithm(AllReduceAlgorithm::kHierarchical);
    ADD_FAILURE() << "uneven nodes accepted for the hierarchical all-reduce";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("comm.algorithm=hierarchical"), std::string::npos) << what;
    EXPECT_NE(what.find("same number on every node"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  comm.set_algorithm(AllReduceAlgorithm::kAuto);
  EXPECT_EQ(comm.algorithm(), AllReduceAlgorithm::kRing);
  EXPECT_NE(comm.algorithm_description().find("hierarchical needs the same number"),
            std::string::npos)
      << comm.algorithm_description();
  // The ring still works there.
  std::vector<float> data = rank_integers(11, comm.rank());
  comm.all_reduce(data.data(), data.size(), ReduceOp::kSum, WireType::kFloat32);
  for (size_t i = 0; i < data.size(); ++i) {
    float exact = 0;
    for (int r = 0; r < comm.size(); ++r) exact += rank_integers(11, r)[i];
    EXPECT_EQ(data[i], exact) << "at " << i;
  }
}

TEST(AllReduceChoice, NamesParsed) {
  EXPECT_EQ(parse_all_reduce_algorithm("ring"), AllReduceAlgorithm::kRing);
  EXPECT_EQ(parse_all_reduce_algorithm("hierarchical"), AllReduceAlgorithm::kHierarchical);
  EXPECT_EQ(parse_all_reduce_algorithm("auto"), AllReduceAlgorithm::kAuto);
  EXPECT_THROW(parse_all_reduce_algorithm("tree"), std::invalid_argument);
  for (auto a :
       {AllReduceAlgorithm::kRing, AllReduceAlgorithm::kHierarchical, AllReduceAlgorithm::kAuto}) {
    EXPECT_EQ(parse_all_reduce_algorithm(all_reduce_algorithm_name(a)), a);
  }
}

// Over emulated hosts: MPI itself must see the hosts as nodes, and auto take hierarchical.
TEST(RealNodes, AsManyAsTheLauncherMade) {
  const char* expected = std::getenv("ALEXNET_TEST_EXPECT_NODES");
  if (expected == nullptr) GTEST_SKIP() << "ALEXNET_TEST_EXPECT_NODES not set (one machine)";
  MpiCommunicator comm;
  const int nodes = std::atoi(expected);
  EXPECT_EQ(comm.nodes(), nodes);
  EXPECT_EQ(comm.local_size() * nodes, comm.size());
  if (nodes > 1 && comm.local_size() > 1) {
    EXPECT_EQ(comm.algorithm(), AllReduceAlgorithm::kHierarchical) << comm.algorithm_description();
  }
  if (comm.rank() == 0) std::printf("all-reduce: %s\n", comm.algorithm_description().c_str());
}

}  // namespace
}  // namespace alexnet::comm
