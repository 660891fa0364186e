// Data parallelism end to end on the oneDNN backend, under mpirun: P ranks with per-rank batch B
// give the same weights as one process with batch P * B after 5 SGD steps (same samples, dropout
// off), with the gradient all-reduce overlapped with backward or not; and the bucket plan.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "comm/gradient_buckets.h"
#include "comm/mpi_communicator.h"
#include "trainer/backend.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {
namespace {

using comm::Bucket;

TEST(PlanBuckets, CoversTheBufferAlongLayerBoundariesLastLayerFirst) {
  // Three layers at [0, 10), [16, 116), [128, 130) (padding between), given last first.
  const std::vector<Bucket> spans = {{128, 2}, {16, 100}, {0, 10}};
  const std::vector<Bucket> one_each = comm::plan_buckets(spans, 1);
  ASSERT_EQ(one_each.size(), 3u);
  EXPECT_EQ(one_each[0].offset, 128u);
  EXPECT_EQ(one_each[0].count, 2u);
  EXPECT_EQ(one_each[1].offset, 16u);
  EXPECT_EQ(one_each[1].count, 112u);  // up to the next bucket: padding included
  EXPECT_EQ(one_each[2].offset, 0u);
  EXPECT_EQ(one_each[2].count, 16u);
  const std::vector<Bucket> joined = comm::plan_buckets(spans, 50);
  ASSERT_EQ(joined.size(), 2u);  // {128, 16}: 114 floats >= 50; then {0}
  EXPECT_EQ(joined[0].offset, 16u);
  EXPECT_EQ(joined[1].offset, 0u);
  EXPECT_EQ(comm::plan_buckets(spans, 1000).size(), 1u);
  EXPECT_THROW(comm::plan_buckets({{0, 10}, {16, 100}}, 1), std::invalid_argument);
}

TEST(BackwardSpans, AreTheLayersLastFirst) {
  const ModelSpec spec = build_model("alexnet-mini", 10, 1, 28, 28);
  const std::vector<Bucket> spans = backward_spans(spec);
  ASSERT_FALSE(spans.empty());
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_LT(spans[i].offset, spans[i - 1].offset);
  EXPECT_LE(spans.front().offset + spans.front().count, static_cast<size_t>(spec.param_floats));
}

// Max |a - b| / max |b|.
double relative_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct Run {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<Optimizer> optimizer;
};

// 5 SGD steps of a replica with batch `batch`, on images [first, first + batch) of each step's
// global batch of `global` seeded images.
std::vector<float> train_five_steps(comm::Communicator& comm, const ModelSpec& spec, int64_t batch,
                                    int64_t first, int64_t global, bool overlap, double bucket_mb) {
  std::unique_ptr<Backend> backend = make_backend("onednn");
  Model model(spec, *backend, batch);
  model.set_dropout(false);
  std::vector<float> params(static_cast<size_t>(spec.param_floats));
  std::vector<float> buffers(static_cast<size_t>(std::max<int64_t>(spec.buffer_floats, 1)));
  initialize_parameters(spec, 5, params.data(), buffers.data());
  backend->copy_to_device(model.params(), params.data(), params.size() * 4);
  OptimizerConfig oc;
  oc.momentum = 0.9;
  oc.weight_decay = 5e-4;
  Optimizer optimizer(oc, params.size());
  TrainStepConfig tc;
  tc.overlap = overlap;
  tc.bucket_mb = bucket_mb;
  TrainStep step(model, optimizer, comm, tc);
  const int64_t image = spec.in_channels * spec.height * spec.width;
  auto input = backend->allocate(static_cast<size_t>(batch * image) * 4);
  auto labels = backend->allocate(static_cast<size_t>(batch) * 4);
  for (int s = 0; s < 5; ++s) {
    // The step's global batch, NHWC as the oneDNN backend wants, the same on every rank.
    std::mt19937 rng(100 + static_cast<uint32_t>(s));
    std::normal_distribution<float> normal;
    std::vector<float> images(static_cast<size_t>(global * image));
    for (float& v : images) v = normal(rng);
    std::vector<int32_t> classes(static_cast<size_t>(global));
    for (auto& c : classes) c = static_cast<int32_t>(rng() % spec.num_classes);
    backend->copy_to_device(input.get(), images.data() + first * image,
                            static_cast<size_t>(batch * image) * 4);
    backend->copy_to_device(labels.get(), classes.data() + first, static_cast<size_t>(batch) * 4);
    step.run(static_cast<const float*>(input.get()), static_cast<const int32_t*>(labels.get()),
             DropoutKey{}, 0.01);
  }
  backend->copy_to_host(params.data(), model.params(), params.size() * 4);
  return params;
}

// A network without batch norm (whose batch statistics would differ between B and P * B):
// torchvision's AlexNet on 63x63 inputs, 57 M parameters.
TEST(DataParallel, RanksWithBatchBEqualOneProcessWithBatchPTimesB) {
  comm::MpiCommunicator comm;
  const int p = comm.size();
  const int64_t b = 2;
  const ModelSpec spec = build_model("alexnet-torchvision", 10, 3, 63, 63);
  const std::vector<float> overlapped =
      train_five_steps(comm, spec, b, comm.rank() * b, p * b, /*overlap=*/true, 25);
  const std::vector<float> serial =
      train_five_steps(comm, spec, b, comm.rank() * b, p * b, /*overlap=*/false, 25);
  // Overlap changes when sums happen, not what they are. (Other bucket sizes move the ring's
  // chunk boundaries and with them the order of each sum: equal only to rounding.)
  EXPECT_EQ(relative_error(overlapped, serial), 0.0) << "overlap on and off differ";
  if (comm.rank() == 0) {
    comm::MpiCommunicator self(MPI_COMM_SELF);
    const std::vector<float> single = train_five_steps(self, spec, p * b, 0, p * b, false, 25);
    for (const LayerSpec& l : spec.layers) {
      for (const ParamSpec& param : l.params) {
        const auto at = static_cast<size_t>(param.offset), n = static_cast<size_t>(param.numel());
        EXPECT_LT(
            relative_error(std::span(overlapped).subspan(at, n), std::span(single).subspan(at, n)),
            1e-5)
            << param.name << " after 5 steps on " << p << " ranks vs 1";
      }
    }
  }
  comm.barrier();
}

}  // namespace
}  // namespace alexnet::trainer
