// What can be checked of the GPU path without a GPU: which backends a build has and how it says
// no, precision names, the loss scaler's schedule, and TrainStep's loss scaling and overflow skip
// (on the CPU backend: a power-of-two scale must not change a single bit of the trajectory).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "tests/one_rank_communicator.h"
#include "trainer/backend.h"
#include "trainer/backend_options.h"
#include "trainer/loss_scaler.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_step.h"
#ifdef ALEXNET_WITH_CUDA
#include "trainer/multi_gpu_step.h"
#endif

namespace alexnet::trainer {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no std::invalid_argument)";
}

TEST(BackendChoice, CpuBackendsRefuse16BitPrecisionByName) {
  for (const char* name : {"onednn", "reference"}) {
    for (Precision p : {Precision::kBFloat16, Precision::kFloat16}) {
      BackendOptions o;
      o.precision = p;
      const std::string m = message_of([&] { make_backend(name, o); });
      EXPECT_NE(m.find(std::string("precision ") + precision_name(p) + " needs the cuda backend"),
                std::string::npos)
          << m;
    }
  }
}

TEST(BackendChoice, UnknownNamesListTheBackends) {
  const std::string m = message_of([] { make_backend("tpu"); });
  EXPECT_NE(m.find("unknown backend 'tpu' (reference, onednn, cuda)"), std::string::npos) << m;
}

TEST(BackendChoice, CudaSaysWhyItIsMissing) {
#ifdef ALEXNET_WITH_CUDA
  EXPECT_TRUE(cuda_backend_built());
#else
  EXPECT_FALSE(cuda_backend_built());
#endif
  if (cuda_device_count() > 0) GTEST_SKIP() << "this machine has a CUDA device";
  const std::string m = message_of([] { make_backend("cuda"); });
  if (cuda_backend_built()) {
    EXPECT_NE(m.find("no CUDA device visible"), std::string::npos) << m;
  } else {
    EXPECT_NE(m.find("not in this build"), std::string::npos) << m;
  }
}

TEST(Precision, NamesRoundTripAndBadOnesAreRefused) {
  for (Precision p : {Precision::kFloat32, Precision::kBFloat16, Precision::kFloat16}) {
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  }
  EXPECT_NE(message_of([] { parse_precision("fp8"); }).find("expected fp32, bf16 or fp16"),
            std::string::npos);
}

TEST(LossScaler, BacksOffOnOverflowAndGrowsAfterTheInterval) {
  LossScalerConfig c;
  c.initial_scale = 1024;
  c.growth_interval = 3;
  LossScaler s(c);
  EXPECT_FALSE(s.update(false));  // overflow: skip, halve
  EXPECT_EQ(s.scale(), 512);
  EXPECT_EQ(s.skipped_steps(), 1);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 512);
  EXPECT_TRUE(s.update(true));  // third good step in a row: double
  EXPECT_EQ(s.scale(), 1024);
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));  // an overflow restarts the count
  EXPECT_EQ(s.good_steps(), 0);
  EXPECT_EQ(s.scale(), 512);
  s.restore(8, 2);
  EXPECT_EQ(s.scale(), 8);
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 16);
  EXPECT_THROW(s.restore(0, 0), std::invalid_argument);
  c.backoff_factor = 1;
  EXPECT_THROW(LossScaler{c}, std::invalid_argument);
}

struct Trajectory {
  std::vector<float> params;
  std::vector<double> losses;
  int64_t skipped = 0;
  double scale = 1;
};

Trajectory train(bool loss_scaling, double initial_scale, int steps) {
  std::unique_ptr<Backend> backend = make_backend("onednn");
  const ModelSpec spec = build_model("alexnet-mini", 10, 1, 28, 28);
  constexpr int64_t kBatch = 8;
  Model model(spec, *backend, kBatch);
  std::vector<float> params(static_cast<size_t>(spec.param_floats));
  std::vector<float> buffers(static_cast<size_t>(spec.buffer_floats));
  initialize_parameters(spec, 5, params.data(), buffers.data());
  backend->copy_to_device(model.params(), params.data(), params.size() * 4);
  backend->copy_to_device(model.buffers(), buffers.data(), buffers.size() * 4);
  OptimizerConfig oc;
  oc.momentum = 0.9;
  oc.weight_decay = 5e-4;
  Optimizer optimizer(oc, params.size(), {}, backend.get());
  test::SameOnEveryRank comm;  // one rank: the all-reduce is the identity
  TrainStepConfig tc;
  tc.loss_scaling = loss_scaling;
  tc.loss_scaler.initial_scale = initial_scale;
  TrainStep step(model, optimizer, comm, tc);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::vector<float> input(static_cast<size_t>(model.input_elements()));
  std::vector<int32_t> labels(kBatch);
  Trajectory t;
  for (int s = 0; s < steps; ++s) {
    for (float& x : input) x = normal(rng);
    for (int32_t& l : labels) l = static_cast<int32_t>(rng() % 10);
    DropoutKey key;
    key.step = static_cast<uint64_t>(s);
    t.losses.push_back(step.run(input.data(), labels.data(), key, 0.01).loss);
    t.skipped += step.last_step_skipped();
  }
  t.params.resize(params.size());
  backend->copy_to_host(t.params.data(), model.params(), params.size() * 4);
  t.scale = step.loss_scaler().scale();
  return t;
}

TEST(TrainStepLossScaling, APowerOfTwoScaleLeavesTheTrajectoryBitwiseUnchanged) {
  const Trajectory plain = train(false, 1, 4);
  const Trajectory scaled = train(true, 1024, 4);
  EXPECT_EQ(scaled.skipped, 0);
  EXPECT_EQ(scaled.losses, plain.losses);
  EXPECT_EQ(scaled.params, plain.params);
}

TEST(TrainStepLossScaling, AnOverflowSkipsTheStepAndLowersTheScale) {
  // 2^127 times the loss gradient overflows fp32: the first steps are skipped, the scale halves
  // each time, and once it fits training goes on with finite parameters.
  const Trajectory t = train(true, std::ldexp(1.0, 127), 6);
  EXPECT_GE(t.skipped, 1);
  EXPECT_LT(t.scale, std::ldexp(1.0, 127));
  for (float p : t.params) ASSERT_TRUE(std::isfinite(p));
  const Trajectory untouched = train(false, 1, 0);
  const Trajectory all_skipped = train(true, std::ldexp(1.0, 127), 1);
  EXPECT_EQ(all_skipped.skipped, 1);
  EXPECT_EQ(all_skipped.params, untouched.params);  // a skipped step changes no parameter
}

#ifdef ALEXNET_WITH_CUDA
// Several GPUs per rank: which samples each replica takes and which dropout masks it draws.
TEST(MultiGpuBookkeeping, ReplicasSplitTheBatchAndDrawTheirOwnMasks) {
  int64_t next = 0;
  for (int g = 0; g < 4; ++g) {
    const BatchSlice s = replica_slice(256, 4, g);
    EXPECT_EQ(s.first, next);
    EXPECT_EQ(s.count, 64);
    next += s.count;
  }
  EXPECT_EQ(next, 256);
  EXPECT_THROW(replica_slice(250, 4, 0), std::invalid_argument);
  EXPECT_THROW(replica_slice(256, 4, 4), std::invalid_argument);
  DropoutKey key;
  key.seed = 9;
  key.step = 17;
  key.rank = 3;
  // Rank 3 of a job with 2 GPUs per rank: NCCL ranks 6 and 7, distinct from every other GPU's.
  EXPECT_EQ(replica_key(key, 2, 0).rank, 6u);
  EXPECT_EQ(replica_key(key, 2, 1).rank, 7u);
  EXPECT_EQ(replica_key(key, 2, 1).step, 17u);
  EXPECT_EQ(replica_key(key, 1, 0).rank, 3u);  // one GPU per rank: the rank's own masks
}
#endif

}  // namespace
}  // namespace alexnet::trainer
