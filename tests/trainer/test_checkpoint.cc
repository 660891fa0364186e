// Training checkpoints: the state round-trips exactly (model, optimizer, schedule, position),
// files are listed in step order, pruned to the newest K, and a damaged newest file is skipped by
// latest_good_checkpoint() and refused by load_checkpoint().
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/error.h"
#include "trainer/checkpoint.h"
#include "trainer/model.h"

namespace alexnet::trainer {
namespace {

namespace fs = std::filesystem;

struct State {
  ModelSpec spec = build_model("alexnet-mini", 10, 1, 28, 28);
  std::vector<float> params, buffers;
  Optimizer optimizer;
  LrSchedule schedule;
  static OptimizerConfig sgd() {
    OptimizerConfig c;
    c.momentum = 0.9;
    return c;
  }
  static LrScheduleConfig plateau() {
    LrScheduleConfig c;
    c.name = "plateau";
    return c;
  }
  explicit State(uint64_t seed)
      : params(static_cast<size_t>(spec.param_floats)),
        buffers(static_cast<size_t>(spec.buffer_floats)),
        optimizer(sgd(), static_cast<size_t>(spec.param_floats)),
        schedule(plateau()) {
    initialize_parameters(spec, seed, params.data(), buffers.data());
    // Running statistics of some training (the padding between tensors is not saved).
    for (const LayerSpec& l : spec.layers) {
      for (const ParamSpec& p : l.params) {
        if (!p.is_buffer) continue;
        for (int64_t i = 0; i < p.numel(); ++i) {
          buffers[static_cast<size_t>(p.offset + i)] = 0.25f * static_cast<float>((i + seed) % 7);
        }
      }
    }
  }
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("alexnet-ckpt-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CheckpointTest, RoundTripsEveryPartOfTheState) {
  State a(1);
  std::vector<float> grads(a.params.size(), 0.01f);
  a.optimizer.step(a.params, grads, 0.1);  // momentum now non-zero
  a.optimizer.step(a.params, grads, 0.1);
  a.schedule.report(0.5);
  a.schedule.report(0.6);
  CheckpointPosition p;
  p.step = 2;
  p.epoch = 1;
  p.step_in_epoch = 7;
  p.world_size = 4;
  p.batch_size = 32;
  p.seed = 99;
  p.loss_scale = 8192;  // fp16's loss scaler
  p.loss_scale_good_steps = 17;
  const std::string path = checkpoint_path(dir_.string(), 2);
  save_checkpoint(path, a.spec, a.params, a.buffers, a.optimizer, a.schedule, p, "seed = 99\n");

  State b(2);  // different weights before loading
  const CheckpointPosition q =
      load_checkpoint(path, b.spec, b.params, b.buffers, b.optimizer, b.schedule);
  EXPECT_EQ(b.params, a.params);
  EXPECT_EQ(b.buffers, a.buffers);
  EXPECT_EQ(b.optimizer.steps(), 2);
  ASSERT_EQ(b.optimizer.state().size(), 1u);
  const auto va = a.optimizer.state()[0].values, vb = b.optimizer.state()[0].values;
  EXPECT_TRUE(std::equal(va.begin(), va.end(), vb.begin(), vb.end()));
  EXPECT_EQ(b.schedule.state().best, a.schedule.state().best);
  EXPECT_EQ(b.schedule.state().num_bad_reports, a.schedule.state().num_bad_reports);
  EXPECT_EQ(b.schedule.state().reports, 2);
  EXPECT_EQ(q.step, 2);
  EXPECT_EQ(q.epoch, 1);
  EXPECT_EQ(q.step_in_epoch, 7);
  EXPECT_EQ(q.world_size, 4);
  EXPECT_EQ(q.batch_size, 32);
  EXPECT_EQ(q.seed, 99u);
  EXPECT_EQ(q.loss_scale, 8192);
  EXPECT_EQ(q.loss_scale_good_steps, 17);
  // The same arrays continue identically: one more step on both.
  a.optimizer.step(a.params, grads, 0.1);
  b.optimizer.step(b.params, grads, 0.1);
  EXPECT_EQ(b.params, a.params);
}

TEST_F(CheckpointTest, RefusesAnotherOptimizer) {
  State a(1);
  const std::string path = checkpoint_path(dir_.string(), 1);
  save_checkpoint(path, a.spec, a.params, a.buffers, a.optimizer, a.schedule, {}, "");
  OptimizerConfig adam;
  adam.name = "adam";
  Optimizer other(adam, a.params.size());
  EXPECT_THROW(load_checkpoint(path, a.spec, a.params, a.buffers, other, a.schedule),
               io::DataError);
}

TEST_F(CheckpointTest, ListsPrunesAndSkipsDamagedFiles) {
  State a(1);
  for (int64_t step : {5, 10, 100, 20}) {
    save_checkpoint(checkpoint_path(dir_.string(), step), a.spec, a.params, a.buffers, a.optimizer,
                    a.schedule, {}, "");
  }
  std::ofstream(dir_ / "notes.txt") << "not a checkpoint";
  std::vector<std::string> files = list_checkpoints(dir_.string());
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(fs::path(files.front()).filename(), "step-000000005.h5");
  EXPECT_EQ(fs::path(files.back()).filename(), "step-000000100.h5");

  // Damage the newest: the latest good one is step 20, and loading step 100 is refused.
  {
    std::fstream f(files.back(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(files.back()) / 2));
    f.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
  }
  std::vector<std::string> skipped;
  EXPECT_EQ(fs::path(latest_good_checkpoint(dir_.string(), &skipped)).filename(),
            "step-000000020.h5");
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].find("step-000000100.h5"), std::string::npos) << skipped[0];
  EXPECT_THROW(load_checkpoint(files.back(), a.spec, a.params, a.buffers, a.optimizer, a.schedule),
               io::DataError);

  prune_checkpoints(dir_.string(), 2);
  files = list_checkpoints(dir_.string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(fs::path(files[0]).filename(), "step-000000020.h5");
  EXPECT_TRUE(fs::exists(dir_ / "notes.txt"));
  EXPECT_EQ(latest_good_checkpoint((dir_ / "missing").string(), nullptr), "");
}

}  // namespace
}  // namespace alexnet::trainer
