// alexnet-train: the data-parallel training job. Every MPI rank trains a replica of the model on
// its shard of the data; gradients are averaged over the ranks every step (in buckets, while
// backward runs); rank 0 writes checkpoints, the metrics log and TensorBoard events. Runs as one
// process too (no mpirun needed).
//
// Exit status (README.md, io/cli.h): 0 done; 1 internal failure; 2 bad input or options (one
// line naming the file or option); 3 stopped by SIGTERM or
// SIGUSR1 after writing a checkpoint (requeue with --resume latest); 4 the loss became NaN or
// Inf (the last good checkpoint is kept); 5 a peer rank stopped answering (comm.timeout_s).
#include <malloc.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/gpu_assignment.h"
#include "comm/mpi_communicator.h"
#include "comm/watchdog.h"
#ifdef ALEXNET_WITH_CUDA
#include "comm/nccl_communicator.h"
#include "trainer/cuda/cuda_backend.h"
#include "trainer/cuda/device_augmenter.h"
#include "trainer/multi_gpu_step.h"
#endif
#include "io/augment.h"
#include "io/cli.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/loader.h"
#include "io/sampler.h"
#include "trainer/backend.h"
#include "trainer/checkpoint.h"
#include "trainer/evaluate.h"
#include "trainer/init_from.h"
#include "trainer/lr_schedule.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/profiler.h"
#include "trainer/run_log.h"
#include "trainer/train_options.h"
#include "trainer/train_step.h"
#include "trainer/weights_file.h"

using namespace alexnet;
using namespace alexnet::trainer;
using Clock = std::chrono::steady_clock;

namespace {

using io::kExitBadInput;
using io::kExitDiverged;
using io::kExitFailure;
using io::kExitPeerLost;
using io::kExitStopped;
using io::OptionError;

// A problem every rank detects the same way at the same point (so no rank is left waiting):
// rank 0 reports it, all ranks exit with `code` without aborting the others.
struct CollectiveError : std::runtime_error {
  CollectiveError(const std::string& what, int exit_code)
      : std::runtime_error(what), code(exit_code) {}
  int code;
};

std::atomic<int> stop_signal{0};
extern "C" void on_stop_signal(int signal) { stop_signal.store(signal); }

void install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGTERM, SIGUSR1}) {
    if (sigaction(s, &action, nullptr) != 0) {
      throw std::runtime_error(std::string("sigaction failed: ") + std::strerror(errno));
    }
  }
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
}

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Every rank must run the same job: compares a hash of the merged configuration.
void check_same_config(comm::Communicator& comm, const std::string& config) {
  // The build too: ranks from different builds (another commit on some node) must not mix.
  const uint64_t mine = fnv1a(config + "\nbuild = " ALEXNET_BUILD_ID "\n");
  std::vector<uint64_t> all(static_cast<size_t>(comm.size()));
  comm.all_gather(&mine, all.data(), sizeof mine);
  std::string differing;
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] != all[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!differing.empty()) {
    throw CollectiveError("rank(s) " + differing +
                              " run another configuration or build than rank 0 (config, options "
                              "and alexnet-train binary must be the same on every rank; compare "
                              "--print-config and --version)",
                          kExitBadInput);
  }
}

// The model for the training data; images the arch cannot take (too small for its kernels and
// pools) are the data's fault, named by its first file.
ModelSpec model_for(const TrainOptions& o, const io::Dataset& data) {
  const io::DatasetMeta& m = data.meta();
  const bool mini = o.arch == "alexnet-mini";
  try {
    return build_model(o.arch, m.num_classes, m.channels, mini ? m.height : 0, mini ? m.width : 0);
  } catch (const std::invalid_argument& e) {
    throw io::DataError("'" + data.shards().front().path + "': " + std::to_string(m.channels) +
                        " x " + std::to_string(m.height) + " x " + std::to_string(m.width) +
                        " images do not fit " + o.arch + ": " + e.what());
  }
}

// A dataset against the model before step 1 (not at the first validation, an epoch later):
// its classes and channels, and images that the loader's crop fits.
void check_dataset(const io::Dataset& data, const char* role, const ModelSpec& spec,
                   const io::AugmentConfig& augment, const io::DatasetMeta& train) {
  const io::DatasetMeta& m = data.meta();
  const std::string what = "'" + data.shards().front().path + "' (" + role + ")";
  if (m.num_classes != spec.num_classes || m.channels != spec.in_channels) {
    throw io::DataError(what + ": " + std::to_string(m.channels) + "-channel images of " +
                        std::to_string(m.num_classes) + " classes; the training data has " +
                        std::to_string(spec.in_channels) + " channels, " +
                        std::to_string(spec.num_classes) + " classes");
  }
  // alexnet-mini takes its input size from the training data: other sizes are other data.
  if (spec.arch == "alexnet-mini" && (m.height != train.height || m.width != train.width)) {
    throw io::DataError(what + ": " + std::to_string(m.height) + " x " + std::to_string(m.width) +
                        " images; the training data's are " + std::to_string(train.height) + " x " +
                        std::to_string(train.width));
  }
  try {
    io::validate(augment, m.height, m.width, m.channels);
  } catch (const io::DataError& e) {
    throw io::DataError(what + ": " + e.what());
  }
}

std::vector<DecayRange> decay_ranges(const ModelSpec& spec) {
  std::vector<DecayRange> ranges;
  size_t covered = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      if (p.is_buffer) continue;
      const auto offset = static_cast<size_t>(p.offset);
      if (offset > covered) ranges.push_back({covered, offset - covered, false});  // padding
      ranges.push_back({offset, static_cast<size_t>(p.numel()), p.weight_decay});
      covered = offset + static_cast<size_t>(p.numel());
    }
  }
  const auto size = static_cast<size_t>(spec.param_floats);
  if (covered < size) ranges.push_back({covered, size - covered, false});
  return ranges;
}

// Compute threads per rank: the node's cores shared among the ranks on it.
// Compute threads per rank. A rank that the launcher bound to some CPUs (Open MPI's default
// binding, Slurm's task affinity) gets exactly those; an unbound one its share of the node.
int compute_threads(const TrainOptions& o, const comm::Communicator& comm) {
  if (o.threads > 0) return o.threads;
  const auto cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) {
    const int allowed = CPU_COUNT(&mask);
    if (allowed > 0 && allowed < cores) return allowed;
  }
  return std::max(1, cores / std::max(1, comm.local_size()));
}

// "key = value" lines of a config text, with their [section] prefixed ("optim.lr").
std::map<std::string, std::string> config_entries(const std::string& text) {
  std::map<std::string, std::string> entries;
  std::istringstream in(text);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.size() > 2 && line.front() == '[' && line.back() == ']') {
      section = line.substr(1, line.size() - 2) + ".";
      continue;
    }
    const size_t eq = line.find(" = ");
    if (eq != std::string::npos) entries[section + line.substr(0, eq)] = line.substr(eq + 3);
  }
  return entries;
}

// What a resumed run changes of the settings the checkpoint was trained with (the length of the
// run, logging, checkpointing and profiling excepted: changing those is what resuming is for).
std::string changed_settings(const std::string& saved, const std::string& now) {
  static const std::set<std::string> kFree = {"train.epochs",
                                              "train.max_steps",
                                              "train.log_every",
                                              "train.val_every",
                                              "data.workers",
                                              "run.dir",
                                              "run.threads",
                                              "comm.timeout_s",
                                              "checkpoint.every_steps",
                                              "checkpoint.every_minutes",
                                              "checkpoint.keep",
                                              "profile.steps",
                                              "profile.start",
                                              "data.val",
                                              "train.batch_size"};
  const auto a = config_entries(saved), b = config_entries(now);
  std::string changes;
  for (const auto& [key, value] : b) {
    if (kFree.count(key) != 0) continue;
    const auto it = a.find(key);
    if (it == a.end() || it->second == value) continue;
    changes += (changes.empty() ? "" : ", ") + key + " " + it->second + " -> " + value;
  }
  return changes;
}

class Job {
 public:
  Job(const TrainOptions& o, comm::MpiCommunicator& comm) : o_(o), comm_(comm) {}
  int run();

 private:
  void resume_or_initialize();
  void broadcast_state();
  void write_checkpoint(int64_t epoch, int64_t step_in_epoch);
  EvalResult validate(int64_t epoch);
  void write_profile(const Profiler& profiler);
  void make_backends_and_models(int64_t replica_batch);
  void copy_state_to_replicas();
  io::LoaderConfig train_loader_config(int64_t start_epoch, int64_t start_step) const;
  // Training batches augmented by a kernel from the stored uint8 images (data.augment_on).
  bool augment_on_device() const {
    return o_.augment_on == "device" ||
           (o_.augment_on == "auto" && o_.backend == "cuda" && o_.gpus_per_rank == 1);
  }

  const TrainOptions& o_;
  comm::MpiCommunicator& comm_;
  std::unique_ptr<io::Dataset> train_set_, val_set_;
  ModelSpec spec_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::vector<float> params_, buffers_;  // host copies (initialization, checkpoints)
  std::unique_ptr<Optimizer> optimizer_;
  // --gpus-per-rank G > 1: the replicas on this rank's other devices (replica 0 is the above).
  std::vector<std::unique_ptr<Backend>> extra_backends_;
  std::vector<std::unique_ptr<Model>> extra_models_;
  std::vector<std::unique_ptr<Optimizer>> extra_optimizers_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<RunLog> log_;
  std::unique_ptr<comm::Watchdog> watchdog_;
  comm::GpuAssignment gpu_assignment_;  // backend cuda
  CheckpointPosition position_;         // of the next step
  int64_t steps_per_epoch_ = 0;
  std::string last_checkpoint_;
  // Rank 0: the step this run started from (-1: fresh) until its first checkpoint, which first
  // sets aside the folder's later ones (damaged, or an abandoned branch); then -2.
  int64_t set_aside_after_ = -2;
  std::string config_;
};

io::LoaderConfig Job::train_loader_config(int64_t start_epoch, int64_t start_step) const {
  const io::DatasetMeta& m = train_set_->meta();
  io::LoaderConfig lc;
  lc.batch_size = o_.batch_size;
  lc.sampler.seed = o_.seed;
  lc.sampler.shuffle = true;
  lc.drop_last = true;
  lc.workers = o_.data_workers;
  lc.rank = comm_.rank();
  lc.world = comm_.size();
  lc.start_epoch = start_epoch;
  lc.start_step = start_step;
  lc.epochs = o_.epochs - start_epoch;
  lc.augment.crop_height = spec_.height;
  lc.augment.crop_width = spec_.width;
  lc.augment.random_crop = o_.random_crop;
  lc.augment.flip = o_.flip;
  lc.augment.pad = o_.pad;
  lc.augment.lighting_std = static_cast<float>(o_.lighting);
  lc.augment.mean.assign(m.mean.begin(), m.mean.end());
  lc.augment.std.assign(m.std.begin(), m.std.end());
  // Before the backend exists (the data's check), the layout does not matter.
  lc.augment.layout = backend_ && backend_->activation_layout() == ActivationLayout::kNHWC
                          ? io::Layout::kNHWC
                          : io::Layout::kNCHW;
  lc.augment_on_host = !augment_on_device();
  return lc;
}

// Rank 0 initializes the weights or loads the checkpoint; broadcast_state() gives every rank the
// same state.
void Job::resume_or_initialize() {
  params_.assign(static_cast<size_t>(spec_.param_floats), 0.0f);
  buffers_.assign(static_cast<size_t>(std::max<int64_t>(spec_.buffer_floats, 1)), 0.0f);
  position_ = {};
  position_.world_size = comm_.size();
  position_.batch_size = o_.batch_size;
  position_.seed = o_.seed;
  int64_t loaded = 0;
  if (comm_.rank() == 0) {
    std::string path = o_.resume;
    const std::string dir = o_.run_dir + "/checkpoints";
    if (o_.resume == "latest") {
      std::vector<std::string> skipped;
      path = latest_good_checkpoint(dir, &skipped);
      for (const std::string& s : skipped) log_->say("skipping a damaged checkpoint: " + s);
      if (path.empty()) log_->say("no checkpoint in " + dir + ": starting from scratch");
    }
    if (!path.empty()) {
      position_ = load_checkpoint(path, spec_, params_, buffers_, *optimizer_, *schedule_,
                                  train_set_->size());
      last_checkpoint_ = path;
      loaded = 1;
      // A requeued job re-reads its config file: say what differs from the checkpoint's run.
      const std::string changes = changed_settings(checkpoint_config(path), config_);
      if (!changes.empty()) {
        log_->say("warning: resuming with settings that differ from the checkpoint's: " + changes);
      }
      log_->say("resumed from " + path + " at step " + std::to_string(position_.step) + " (epoch " +
                std::to_string(position_.epoch) + ", step " +
                std::to_string(position_.step_in_epoch) + " of it)");
    } else {
      initialize_parameters(spec_, o_.seed, params_.data(), buffers_.data());
      if (!o_.init_from.empty()) {  // weights in: fine-tuning (fresh only where init.skip says)
        try {
          log_->say(init_from(o_.init_from, o_.init_skip, spec_, params_, buffers_));
        } catch (const std::invalid_argument& e) {  // an init.skip pattern that matches nothing
          throw OptionError(e.what());
        }
      }
    }
  }
  comm_.broadcast(&loaded, sizeof loaded, 0);
  broadcast_state();
  if (!loaded) return;
  if (position_.seed != o_.seed) {
    throw CollectiveError("the checkpoint was made with seed " + std::to_string(position_.seed) +
                              ", this run has seed " + std::to_string(o_.seed),
                          kExitBadInput);
  }
  // Another world size or batch: the same epoch, at the same fraction of it; each rank's shard
  // is different from here on, so the data order (not the samples per epoch) changes.
  if (position_.world_size != comm_.size() || position_.batch_size != o_.batch_size) {
    const int64_t seen = position_.step_in_epoch * position_.world_size * position_.batch_size;
    const int64_t next = seen / (comm_.size() * o_.batch_size);
    log_->say("resuming a run of " + std::to_string(position_.world_size) + " rank(s) x batch " +
              std::to_string(position_.batch_size) + " on " + std::to_string(comm_.size()) + " x " +
              std::to_string(o_.batch_size) +
              ": the data order changes from here (same epoch, step " + std::to_string(next) +
              " of it)");
    position_.step_in_epoch = next;
    position_.world_size = comm_.size();
    position_.batch_size = o_.batch_size;
    if (position_.step_in_epoch >= steps_per_epoch_) {
      ++position_.epoch;
      position_.step_in_epoch = 0;
    }
  }
}

void Job::broadcast_state() {
  comm_.broadcast(params_.data(), params_.size() * 4, 0);
  comm_.broadcast(buffers_.data(), buffers_.size() * 4, 0);
  for (const StateArray& a : optimizer_->state()) {
    comm_.broadcast(a.values.data(), a.values.size() * 4, 0);
    optimizer_->load_state(a.name, a.values);  // device backends: into device memory too
  }
  int64_t steps = optimizer_->steps();
  comm_.broadcast(&steps, sizeof steps, 0);
  optimizer_->set_steps(steps);
  LrSchedule::State s = schedule_->state();
  comm_.broadcast(&s, sizeof s, 0);
  schedule_->set_state(s);
  comm_.broadcast(&position_, sizeof position_, 0);
}

void Job::write_checkpoint(int64_t epoch, int64_t step_in_epoch) {
  position_.epoch = epoch;
  position_.step_in_epoch = step_in_epoch;
  if (comm_.rank() != 0) return;
  const std::string dir = o_.run_dir + "/checkpoints";
  const std::string path = checkpoint_path(dir, position_.step);
  if (set_aside_after_ >= -1) {  // only a run that writes one moves any (a refused run: none)
    const bool fresh = set_aside_after_ == -1;
    std::string line = fresh ? std::string("moved checkpoints of an earlier run (starting fresh)")
                             : "moved checkpoints after step " + std::to_string(set_aside_after_);
    line.append(" into ").append(dir).append("/abandoned/:");
    const auto moved = set_aside_checkpoints_after(dir, set_aside_after_);
    for (const std::string& f : moved) {
      line.append(" ").append(std::filesystem::path(f).filename().string());
    }
    if (!moved.empty()) log_->say(line);
    set_aside_after_ = -2;
  }
  backend_->copy_to_host(params_.data(), model_->params(), params_.size() * 4);
  backend_->copy_to_host(buffers_.data(), model_->buffers(),
                         static_cast<size_t>(spec_.buffer_floats) * 4);
  try {
    save_checkpoint(path, spec_, params_, buffers_, *optimizer_, *schedule_, position_, config_);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " not written: " + e.what() +
                             (last_checkpoint_.empty() ? std::string(" (no earlier checkpoint)")
                                                       : "; the previous checkpoint " +
                                                             last_checkpoint_ + " is intact"));
  }
  last_checkpoint_ = path;
  prune_checkpoints(dir, o_.checkpoint_keep, path);
  log_->say("checkpoint " + path + " written (step " + std::to_string(position_.step) + ")");
}

// Each rank writes run.dir/profile/rank-R.json; rank 0 then merges those it can see (all of them
// on a shared file system) into profile/trace.json.
void Job::write_profile(const Profiler& profiler) {
  const std::filesystem::path dir = std::filesystem::path(o_.run_dir) / "profile";
  if (comm_.rank() == 0) std::filesystem::create_directories(dir);
  comm_.barrier();
  const std::string mine = (dir / ("rank-" + std::to_string(comm_.rank()) + ".json")).string();
  write_text_file(mine, profiler.json(comm_.rank()));
  comm_.barrier();
  if (comm_.rank() != 0) return;
  std::vector<std::string> traces;
  for (int r = 0; r < comm_.size(); ++r) {
    std::ifstream in(dir / ("rank-" + std::to_string(r) + ".json"));
    if (in)
      traces.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string merged = (dir / "trace.json").string();
  write_text_file(merged, merge_traces(traces));
  log_->say("profile of " + std::to_string(o_.profile_steps) + " steps from " +
            std::to_string(traces.size()) + " rank(s) written to " + merged +
            " (chrome://tracing or https://ui.perfetto.dev)" +
            (profiler.dropped() > 0 ? "; " + std::to_string(profiler.dropped()) + " events dropped"
                                    : std::string()));
}

// Every rank evaluates its share of the validation set with rank 0's batch-norm statistics;
// the sums are reduced so the result covers every sample once.
EvalResult Job::validate(int64_t epoch) {
  // Through host memory: the backend's may be a GPU's, which MPI cannot read.
  const auto buffer_bytes = static_cast<size_t>(spec_.buffer_floats) * 4;
  if (buffer_bytes > 0) {
    backend_->copy_to_host(buffers_.data(), model_->buffers(), buffer_bytes);
    comm_.broadcast(buffers_.data(), buffer_bytes, 0);
    backend_->copy_to_device(model_->buffers(), buffers_.data(), buffer_bytes);
  }
  io::LoaderConfig lc = eval_loader_config(*model_, *val_set_, *backend_, o_.data_workers);
  lc.rank = comm_.rank();
  lc.world = comm_.size();
  io::Loader loader(*val_set_, lc);
  EvalResult r =
      evaluate(*model_, *backend_, loader, nullptr, [&] { watchdog_->beat("validating"); });
  const auto n = static_cast<double>(r.samples);
  double sums[4] = {r.loss * n, r.top1 * n, r.top5 * n, n};
  comm_.all_reduce(sums, 4, comm::ReduceOp::kSum);
  EvalResult total;
  total.samples = static_cast<int64_t>(sums[3]);
  if (sums[3] > 0) {
    total.loss = sums[0] / sums[3];
    total.top1 = sums[1] / sums[3];
    total.top5 = sums[2] / sums[3];
  }
  log_->validation(epoch, position_.step, total);
  return total;
}

// The backend (one per GPU with --gpus-per-rank) and the model replicas on them. On the cuda
// backend, local rank r drives the visible devices r*G ... r*G+G-1 (comm/gpu_assignment.h).
void Job::make_backends_and_models(int64_t replica_batch) {
  BackendOptions options;
  options.precision = parse_precision(o_.precision);
  options.allow_tf32 = o_.tf32;
  if (o_.backend == "cuda") {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    // Too few GPUs for gpus-per-rank, or no CUDA in this build: the options' fault.
    try {
      gpu_assignment_ =
          comm::assign_gpus(comm_.rank(), comm_.size(), comm_.local_rank(), comm_.local_size(),
                            o_.gpus_per_rank, cuda_device_count(), host);
    } catch (const std::invalid_argument& e) {
      throw OptionError(std::string("backend cuda: ") + e.what());
    }
    options.device = gpu_assignment_.devices[0];
  }
  try {
    backend_ = make_backend(o_.backend, options);
  } catch (const std::invalid_argument& e) {
    throw OptionError(e.what());
  }
  model_ = std::make_unique<Model>(spec_, *backend_, replica_batch, o_.label_smoothing);
  model_->set_dropout(o_.dropout);
  for (size_t g = 1; g < gpu_assignment_.devices.size(); ++g) {
    options.device = gpu_assignment_.devices[g];
    extra_backends_.push_back(make_backend(o_.backend, options));
    extra_models_.push_back(
        std::make_unique<Model>(spec_, *extra_backends_.back(), replica_batch, o_.label_smoothing));
    extra_models_.back()->set_dropout(o_.dropout);
  }
}

// Replica 0's parameters, buffers and optimizer state into every other replica of this rank.
void Job::copy_state_to_replicas() {
  for (size_t g = 0; g < extra_backends_.size(); ++g) {
    Backend& b = *extra_backends_[g];
#ifdef ALEXNET_WITH_CUDA
    cuda::make_current(b);
#endif
    b.copy_to_device(extra_models_[g]->params(), params_.data(), params_.size() * 4);
    b.copy_to_device(extra_models_[g]->buffers(), buffers_.data(),
                     static_cast<size_t>(spec_.buffer_floats) * 4);
    for (const StateArray& a : optimizer_->state())
      extra_optimizers_[g]->load_state(a.name, a.values);
    extra_optimizers_[g]->set_steps(optimizer_->steps());
  }
#ifdef ALEXNET_WITH_CUDA
  if (!extra_backends_.empty()) cuda::make_current(*backend_);
#endif
}

int Job::run() {
  const int rank = comm_.rank(), world = comm_.size();
  config_ = config_text(o_);
  check_same_config(comm_, config_);
  omp_set_num_threads(compute_threads(o_, comm_));
  if (o_.train_files.empty()) throw io::DataError("no training data: set data.train");
  train_set_ = std::make_unique<io::Dataset>(io::Dataset::open(o_.train_files));
  if (!o_.val_files.empty()) {
    val_set_ = std::make_unique<io::Dataset>(io::Dataset::open(o_.val_files));
  }
  const io::DatasetMeta& m = train_set_->meta();
  spec_ = model_for(o_, *train_set_);
  // Both datasets against the model before anything is allocated for it.
  check_dataset(*train_set_, "data.train", spec_, train_loader_config(0, 0).augment, m);
  if (val_set_) {
    io::AugmentConfig center;  // the evaluation loader's (trainer/evaluate.cc)
    center.crop_height = spec_.height;
    center.crop_width = spec_.width;
    center.random_crop = center.flip = false;
    const io::DatasetMeta& v = val_set_->meta();
    center.mean.assign(v.mean.begin(), v.mean.end());
    center.std.assign(v.std.begin(), v.std.end());
    check_dataset(*val_set_, "data.val", spec_, center, m);
  }
  if (o_.backend != "cuda") require_batch_fits("train.batch_size", o_.batch_size, spec_, true);
  const int gpus = o_.gpus_per_rank;
  // Training batch norm needs two values per channel (op_shapes.h): a batch the option chose.
  for (const LayerSpec& l : spec_.layers) {
    if (l.kind != LayerKind::kBatchNorm) continue;
    int64_t spatial = 1;
    for (size_t i = 1; i < l.in_shape.size(); ++i) spatial *= l.in_shape[i];
    if (o_.batch_size / gpus * spatial < 2) {
      throw OptionError("train.batch_size " + std::to_string(o_.batch_size) + ": " + spec_.arch +
                        "'s batch norm " + l.name + " sees one value per channel (" +
                        std::to_string(spatial) + " position(s) an image" +
                        (gpus > 1 ? ", per GPU" : "") + "); train with a larger batch");
    }
  }
  make_backends_and_models(o_.batch_size / gpus);
  steps_per_epoch_ =
      io::samples_for_rank(train_set_->size(), /*shuffle=*/true, rank, world) / o_.batch_size;
  if (steps_per_epoch_ == 0) {
    throw io::DataError("each of " + std::to_string(world) +
                        " ranks gets fewer samples than one batch of " +
                        std::to_string(o_.batch_size));
  }
  // Replica 0's optimizer state on replica 0's device (the last replica made left its own
  // device current).
#ifdef ALEXNET_WITH_CUDA
  if (!extra_backends_.empty()) cuda::make_current(*backend_);
#endif
  optimizer_ =
      std::make_unique<Optimizer>(optimizer_config(o_), static_cast<size_t>(spec_.param_floats),
                                  decay_ranges(spec_), backend_.get());
  for (auto& b : extra_backends_) {
#ifdef ALEXNET_WITH_CUDA
    cuda::make_current(*b);
#endif
    extra_optimizers_.push_back(std::make_unique<Optimizer>(optimizer_config(o_),
                                                            static_cast<size_t>(spec_.param_floats),
                                                            decay_ranges(spec_), b.get()));
  }
#ifdef ALEXNET_WITH_CUDA
  if (!extra_backends_.empty()) cuda::make_current(*backend_);
#endif
  try {  // the run's length is known now (cosine: more steps than warm-up)
    schedule_ = std::make_unique<LrSchedule>(schedule_config(o_, steps_per_epoch_));
  } catch (const std::invalid_argument& e) {
    throw OptionError("optim.schedule " + o_.schedule + ": " + e.what());
  }

  if (rank == 0) {
    std::error_code ec;  // a file in the way, no permission: the option's fault
    std::filesystem::create_directories(o_.run_dir + "/checkpoints", ec);
    if (ec) throw OptionError("run.dir '" + o_.run_dir + "': cannot create it: " + ec.message());
  }
  comm_.barrier();  // the run directory exists before anyone uses it
  log_ = std::make_unique<RunLog>(o_.run_dir, rank == 0);
  if (!gpu_assignment_.devices.empty()) {
    log_->say(comm::describe_gpu_assignment(gpu_assignment_, std::getenv("CUDA_VISIBLE_DEVICES")));
  }
  resume_or_initialize();
  set_aside_after_ = last_checkpoint_.empty() ? -1 : position_.step;
  backend_->copy_to_device(model_->params(), params_.data(), params_.size() * 4);
  backend_->copy_to_device(model_->buffers(), buffers_.data(),
                           static_cast<size_t>(spec_.buffer_floats) * 4);
  copy_state_to_replicas();

  const int64_t total_steps = o_.max_steps > 0
                                  ? std::min(o_.max_steps, steps_per_epoch_ * o_.epochs)
                                  : steps_per_epoch_ * o_.epochs;
  log_->say("alexnet-train: " + spec_.arch + ", " + std::to_string(spec_.num_trainable) +
            " parameters; " + std::to_string(world) + " rank(s) x batch " +
            std::to_string(o_.batch_size) + " on the " + backend_->name() + " backend" +
            (backend_->host_memory()
                 ? ", " + std::to_string(compute_threads(o_, comm_)) + " thread(s) each; "
                 : " (" + std::to_string(gpus) + " GPU(s) each, " + o_.precision +
                       (o_.precision == "fp32" && o_.tf32 ? " with TF32" : "") + "); ") +
            std::to_string(train_set_->size()) + " training images, " +
            std::to_string(steps_per_epoch_) + " steps an epoch, " + std::to_string(total_steps) +
            " steps in all; gradients in " + o_.wire + (o_.overlap ? ", overlapped" : "") +
            (augment_on_device() ? "; augmentation on the GPU" : "") + "; run folder " +
            o_.run_dir);

  watchdog_ = std::make_unique<comm::Watchdog>(o_.comm_timeout_s, rank, kExitPeerLost,
                                               [this] { comm_.abort(kExitPeerLost); });
  TrainStepConfig tc;
  tc.bucket_mb = o_.bucket_mb;
  tc.wire = comm::parse_wire_type(o_.wire);
  tc.overlap = o_.overlap;
  tc.clip_grad_norm = o_.clip_grad_norm;
  tc.loss_scaling = parse_precision(o_.precision) == Precision::kFloat16;
  // The gradients' communicator: NCCL over the GPUs' memory, or MPI over host memory.
  comm::Communicator* gradient_comm = &comm_;
#ifdef ALEXNET_WITH_CUDA
  std::unique_ptr<comm::NcclCommunicator> nccl;
  std::unique_ptr<MultiGpuStep> multi_gpu;
  // One GPU in the whole job: nothing to average (MPI's one-rank all-reduce returns at once,
  // without touching the gradients), so no NCCL communicator and no per-bucket synchronization.
  if (o_.backend == "cuda" && gpu_assignment_.nccl_size > 1) {
    std::vector<cudaStream_t> streams = {cuda::backend_stream(*backend_)};
    for (auto& b : extra_backends_) streams.push_back(cuda::backend_stream(*b));
    comm::NcclOptions no;
    no.timeout_seconds = o_.comm_timeout_s;
    no.init_timeout_seconds = o_.comm_timeout_s;
    no.reserve_floats =
        tc.wire == comm::WireType::kFloat32 ? 0 : static_cast<size_t>(spec_.param_floats);
    nccl = std::make_unique<comm::NcclCommunicator>(comm_, gpu_assignment_, streams, no);
    gradient_comm = nccl.get();
    if (gpus > 1) {
      std::vector<Replica> replicas = {{backend_.get(), model_.get(), optimizer_.get()}};
      for (size_t g = 0; g < extra_backends_.size(); ++g) {
        replicas.push_back(
            {extra_backends_[g].get(), extra_models_[g].get(), extra_optimizers_[g].get()});
      }
      multi_gpu = std::make_unique<MultiGpuStep>(std::move(replicas), *nccl, tc);
    }
    cuda::make_current(*backend_);
  }
#endif
  if (gradient_comm == &comm_) comm_.reserve(static_cast<size_t>(spec_.param_floats), tc.wire);
  TrainStep step_runner(*model_, *optimizer_, *gradient_comm, tc);
  LossScaler* scaler = &step_runner.loss_scaler();
#ifdef ALEXNET_WITH_CUDA
  if (multi_gpu) scaler = &multi_gpu->loss_scaler();
#endif
  // fp16: the scale continues where the checkpoint left it (every rank has the same position).
  if (tc.loss_scaling && position_.loss_scale > 0) {
    scaler->restore(position_.loss_scale, position_.loss_scale_good_steps);
  }
  install_signal_handlers();

  if (position_.step >= total_steps || position_.epoch >= o_.epochs) {
    log_->say("nothing left to train: step " + std::to_string(position_.step) + " of " +
              std::to_string(total_steps));
  }
  auto labels = backend_->allocate(static_cast<size_t>(o_.batch_size) * sizeof(int32_t));
  auto input = backend_->allocate(static_cast<size_t>(model_->input_elements()) * sizeof(float));
  std::unique_ptr<io::Loader> loader;
  if (position_.step < total_steps && position_.epoch < o_.epochs) {
    loader = std::make_unique<io::Loader>(
        *train_set_, train_loader_config(position_.epoch, position_.step_in_epoch));
  }
#ifdef ALEXNET_WITH_CUDA
  std::unique_ptr<cuda::DeviceAugmenter> augmenter;
  if (augment_on_device()) {
    const io::LoaderConfig lc = train_loader_config(0, 0);
    augmenter = std::make_unique<cuda::DeviceAugmenter>(*backend_, lc.augment, m.height, m.width,
                                                        m.channels, o_.batch_size, o_.seed);
  }
#endif
  // One step, chosen once: the one-device step (the batch into device memory, augmented there or
  // on the host), or the replicas' step of several GPUs per rank, which takes host batches.
  std::function<LossResult(const io::Batch&, const DropoutKey&, double)> train_one_step =
      [&](const io::Batch& batch, const DropoutKey& key, double lr) {
#ifdef ALEXNET_WITH_CUDA
        if (augmenter) augmenter->run(batch, static_cast<float*>(input.get()));
#endif
        if (batch.images != nullptr) {
          backend_->copy_to_device(input.get(), batch.images,
                                   static_cast<size_t>(model_->input_elements()) * sizeof(float));
        }
        backend_->copy_to_device(labels.get(), batch.labels, static_cast<size_t>(batch.size) * 4);
        return step_runner.run(static_cast<const float*>(input.get()),
                               static_cast<const int32_t*>(labels.get()), key, lr);
      };
  const StepTimes* step_times = &step_runner.step_times();
#ifdef ALEXNET_WITH_CUDA
  if (multi_gpu) {
    train_one_step = [&](const io::Batch& batch, const DropoutKey& key, double lr) {
      return multi_gpu->run(batch.images, batch.labels, key, lr);
    };
    step_times = &multi_gpu->step_times();
  }
#endif

  double sums[3] = {0, 0, 0};         // this rank's loss * samples, top-1 hits, samples
  double times[5] = {0, 0, 0, 0, 0};  // forward, backward, comm wait, optimizer, data wait
  Profiler profiler(o_.profile_steps > 0 ? 4096 * static_cast<size_t>(o_.profile_steps) : 0);
  const int64_t first_step = position_.step;
  if (o_.profile_steps > 0) step_runner.set_profiler(&profiler);
  auto window_start = Clock::now();
  int64_t window_steps = 0;
  auto checkpoint_clock = Clock::now();
  bool checkpoint_current = !last_checkpoint_.empty();
  watchdog_->beat("training");
  while (loader) {
    if (position_.step >= total_steps) break;
    const int64_t run_step = position_.step - first_step;
    profiler.set_enabled(o_.profile_steps > 0 && run_step >= o_.profile_start &&
                         run_step < o_.profile_start + o_.profile_steps);
    const auto data_start = Clock::now();
    const io::Batch* b = loader->next();
    const auto data_end = Clock::now();
    if (b == nullptr) break;
    profiler.record("data wait", "data", 0, data_start, data_end);
    times[4] += std::chrono::duration<double>(data_end - data_start).count();
    DropoutKey key;
    key.seed = o_.seed;
    key.step = static_cast<uint64_t>(position_.step);
    key.rank = static_cast<uint32_t>(rank);
    const double lr = schedule_->lr_at(position_.step);
    const LossResult r = train_one_step(*b, key, lr);
    ++position_.step;
    ++window_steps;
    checkpoint_current = false;
    const StepTimes& st = *step_times;
    if (tc.loss_scaling) {  // for the next checkpoint
      position_.loss_scale = scaler->scale();
      position_.loss_scale_good_steps = scaler->good_steps();
    }
    times[0] += st.forward;
    times[1] += st.backward;
    times[2] += st.comm_wait;
    times[3] += st.optimizer;
    if (o_.profile_steps > 0 && run_step + 1 == o_.profile_start + o_.profile_steps) {
      write_profile(profiler);
    }
    sums[0] += r.loss * static_cast<double>(b->size);
    sums[1] += static_cast<double>(r.top1);
    sums[2] += static_cast<double>(b->size);
    watchdog_->beat("training");
    const bool epoch_end = b->step + 1 == b->steps_in_epoch;
    const int64_t next_epoch = epoch_end ? b->epoch + 1 : b->epoch;
    const int64_t next_step_in_epoch = epoch_end ? 0 : b->step + 1;

    // What every rank must agree on before the next step: a stop signal, a diverged loss,
    // rank 0's checkpoint clock.
    const bool minutes_due =
        rank == 0 && o_.checkpoint_every_minutes > 0 &&
        std::chrono::duration<double>(Clock::now() - checkpoint_clock).count() >=
            60 * o_.checkpoint_every_minutes;
    double flags[3] = {stop_signal.load() != 0 ? 1.0 : 0.0, std::isfinite(r.loss) ? 0.0 : 1.0,
                       minutes_due ? 1.0 : 0.0};
    if (world > 1) comm_.all_reduce(flags, 3, comm::ReduceOp::kSum);
    if (flags[1] > 0) {
      throw CollectiveError(
          "the loss became " + std::to_string(r.loss) + " on " +
              std::to_string(static_cast<int>(flags[1])) + " rank(s) at step " +
              std::to_string(position_.step) + "; stopping (lower optim.lr?)" +
              (last_checkpoint_.empty() ? std::string()
                                        : "; the last good checkpoint is " + last_checkpoint_),
          kExitDiverged);
    }
    if (o_.log_every > 0 && position_.step % o_.log_every == 0) {
      double totals[8] = {sums[0],  sums[1],  sums[2],  times[0],
                          times[1], times[2], times[3], times[4]};
      comm_.all_reduce(totals, 8, comm::ReduceOp::kSum);
      const double seconds = std::chrono::duration<double>(Clock::now() - window_start).count();
      TrainRecord rec;
      rec.epoch = b->epoch;
      rec.step = position_.step;
      rec.step_in_epoch = b->step + 1;
      rec.steps_per_epoch = steps_per_epoch_;
      rec.total_steps = total_steps;
      rec.loss = totals[0] / totals[2];
      rec.top1 = totals[1] / totals[2];
      rec.lr = lr;
      rec.images_per_sec = totals[2] / seconds;
      rec.world_size = world;
      rec.eta_seconds = seconds / static_cast<double>(window_steps) *
                        static_cast<double>(total_steps - position_.step);
      const double per_step = 1.0 / (world * static_cast<double>(window_steps));
      rec.forward_seconds = totals[3] * per_step;
      rec.backward_seconds = totals[4] * per_step;
      rec.comm_wait_seconds = totals[5] * per_step;
      rec.optimizer_seconds = totals[6] * per_step;
      rec.data_wait_seconds = totals[7] * per_step;
      log_->train(rec);
      sums[0] = sums[1] = sums[2] = 0;
      for (double& x : times) x = 0;
      window_steps = 0;
      window_start = Clock::now();
    }
    if (flags[0] > 0) {
      write_checkpoint(next_epoch, next_step_in_epoch);
      log_->say("stopped by a signal at step " + std::to_string(position_.step) +
                "; resume with --resume latest");
      return kExitStopped;
    }
    if ((o_.checkpoint_every_steps > 0 && position_.step % o_.checkpoint_every_steps == 0) ||
        flags[2] > 0) {
      write_checkpoint(next_epoch, next_step_in_epoch);
      checkpoint_current = true;
      checkpoint_clock = Clock::now();
    }
    if (val_set_ && ((o_.val_every > 0 && position_.step % o_.val_every == 0) || epoch_end)) {
      const EvalResult v = validate(b->epoch);
      schedule_->report(1.0 - v.top1);  // only the plateau schedule listens
      watchdog_->beat("training");
      window_start = Clock::now();  // the img/s of the next progress line is training's alone
      window_steps = 0;
      sums[0] = sums[1] = sums[2] = 0;
      for (double& x : times) x = 0;
    }
    position_.epoch = next_epoch;
    position_.step_in_epoch = next_step_in_epoch;
  }

  if (!checkpoint_current) write_checkpoint(position_.epoch, position_.step_in_epoch);
  if (rank == 0) {
    backend_->copy_to_host(params_.data(), model_->params(), params_.size() * 4);
    backend_->copy_to_host(buffers_.data(), model_->buffers(),
                           static_cast<size_t>(spec_.buffer_floats) * 4);
    const std::string path = o_.run_dir + "/weights.h5";
    save_weights(path, spec_, params_, buffers_, config_);
    log_->say("alexnet-train: done after " + std::to_string(position_.step) +
              " steps; weights written to " + path);
  }
  comm_.barrier();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Keep freed memory in the process (no mmap for large blocks, no trimming): fresh pages cost
  // 20-50x the bandwidth on these VMs, and MPI and the loader allocate and free large buffers.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  TrainOptions o;
  // Before MPI: the shared frame's statuses; -1 goes on to the job.
  const int early = io::run_cli("alexnet-train", [&] {
    if (!parse_train_options(argc, argv, o)) return 0;
    if (o.version) {
      std::cout << "alexnet-train " << ALEXNET_BUILD_ID << "\n";
      return 0;
    }
    if (o.print_config) {
      std::cout << config_text(o);
      return 0;
    }
    if (o.summary) {
      // With a dataset: its classes and channels; without: ImageNet's 1000 and RGB.
      ModelSpec spec = build_model(o.arch, 1000, 3);
      if (!o.train_files.empty()) spec = model_for(o, io::Dataset::open(o.train_files));
      std::cout << summary_table(spec);
      return 0;
    }
    return -1;
  });
  if (early >= 0) return early;

  std::unique_ptr<comm::MpiSession> mpi;
  std::unique_ptr<comm::MpiCommunicator> comm;
  try {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    comm = std::make_unique<comm::MpiCommunicator>();
  } catch (const std::exception& e) {
    std::cerr << "alexnet-train: error: " << e.what() << "\n";
    return kExitFailure;
  }
  const int rank = comm->rank(), world = comm->size();
  const std::string who =
      world > 1 ? "alexnet-train: rank " + std::to_string(rank) + ": " : "alexnet-train: ";
  // io/cli.h's mapping, with the peers aborted: a rank that fails alone would leave them waiting.
  auto fail = [&](const std::string& kind, const char* what, int status) {
    std::cerr << who << kind << ": " << what << "\n";
    if (world > 1) comm->abort(status);
    return status;
  };
  int code = 0;
  try {
    code = Job(o, *comm).run();
  } catch (const CollectiveError& e) {
    if (rank == 0) std::cerr << "alexnet-train: error: " << e.what() << "\n";
    code = e.code;
  } catch (const comm::PeerLost& e) {  // NCCL: a peer failed or stopped answering
    code = fail("error", e.what(), kExitPeerLost);
  } catch (const io::DataError& e) {
    code = fail("error", e.what(), kExitBadInput);
  } catch (const OptionError& e) {
    code = fail("bad option", e.what(), kExitBadInput);
  } catch (const std::bad_alloc&) {
    code = fail("internal error", "out of memory", kExitFailure);
  } catch (const std::exception& e) {  // std::invalid_argument of a broken precondition too
    code = fail("internal error", e.what(), kExitFailure);
  }
  comm.reset();
  mpi.reset();
  return code;
}
