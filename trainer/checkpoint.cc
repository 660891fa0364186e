// Training checkpoints: the state <-> file mapping, and finding, verifying and pruning files.
#include "trainer/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "io/checkpoint_file.h"
#include "io/error.h"
#include "trainer/weights_file.h"

namespace alexnet::trainer {

namespace fs = std::filesystem;

std::string checkpoint_path(const std::string& dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%09lld.h5", static_cast<long long>(step));
  return (fs::path(dir) / name).string();
}

void save_checkpoint(const std::string& path, const ModelSpec& spec,
                     const std::vector<float>& params, const std::vector<float>& buffers,
                     Optimizer& optimizer, const LrSchedule& schedule,
                     const CheckpointPosition& position, const std::string& config) {
  io::CheckpointWriter w(path);
  add_model(w, spec, params, buffers);
  const auto size = static_cast<int64_t>(optimizer.size());
  for (const StateArray& a : optimizer.state()) {
    w.add("/optimizer/" + a.name, {size}, a.values.data());
  }
  w.set_attribute("/optimizer", "steps", optimizer.steps());
  w.set_attribute("/optimizer", "name", optimizer.config().name);
  const LrSchedule::State& s = schedule.state();
  w.set_attribute("/schedule", "lr", s.lr);
  w.set_attribute("/schedule", "best", s.best);
  w.set_attribute("/schedule", "num_bad_reports", s.num_bad_reports);
  w.set_attribute("/schedule", "cooldown_counter", s.cooldown_counter);
  w.set_attribute("/schedule", "reports", s.reports);
  w.set_attribute("/", "step", position.step);
  w.set_attribute("/", "epoch", position.epoch);
  w.set_attribute("/", "step_in_epoch", position.step_in_epoch);
  w.set_attribute("/", "world_size", position.world_size);
  w.set_attribute("/", "batch_size", position.batch_size);
  w.set_attribute("/", "seed", static_cast<int64_t>(position.seed));
  if (position.loss_scale > 0) {
    w.set_attribute("/", "loss_scale", position.loss_scale);
    w.set_attribute("/", "loss_scale_good_steps", position.loss_scale_good_steps);
  }
  w.set_attribute("/", "config", config);
  w.commit();
}

CheckpointPosition load_checkpoint(const std::string& path, const ModelSpec& spec,
                                   std::vector<float>& params, std::vector<float>& buffers,
                                   Optimizer& optimizer, LrSchedule& schedule) {
  io::CheckpointReader r(path);
  read_model(r, spec, params, buffers);
  const std::string name = r.string_attribute("/optimizer", "name");
  if (name != optimizer.config().name) {
    throw io::DataError("'" + path + "': optimizer state of " + name + ", but optim.name is " +
                        optimizer.config().name);
  }
  const auto size = static_cast<int64_t>(optimizer.size());
  for (const StateArray& a : optimizer.state()) {
    const std::string array = "/optimizer/" + a.name;
    if (!r.has(array)) {
      throw io::DataError("'" + path + "': no optimizer state '" + a.name +
                          "' (saved with other optimizer settings)");
    }
    std::vector<float> values(static_cast<size_t>(size));
    r.read(array, {size}, values);
    optimizer.load_state(a.name, values);
  }
  optimizer.set_steps(r.int_attribute("/optimizer", "steps"));
  LrSchedule::State s;
  s.lr = r.float_attribute("/schedule", "lr");
  s.best = r.float_attribute("/schedule", "best");
  s.num_bad_reports = r.int_attribute("/schedule", "num_bad_reports");
  s.cooldown_counter = r.int_attribute("/schedule", "cooldown_counter");
  s.reports = r.int_attribute("/schedule", "reports");
  schedule.set_state(s);
  CheckpointPosition p;
  p.step = r.int_attribute("/", "step");
  p.epoch = r.int_attribute("/", "epoch");
  p.step_in_epoch = r.int_attribute("/", "step_in_epoch");
  p.world_size = r.int_attribute("/", "world_size");
  p.batch_size = r.int_attribute("/", "batch_size");
  p.seed = static_cast<uint64_t>(r.int_attribute("/", "seed"));
  if (r.has_attribute("/", "loss_scale")) {
    p.loss_scale = r.float_attribute("/", "loss_scale");
    p.loss_scale_good_steps = r.int_attribute("/", "loss_scale_good_steps");
  }
  return p;
}

std::string checkpoint_config(const std::string& path) {
  io::CheckpointReader r(path);
  return r.has_attribute("/", "config") ? r.string_attribute("/", "config") : std::string();
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 17 && n.starts_with("step-") && n.ends_with(".h5")) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());  // zero-padded steps: name order is step order
  return files;
}

std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  std::vector<std::string> files = list_checkpoints(dir);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      io::CheckpointReader r(*it);  // verifies format and checksum
      return *it;
    } catch (const std::exception& e) {
      if (skipped != nullptr) skipped->push_back(e.what());
    }
  }
  return {};
}

void prune_checkpoints(const std::string& dir, int64_t keep) {
  if (keep < 1) return;
  std::vector<std::string> files = list_checkpoints(dir);
  const auto n = static_cast<int64_t>(files.size());
  for (int64_t i = 0; i + keep < n; ++i) {
    std::error_code ec;
    fs::remove(files[static_cast<size_t>(i)], ec);
  }
}

}  // namespace alexnet::trainer
