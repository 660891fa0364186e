// Training checkpoints: the state <-> file mapping, and finding, verifying and pruning files.
#include "trainer/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>

#include "io/array_file.h"
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
  io::ArrayFileWriter w(path);
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

namespace {

std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", v);
  return text;
}

// The one-line error for a value a checkpoint cannot have.
[[noreturn]] void out_of_range(const std::string& path, const std::string& attribute,
                               const std::string& value, const std::string& range) {
  throw io::DataError("'" + path + "': attribute " + attribute + " = " + value +
                      " is out of range: " + range);
}

void check_count(const std::string& path, const std::string& attribute, int64_t value, int64_t low,
                 int64_t high, const std::string& high_text) {
  if (value < low || value > high) {
    out_of_range(path, attribute, std::to_string(value),
                 "want " + std::to_string(low) + " to " + std::to_string(high) +
                     (high_text.empty() ? std::string() : " (" + high_text + ")"));
  }
}

}  // namespace

void check_position(const std::string& path, const CheckpointPosition& p, int64_t optimizer_steps,
                    const LrSchedule::State& s, int64_t epoch_samples) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  check_count(path, "/@step", p.step, 0, kMax, "");
  check_count(path, "/@epoch", p.epoch, 0, p.step, "every epoch takes a step: at most /@step");
  check_count(path, "/@world_size", p.world_size, 1, int64_t{1} << 24, "");
  check_count(path, "/@batch_size", p.batch_size, 1, std::numeric_limits<int32_t>::max(), "");
  int64_t seen = 0;  // samples of the epoch before the next batch
  if (p.step_in_epoch < 0 ||
      __builtin_mul_overflow(p.step_in_epoch, p.world_size * p.batch_size, &seen) ||
      (epoch_samples > 0 && seen >= epoch_samples)) {
    out_of_range(path, "/@step_in_epoch", std::to_string(p.step_in_epoch),
                 "want 0 or more steps of " + std::to_string(p.world_size) + " rank(s) x batch " +
                     std::to_string(p.batch_size) + " within the epoch" +
                     (epoch_samples > 0 ? " of " + std::to_string(epoch_samples) + " samples"
                                        : std::string()));
  }
  check_count(path, "/optimizer@steps", optimizer_steps, 0, p.step,
              "one update a step at most: /@step");
  if (p.loss_scale < 0 || !std::isfinite(p.loss_scale)) {
    out_of_range(path, "/@loss_scale", number_text(p.loss_scale), "want a finite number > 0");
  }
  check_count(path, "/@loss_scale_good_steps", p.loss_scale_good_steps, 0, p.step,
              "at most /@step");
  if (s.lr < 0 || !std::isfinite(s.lr)) {
    out_of_range(path, "/schedule@lr", number_text(s.lr), "want a finite number >= 0");
  }
  if (std::isnan(s.best)) out_of_range(path, "/schedule@best", "nan", "want a number");
  check_count(path, "/schedule@num_bad_reports", s.num_bad_reports, 0, kMax, "");
  check_count(path, "/schedule@cooldown_counter", s.cooldown_counter, 0, kMax, "");
  check_count(path, "/schedule@reports", s.reports, 0, kMax, "");
}

CheckpointPosition load_checkpoint(const std::string& path, const ModelSpec& spec,
                                   std::vector<float>& params, std::vector<float>& buffers,
                                   Optimizer& optimizer, LrSchedule& schedule,
                                   int64_t epoch_samples) {
  io::ArrayFileReader r(path);
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
  const int64_t optimizer_steps = r.int_attribute("/optimizer", "steps");
  LrSchedule::State s;
  s.lr = r.float_attribute("/schedule", "lr");
  s.best = r.float_attribute("/schedule", "best");
  s.num_bad_reports = r.int_attribute("/schedule", "num_bad_reports");
  s.cooldown_counter = r.int_attribute("/schedule", "cooldown_counter");
  s.reports = r.int_attribute("/schedule", "reports");
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
    if (p.loss_scale == 0) {  // written only where there is a scale
      out_of_range(path, "/@loss_scale", "0", "want a finite number > 0");
    }
  }
  check_position(path, p, optimizer_steps, s, epoch_samples);
  optimizer.set_steps(optimizer_steps);
  schedule.set_state(s);
  return p;
}

std::string checkpoint_config(const std::string& path) {
  io::ArrayFileReader r(path);
  return r.has_attribute("/", "config") ? r.string_attribute("/", "config") : std::string();
}

int64_t checkpoint_step(const std::string& path) {
  const std::string n = fs::path(path).filename().string();
  if (n.size() != 17 || !n.starts_with("step-") || !n.ends_with(".h5")) return -1;
  const char* digits = n.data() + 5;
  if (!std::all_of(digits, digits + 9, [](char c) { return c >= '0' && c <= '9'; })) return -1;
  int64_t step = -1;
  std::from_chars(digits, digits + 9, step);
  return step;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (checkpoint_step(e.path().string()) >= 0 && e.is_regular_file(ec)) {
      files.push_back(e.path().string());
    }
  }
  std::sort(files.begin(), files.end());  // zero-padded steps: name order is step order
  return files;
}

std::vector<std::string> set_aside_checkpoints_after(const std::string& dir, int64_t step) {
  std::vector<std::string> moved;
  const fs::path aside = fs::path(dir) / "abandoned";
  for (const std::string& file : list_checkpoints(dir)) {
    if (checkpoint_step(file) <= step) continue;
    std::error_code ec;
    fs::create_directories(aside, ec);
    if (ec) {
      throw io::DataError("'" + aside.string() + "': cannot create the folder for " + file + ": " +
                          ec.message());
    }
    const std::string stem = fs::path(file).stem().string();
    fs::path target = aside / fs::path(file).filename();
    for (int i = 1; fs::exists(fs::symlink_status(target, ec)); ++i) {  // never over one there
      target = aside / (stem + "-" + std::to_string(i) + ".h5");
    }
    fs::rename(file, target, ec);
    if (ec) {
      throw io::DataError("'" + file + "': cannot move it to " + target.string() + ": " +
                          ec.message());
    }
    moved.push_back(target.string());
  }
  return moved;
}

std::vector<std::string> remove_unfinished_checkpoints(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    // step-<step>.h5.tmp-<pid> (io/array_file.h): the name of a checkpoint, then ".tmp-" digits.
    const std::string name = e.path().filename().string();
    const size_t tmp = name.rfind(".tmp-");
    if (tmp == std::string::npos || tmp + 5 == name.size() ||
        name.find_first_not_of("0123456789", tmp + 5) != std::string::npos ||
        checkpoint_step(name.substr(0, tmp)) < 0 || !e.is_regular_file(ec)) {
      continue;
    }
    if (fs::remove(e.path(), ec)) removed.push_back(e.path().string());
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped) {
  std::vector<std::string> files = list_checkpoints(dir);
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      io::ArrayFileReader r(*it);  // verifies format and checksum
      return *it;
    } catch (const std::exception& e) {
      if (skipped != nullptr) skipped->push_back(e.what());
    }
  }
  return {};
}

namespace {

// Checkpoints this process wrote or verified, with the size and time they had then: pruning
// after every checkpoint would otherwise read keep - 1 whole files back each time (about 1 GB
// for AlexNet at keep 3). A file changed since (size or time) is verified again.
struct FileStamp {
  uintmax_t size;
  fs::file_time_type time;
  bool operator==(const FileStamp&) const = default;
};
std::optional<FileStamp> stamp(const std::string& path) {
  std::error_code ec1, ec2;
  const uintmax_t size = fs::file_size(path, ec1);
  const auto time = fs::last_write_time(path, ec2);
  if (ec1 || ec2) return std::nullopt;
  return FileStamp{size, time};
}
std::map<std::string, FileStamp>& verified_checkpoints() {
  static std::map<std::string, FileStamp> verified;
  return verified;
}
bool verifies(const std::string& path) {
  const std::optional<FileStamp> now = stamp(path);
  auto& known = verified_checkpoints();
  if (const auto it = known.find(path); now && it != known.end() && it->second == *now) return true;
  try {
    io::ArrayFileReader verified(path);
  } catch (const std::exception&) {  // damaged: no help for a resume
    return false;
  }
  if (now) known[path] = *now;
  return true;
}

}  // namespace

std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep,
                                           const std::string& just_written) {
  std::vector<std::string> removed;
  const int64_t newest = checkpoint_step(just_written);
  if (keep < 1 || newest < 0) return removed;
  // Written (fsynced, renamed) by this process a moment ago: good without reading it back.
  if (const std::optional<FileStamp> s = stamp(just_written))
    verified_checkpoints()[just_written] = *s;
  std::vector<std::string> files = list_checkpoints(dir);
  int64_t kept = 1;  // just_written
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    if (checkpoint_step(*it) >= newest) continue;  // it, or newer: not ours to judge
    if (kept < keep && verifies(*it)) {            // a damaged one does not count
      ++kept;
      continue;
    }
    std::error_code ec;
    if (fs::remove(*it, ec)) removed.push_back(*it);
    verified_checkpoints().erase(*it);
  }
  std::reverse(removed.begin(), removed.end());
  return removed;
}

}  // namespace alexnet::trainer
