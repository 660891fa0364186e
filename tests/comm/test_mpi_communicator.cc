// MpiCommunicator under mpirun: the ring all-reduce (sum, average, fp32/bf16/fp16 on the wire)
// against sums computed here from every rank's seeded data, replicas bitwise identical
// afterwards, and the small collectives.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/numeric/precision.h"
#include "tests/comm/all_reduce_checks.h"

namespace alexnet::comm {
namespace {

using checks::rank_data;
using checks::same_on_every_rank;
using checks::wire_tolerance;

struct Case {
  size_t count;
  WireType wire;
  ReduceOp op;
};

class RingAllReduce : public ::testing::TestWithParam<Case> {};

TEST_P(RingAllReduce, MatchesTheExactSumAndLeavesReplicasIdentical) {
  const Case c = GetParam();
  MpiCommunicator comm;
  comm.set_algorithm(AllReduceAlgorithm::kRing);
  const int p = comm.size();
  std::vector<float> data = rank_data(c.count, comm.rank());
  std::vector<double> exact(c.count, 0.0);
  double largest = 0;
  for (int r = 0; r < p; ++r) {
    const std::vector<float> other = rank_data(c.count, r);
    for (size_t i = 0; i < c.count; ++i) exact[i] += other[i];
  }
  if (c.op == ReduceOp::kAverage) {
    for (double& x : exact) x /= p;
  }
  for (double x : exact) largest = std::max(largest, std::abs(x));
  comm.all_reduce(data.data(), c.count, c.op, c.wire);
  double worst = 0;
  for (size_t i = 0; i < c.count; ++i) {
    const double e = std::abs(data[i] - exact[i]);
    ASSERT_FALSE(std::isnan(data[i])) << "at " << i;
    worst = std::max(worst, e);
  }
  const double tolerance = wire_tolerance(c.wire, p);
  if (c.count > 0) {
    EXPECT_LE(worst, tolerance * std::max(1.0, largest)) << "ranks " << p;
  }
  EXPECT_TRUE(same_on_every_rank(comm, data)) << "replicas differ after the all-reduce";
}

INSTANTIATE_TEST_SUITE_P(Sizes, RingAllReduce,
                         ::testing::Values(Case{0, WireType::kFloat32, ReduceOp::kSum},
                                           Case{1, WireType::kFloat32, ReduceOp::kSum},
                                           Case{3, WireType::kFloat32, ReduceOp::kAverage},
                                           Case{1000, WireType::kFloat32, ReduceOp::kSum},
                                           Case{1000003, WireType::kFloat32, ReduceOp::kAverage},
                                           Case{1000003, WireType::kBFloat16, ReduceOp::kAverage},
                                           Case{1000003, WireType::kFloat16, ReduceOp::kSum},
                                           Case{5, WireType::kBFloat16, ReduceOp::kSum}),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           return std::to_string(param.param.count) + "_" +
                                  wire_type_name(param.param.wire) +
                                  (param.param.op == ReduceOp::kSum ? "_sum" : "_average");
                         });

TEST(WireTypes, RoundToNearestEvenAndKeepSpecials) {
  EXPECT_EQ(numeric::bf16_to_float(numeric::float_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(numeric::bf16_to_float(numeric::float_to_bf16(1.0f + 1.0f / 256)),
            1.0f);  // tie: to even
  EXPECT_EQ(numeric::bf16_to_float(numeric::float_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(numeric::bf16_to_float(numeric::float_to_bf16(std::nanf("")))));
  EXPECT_TRUE(std::isinf(numeric::bf16_to_float(numeric::float_to_bf16(INFINITY))));
  EXPECT_EQ(numeric::fp16_to_float(numeric::float_to_fp16(0.5f)), 0.5f);
  EXPECT_EQ(numeric::fp16_to_float(numeric::float_to_fp16(65504.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(numeric::fp16_to_float(numeric::float_to_fp16(1e6f))));
}

TEST(SmallCollectives, DoublesMaxBroadcastGatherBarrier) {
  MpiCommunicator comm;
  const int p = comm.size(), r = comm.rank();
  double v[2] = {1.0 * r, 2.0};
  comm.all_reduce(v, 2, ReduceOp::kSum);
  EXPECT_EQ(v[0], p * (p - 1) / 2.0);
  EXPECT_EQ(v[1], 2.0 * p);
  EXPECT_EQ(comm.all_reduce_max(r), p - 1);
  int64_t value = r == 0 ? 42 : -1;
  comm.broadcast(&value, sizeof value, 0);
  EXPECT_EQ(value, 42);
  std::vector<int32_t> all(static_cast<size_t>(p));
  const int32_t mine = 10 * r;
  comm.all_gather(&mine, all.data(), sizeof mine);
  for (int k = 0; k < p; ++k) EXPECT_EQ(all[static_cast<size_t>(k)], 10 * k);
  comm.barrier();
  EXPECT_GE(comm.local_size(), 1);
  EXPECT_LT(comm.local_rank(), comm.local_size());
}

}  // namespace
}  // namespace alexnet::comm
