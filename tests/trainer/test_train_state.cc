// The job's parts without a job or mpirun (trainer/train_state.h, progress_window.h,
// one_device_step.h): the state's copies between host, replicas and checkpoint files, the
// position a resumed run continues from, the progress window's sums over ranks, and the step's
// shared update decision.
#include "trainer/train_state.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/one_rank_communicator.h"
#include "tests/temp_dir.h"
#include "trainer/one_device_step.h"
#include "trainer/progress_window.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {
namespace {

constexpr int64_t kBatch = 4;

ModelSpec tiny_spec() { return build_model("alexnet-mini", 10, 1, 28, 28); }

std::unique_ptr<TrainState> make_state(int replicas, const std::string& backend = "reference",
                                       const std::string& optimizer = "sgd") {
  std::vector<std::unique_ptr<Backend>> backends;
  for (int g = 0; g < replicas; ++g) backends.push_back(make_backend(backend));
  ReplicaConfig rc;
  rc.batch = kBatch;
  rc.dropout = false;
  rc.optimizer.name = optimizer;
  LrScheduleConfig sc;
  sc.base_lr = 0.05;
  sc.steps_per_epoch = 10;
  sc.total_steps = 10;
  return std::make_unique<TrainState>(tiny_spec(), std::move(backends), rc,
                                      std::make_unique<LrSchedule>(sc));
}

std::vector<float> device_params(Replica r) {
  std::vector<float> host(static_cast<size_t>(r.model->spec().param_floats));
  r.backend->copy_to_host(host.data(), r.model->params(), host.size() * sizeof(float));
  return host;
}

// A batch of random images (the backends' NCHW) and labels.
struct HostBatch {
  std::vector<float> images;
  std::vector<int32_t> labels;
  io::Batch batch;
  explicit HostBatch(const Model& model, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> pixel;
    images.resize(static_cast<size_t>(model.input_elements()));
    for (float& x : images) x = pixel(rng);
    for (int64_t i = 0; i < model.batch(); ++i) labels.push_back(static_cast<int32_t>(rng() % 10));
    batch.size = model.batch();
    batch.images = images.data();
    batch.labels = labels.data();
  }
};

TEST(TrainState, InitializedWeightsReachEveryReplica) {
  auto state = make_state(3);
  state->initialize(7);
  state->to_devices();
  const std::vector<Replica> replicas = state->replicas();
  ASSERT_EQ(replicas.size(), 3u);
  std::vector<float> expected(static_cast<size_t>(state->spec().param_floats));
  std::vector<float> buffers(
      static_cast<size_t>(std::max<int64_t>(state->spec().buffer_floats, 1)));
  initialize_parameters(state->spec(), 7, expected.data(), buffers.data());
  for (const Replica& r : replicas) EXPECT_EQ(device_params(r), expected);
}

TEST(TrainState, CheckpointRoundTripRestoresParametersOptimizerAndPosition) {
  test::TempDir dir;
  test::SameOnEveryRank one;
  auto state = make_state(1);
  state->initialize(3);
  state->to_devices();
  OneDeviceStep step(state->replicas()[0], one, TrainStepConfig{});
  for (uint32_t s = 0; s < 3; ++s) {
    HostBatch b(state->model(), s);
    DropoutKey key;
    key.step = s;
    step.run(b.batch, key, state->schedule().lr_at(s));
  }
  state->position().step = 3;
  state->position().epoch = 0;
  state->position().step_in_epoch = 3;
  state->position().batch_size = kBatch;
  const std::string path = dir / "step.h5";
  state->save(path, "[train]\nbatch_size = 4\n");

  auto restored = make_state(2);
  restored->load(path, /*epoch_samples=*/1000);
  restored->to_devices();
  EXPECT_EQ(restored->position().step, 3);
  EXPECT_EQ(restored->position().step_in_epoch, 3);
  EXPECT_EQ(restored->optimizer().steps(), state->optimizer().steps());
  const std::vector<float> trained = device_params(state->replicas()[0]);
  for (const Replica& r : restored->replicas()) {
    EXPECT_EQ(device_params(r), trained);
    EXPECT_EQ(r.optimizer->steps(), 3);
  }
  // The same next step from the original and from the restored second replica.
  test::SameOnEveryRank one_again;
  OneDeviceStep a(state->replicas()[0], one, TrainStepConfig{});
  OneDeviceStep b(restored->replicas()[1], one_again, TrainStepConfig{});
  HostBatch batch(state->model(), 99);
  DropoutKey key;
  a.run(batch.batch, key, 0.05);
  b.run(batch.batch, key, 0.05);
  EXPECT_EQ(device_params(state->replicas()[0]), device_params(restored->replicas()[1]));
}

TEST(TrainState, ContinuedPositionKeepsTheFractionOfTheEpoch) {
  CheckpointPosition saved;
  saved.step = 110;
  saved.epoch = 1;
  saved.step_in_epoch = 10;
  saved.world_size = 2;
  saved.batch_size = 32;
  EXPECT_EQ(continued_position(saved, 2, 32, 100).step_in_epoch, 10);  // the same layout
  const CheckpointPosition wider = continued_position(saved, 4, 32, 50);
  EXPECT_EQ(wider.step_in_epoch, 5);  // 640 samples seen = 5 steps of 4 x 32
  EXPECT_EQ(wider.epoch, 1);
  EXPECT_EQ(wider.step, 110);  // optimizer steps are not data steps
  EXPECT_EQ(wider.world_size, 4);
  saved.step_in_epoch = 49;
  const CheckpointPosition at_end = continued_position(saved, 1, 2048, 1);
  EXPECT_EQ(at_end.epoch, 2);  // 3136 samples = the whole (one-step) epoch: the next one
  EXPECT_EQ(at_end.step_in_epoch, 0);
}

TEST(ProgressWindow, SumsOverRanksIntoMeansPerStepAndRank) {
  ProgressWindow window;
  StepTimes t;
  t.forward = 0.25;
  t.backward = 0.5;
  t.comm_wait = 0.125;
  t.optimizer = 0.0625;
  LossResult r;
  r.loss = 2;
  r.top1 = 3;
  window.add(r, 8, t, 0.5);
  r.loss = 1;
  r.top1 = 5;
  window.add(r, 8, t, 1.5);
  EXPECT_EQ(window.steps(), 2);
  test::SameOnEveryRank four(4);
  TrainRecord where;
  where.step = 10;
  where.total_steps = 30;
  const TrainRecord rec = window.close(four, where);
  EXPECT_DOUBLE_EQ(rec.loss, 1.5);              // sample-weighted mean over every rank
  EXPECT_DOUBLE_EQ(rec.top1, 8.0 / 16.0);       // hits over samples
  EXPECT_DOUBLE_EQ(rec.forward_seconds, 0.25);  // per step and rank
  EXPECT_DOUBLE_EQ(rec.backward_seconds, 0.5);
  EXPECT_DOUBLE_EQ(rec.comm_wait_seconds, 0.125);
  EXPECT_DOUBLE_EQ(rec.optimizer_seconds, 0.0625);
  EXPECT_DOUBLE_EQ(rec.data_wait_seconds, 1.0);
  EXPECT_EQ(rec.world_size, 4);
  EXPECT_EQ(rec.step, 10);
  EXPECT_GT(rec.images_per_sec, 0);
  EXPECT_GE(rec.eta_seconds, 0);
  EXPECT_EQ(window.steps(), 0);  // a new window
  window.add(r, 8, t, 0);
  window.restart();
  EXPECT_EQ(window.steps(), 0);
}

TEST(GradientUpdate, UnscalesClipsAndSkipsAsOneDecision) {
  // No scaling, no clipping: the gradients as they are.
  GradientUpdate u = decide_gradient_update(100, 1, 0, nullptr);
  EXPECT_FALSE(u.skip);
  EXPECT_EQ(u.gradient_factor, 1);
  // Clipping: norm 10 to 5.
  u = decide_gradient_update(100, 1, 5, nullptr);
  EXPECT_DOUBLE_EQ(u.gradient_factor, clip_coefficient(10, 5));
  // Loss scale 8: divided by it, and clipped on the unscaled norm (80 / 8 = 10).
  LossScalerConfig c;
  c.initial_scale = 8;
  LossScaler scaler(c);
  u = decide_gradient_update(6400, 8, 5, &scaler);
  EXPECT_FALSE(u.skip);
  EXPECT_DOUBLE_EQ(u.gradient_factor, clip_coefficient(10, 5) / 8);
  // Overflow: skipped, the scale halved.
  u = decide_gradient_update(std::numeric_limits<double>::infinity(), 8, 5, &scaler);
  EXPECT_TRUE(u.skip);
  EXPECT_EQ(scaler.scale(), 4);
}

TEST(OneDeviceStep, IsTrainStepOverTheBatchInDeviceMemory) {
  test::SameOnEveryRank one;
  auto a = make_state(1, "onednn");
  auto b = make_state(1, "onednn");
  for (auto* s : {a.get(), b.get()}) {
    s->initialize(11);
    s->to_devices();
  }
  OneDeviceStep step(a->replicas()[0], one, TrainStepConfig{});
  TrainStep plain(b->model(), b->optimizer(), one, TrainStepConfig{});
  HostBatch batch(a->model(), 5);
  auto input = b->backend().allocate(batch.images.size() * sizeof(float));
  auto labels = b->backend().allocate(batch.labels.size() * sizeof(int32_t));
  b->backend().copy_to_device(input.get(), batch.images.data(), batch.images.size() * 4);
  b->backend().copy_to_device(labels.get(), batch.labels.data(), batch.labels.size() * 4);
  DropoutKey key;
  const LossResult ra = step.run(batch.batch, key, 0.1);
  const LossResult rb = plain.run(static_cast<const float*>(input.get()),
                                  static_cast<const int32_t*>(labels.get()), key, 0.1);
  EXPECT_EQ(ra.loss, rb.loss);
  EXPECT_EQ(ra.top1, rb.top1);
  EXPECT_EQ(device_params(a->replicas()[0]), device_params(b->replicas()[0]));
  EXPECT_GT(step.times().forward, 0);
}

// LARS and LAMB take their norms per layer as each bucket's average arrives: with a bucket a
// layer (overlapped on a communication thread), one bucket, or one update after all of them (the
// clipping path), the same bits. A bucket that cut a layer would throw.
TEST(TrainStep, LayerwiseOptimizersGiveTheSameStepWithAnyBuckets) {
  for (const char* name : {"lars", "lamb"}) {
    SCOPED_TRACE(name);
    test::SameOnEveryRank two(2);
    TrainStepConfig per_layer, one_bucket, after_all;
    per_layer.bucket_mb = 1e-9;  // every layer its own bucket
    one_bucket.bucket_mb = 1000;
    one_bucket.overlap = false;
    after_all.clip_grad_norm = 1e30;  // never clips, but updates the whole buffer at once
    std::vector<std::vector<float>> results;
    for (const TrainStepConfig& config : {per_layer, one_bucket, after_all}) {
      auto state = make_state(1, "onednn", name);
      state->initialize(13);
      state->to_devices();
      TrainStep step(state->model(), state->optimizer(), two, config);
      HostBatch batch(state->model(), 6);
      for (int k = 0; k < 2; ++k) step.run(batch.images.data(), batch.labels.data(), {}, 0.5);
      results.push_back(device_params(state->replicas()[0]));
    }
    EXPECT_EQ(results[0], results[1]);
    EXPECT_EQ(results[0], results[2]);
    auto init = make_state(1, "onednn", name);
    init->initialize(13);
    init->to_devices();
    EXPECT_NE(results[0], device_params(init->replicas()[0])) << "the steps should change them";
  }
}

}  // namespace
}  // namespace alexnet::trainer
