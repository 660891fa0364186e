// Training checkpoints: the state round-trips exactly (model, optimizer, schedule, position),
// files are listed in step order, a damaged newest file is skipped by latest_good_checkpoint() and
// refused by load_checkpoint(); newer checkpoints are set aside (never deleted) when a job starts
// at an older step, pruning never loses the checkpoint just written or a newer one, and forged
// positions and counters are refused naming the file, the attribute and its value.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
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
  p.loss_scale = 8192;          // fp16's loss scaler
  p.loss_scale_good_steps = 1;  // at most the steps taken
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
  EXPECT_EQ(q.loss_scale_good_steps, 1);
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

  prune_checkpoints(dir_.string(), 2, checkpoint_path(dir_.string(), 20));
  files = list_checkpoints(dir_.string());  // 20 and 10 kept; 100 newer than 20: left alone
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(fs::path(files[0]).filename(), "step-000000010.h5");
  EXPECT_TRUE(fs::exists(dir_ / "notes.txt"));
  EXPECT_EQ(latest_good_checkpoint((dir_ / "missing").string(), nullptr), "");
}

std::string contents(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void damage(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
  f.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
}

std::vector<std::string> names(const std::vector<std::string>& paths) {
  std::vector<std::string> n;
  for (const std::string& p : paths) n.push_back(fs::path(p).filename().string());
  return n;
}

class PruneTest : public CheckpointTest {
 protected:
  void save(int64_t step) {
    CheckpointPosition p;
    p.step = step;
    p.batch_size = 32;
    save_checkpoint(path(step), a_.spec, a_.params, a_.buffers, a_.optimizer, a_.schedule, p, "");
  }
  std::string path(int64_t step) const { return checkpoint_path(dir_.string(), step); }
  std::vector<std::string> listed() const { return names(list_checkpoints(dir_.string())); }
  State a_{1};
};

// The case: the newest (9) damaged; --resume latest --checkpoint.keep 1 resumes from 4
// and writes 5. Before, pruning kept only the damaged 9 and deleted 2, 4 and the new 5.
TEST_F(PruneTest, DamagedNewestIsSetAsideAndTheNewCheckpointKept) {
  for (int64_t step : {2, 4, 9}) save(step);
  damage(path(9));
  const std::string damaged = contents(path(9));
  const std::string resumed = latest_good_checkpoint(dir_.string(), nullptr);
  ASSERT_EQ(resumed, path(4));
  const std::vector<std::string> moved = set_aside_checkpoints_after(dir_.string(), 4);
  EXPECT_EQ(moved, std::vector<std::string>{(dir_ / "abandoned" / "step-000000009.h5").string()});
  save(5);
  EXPECT_EQ(names(prune_checkpoints(dir_.string(), 1, path(5))),
            (std::vector<std::string>{"step-000000002.h5", "step-000000004.h5"}));
  EXPECT_EQ(listed(), std::vector<std::string>{"step-000000005.h5"});
  EXPECT_EQ(contents(moved[0]), damaged);  // moved, bit for bit
  EXPECT_EQ(latest_good_checkpoint(dir_.string(), nullptr), path(5));
}

// --resume PATH to an older checkpoint: the abandoned branch is set aside, the new one pruned.
TEST_F(PruneTest, ResumeFromAnOlderCheckpointSetsTheBranchAside) {
  for (int64_t step : {2, 4, 6}) save(step);
  const std::string old4 = contents(path(4)), old6 = contents(path(6)), old2 = contents(path(2));
  EXPECT_EQ(names(set_aside_checkpoints_after(dir_.string(), 2)),
            (std::vector<std::string>{"step-000000004.h5", "step-000000006.h5"}));
  save(4);
  prune_checkpoints(dir_.string(), 3, path(4));
  save(5);
  EXPECT_TRUE(prune_checkpoints(dir_.string(), 3, path(5)).empty());
  EXPECT_EQ(listed(), (std::vector<std::string>{"step-000000002.h5", "step-000000004.h5",
                                                "step-000000005.h5"}));
  EXPECT_EQ(contents(path(2)), old2);
  EXPECT_EQ(contents(dir_ / "abandoned" / "step-000000004.h5"), old4);
  EXPECT_EQ(contents(dir_ / "abandoned" / "step-000000006.h5"), old6);
  // A second branch point: names taken in abandoned/ get a suffix, nothing is overwritten.
  EXPECT_EQ(names(set_aside_checkpoints_after(dir_.string(), 2)),
            (std::vector<std::string>{"step-000000004-1.h5", "step-000000005.h5"}));
  EXPECT_EQ(contents(dir_ / "abandoned" / "step-000000004.h5"), old4);
  EXPECT_EQ(listed(), std::vector<std::string>{"step-000000002.h5"});
  // Starting fresh (step -1): everything goes aside.
  EXPECT_EQ(names(set_aside_checkpoints_after(dir_.string(), -1)),
            std::vector<std::string>{"step-000000002.h5"});
  EXPECT_TRUE(listed().empty());
  EXPECT_TRUE(set_aside_checkpoints_after(dir_.string(), -1).empty());
}

// A writer killed mid-write leaves step-N.h5.tmp-PID: removed before the next run's first
// checkpoint; other files that only look alike stay.
TEST_F(PruneTest, HalfWrittenFilesOfAKilledWriterAreRemoved) {
  save(2);
  const std::vector<std::string> left = {"step-000000004.h5.tmp-12345", "step-000000006.h5.tmp-7"};
  const std::vector<std::string> others = {"notes.h5.tmp-1", "step-000000004.h5.tmp-",
                                           "step-000000004.h5.tmp-12x", "step-4.h5.tmp-1"};
  for (const auto& name : left) std::ofstream(dir_ / name) << "half";
  for (const auto& name : others) std::ofstream(dir_ / name) << "other";
  EXPECT_EQ(names(remove_unfinished_checkpoints(dir_.string())), left);
  for (const auto& name : left) EXPECT_FALSE(std::filesystem::exists(dir_ / name)) << name;
  for (const auto& name : others) EXPECT_TRUE(std::filesystem::exists(dir_ / name)) << name;
  EXPECT_EQ(listed(), std::vector<std::string>{"step-000000002.h5"});
  EXPECT_TRUE(remove_unfinished_checkpoints(dir_.string()).empty());
}

TEST_F(PruneTest, NeverTouchesNewerFilesAndCountsOnlyGoodOlderOnes) {
  for (int64_t step : {1, 2, 3, 4, 6}) save(step);
  damage(path(3));
  // keep 3 after 4: 4 itself, then the good 2 and 1 (the damaged 3 does not count, and goes).
  EXPECT_EQ(names(prune_checkpoints(dir_.string(), 3, path(4))),
            std::vector<std::string>{"step-000000003.h5"});
  EXPECT_EQ(listed(), (std::vector<std::string>{"step-000000001.h5", "step-000000002.h5",
                                                "step-000000004.h5", "step-000000006.h5"}));
  // keep 1 even when the file just written is damaged (written is written: no judging it).
  damage(path(4));
  prune_checkpoints(dir_.string(), 1, path(4));
  EXPECT_EQ(listed(), (std::vector<std::string>{"step-000000004.h5", "step-000000006.h5"}));
  prune_checkpoints(dir_.string(), 0, path(4));                        // keep < 1: all
  prune_checkpoints(dir_.string(), 1, (dir_ / "notes.txt").string());  // not a checkpoint: none
  EXPECT_EQ(listed().size(), 2u);
}

TEST_F(PruneTest, OnlyStepNamesAreCheckpoints) {
  save(7);
  std::ofstream(dir_ / "step-00000000x.h5") << "x";
  std::ofstream(dir_ / "step-000000008.h5.tmp-12") << "x";
  fs::create_directories(dir_ / "step-000000009.h5");  // a folder
  EXPECT_EQ(listed(), std::vector<std::string>{"step-000000007.h5"});
  EXPECT_EQ(checkpoint_step(path(7)), 7);
  EXPECT_EQ(checkpoint_step((dir_ / "step-00000000x.h5").string()), -1);
  EXPECT_TRUE(set_aside_checkpoints_after(dir_.string(), 7).empty());
}

// A forged position is refused on load with one line naming the file, the attribute, its value.
class PositionTest : public CheckpointTest {
 protected:
  CheckpointPosition good() const {
    CheckpointPosition p;
    p.step = 10;
    p.epoch = 1;
    p.step_in_epoch = 3;
    p.world_size = 2;
    p.batch_size = 32;
    p.seed = 5;
    return p;
  }
  // Saves `p` (the optimizer with `optimizer_steps` steps) and expects load to refuse it.
  void expect_refused(const CheckpointPosition& p, const std::string& message,
                      int64_t optimizer_steps = 0) {
    State a(1);
    a.optimizer.set_steps(optimizer_steps);
    const std::string path = checkpoint_path(dir_.string(), 1);
    save_checkpoint(path, a.spec, a.params, a.buffers, a.optimizer, a.schedule, p, "");
    State b(2);
    try {
      load_checkpoint(path, b.spec, b.params, b.buffers, b.optimizer, b.schedule, 8000);
      ADD_FAILURE() << "accepted: want " << message;
    } catch (const io::DataError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + path + "': attribute " + message), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
};

TEST_F(PositionTest, AGoodPositionLoads) {
  State a(1);
  a.optimizer.set_steps(10);
  const std::string path = checkpoint_path(dir_.string(), 10);
  CheckpointPosition p = good();
  p.step_in_epoch = 124;  // the last step of an epoch of 8000 samples at 2 x 32
  save_checkpoint(path, a.spec, a.params, a.buffers, a.optimizer, a.schedule, p, "");
  State b(2);
  EXPECT_EQ(load_checkpoint(path, b.spec, b.params, b.buffers, b.optimizer, b.schedule, 8000)
                .step_in_epoch,
            124);
  EXPECT_EQ(b.optimizer.steps(), 10);
}

TEST_F(PositionTest, ForgedPositionsAreRefused) {
  CheckpointPosition p = good();
  p.step_in_epoch = 1000000000000;
  expect_refused(p, "/@step_in_epoch = 1000000000000 is out of range");
  p = good();
  p.step_in_epoch = 125;  // 125 x 64 = 8000: past the epoch
  expect_refused(p, "/@step_in_epoch = 125 is out of range");
  p = good();
  p.step_in_epoch = int64_t{1} << 62;  // the samples seen would overflow
  expect_refused(p, "/@step_in_epoch = 4611686018427387904");
  p = good();
  p.step_in_epoch = -1;
  expect_refused(p, "/@step_in_epoch = -1");
  p = good();
  p.epoch = -1;
  expect_refused(p, "/@epoch = -1 is out of range");
  p = good();
  p.epoch = 11;  // more epochs than steps
  expect_refused(p, "/@epoch = 11 is out of range");
  p = good();
  p.step = -3;
  p.epoch = 0;
  expect_refused(p, "/@step = -3");
  p = good();
  p.world_size = 0;
  expect_refused(p, "/@world_size = 0 is out of range");
  p = good();
  p.batch_size = -32;
  expect_refused(p, "/@batch_size = -32");
  p = good();
  p.loss_scale = 1024;
  p.loss_scale_good_steps = -1;
  expect_refused(p, "/@loss_scale_good_steps = -1");
  p = good();
  p.loss_scale = std::numeric_limits<double>::infinity();
  expect_refused(p, "/@loss_scale = inf");
  expect_refused(good(), "/optimizer@steps = 11 is out of range", 11);  // more updates than steps
}

TEST_F(PositionTest, CheckPositionNamesEachCounter) {
  const std::string path = "x.h5";
  const CheckpointPosition p = good();
  LrSchedule::State s;
  s.lr = 0.1;
  EXPECT_NO_THROW(check_position(path, p, 10, s, 0));
  EXPECT_NO_THROW(check_position(path, p, 0, s, 0));
  auto refused = [&](int64_t steps, const LrSchedule::State& state, const std::string& message) {
    try {
      check_position(path, p, steps, state, 0);
      ADD_FAILURE() << "accepted: want " << message;
    } catch (const io::DataError& e) {
      EXPECT_NE(std::string(e.what()).find("'x.h5': attribute " + message), std::string::npos)
          << e.what();
    }
  };
  refused(-1, s, "/optimizer@steps = -1");
  LrSchedule::State bad = s;
  bad.num_bad_reports = -2;
  refused(10, bad, "/schedule@num_bad_reports = -2");
  bad = s;
  bad.cooldown_counter = -1;
  refused(10, bad, "/schedule@cooldown_counter = -1");
  bad = s;
  bad.reports = -1;
  refused(10, bad, "/schedule@reports = -1");
  bad = s;
  bad.lr = -0.5;
  refused(10, bad, "/schedule@lr = -0.5");
  bad = s;
  bad.best = std::nan("");
  refused(10, bad, "/schedule@best = nan");
}

}  // namespace
}  // namespace alexnet::trainer
