// TrainJob: alexnet-train's job on one rank.
#include "trainer/train_job.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "io/augment.h"
#include "io/cli.h"
#include "io/error.h"
#include "io/sampler.h"
#include "trainer/backend.h"
#include "trainer/checkpoint.h"
#include "trainer/progress_window.h"
#include "trainer/train_config.h"

namespace alexnet::trainer {
namespace {

using io::kExitBadInput;
using io::kExitDiverged;
using io::kExitOk;
using io::kExitPeerLost;
using io::kExitStopped;
using io::OptionError;
using Clock = std::chrono::steady_clock;

std::atomic<int> stop_signal{0};
// The running job's heartbeat, for the signal handler (null when there is none).
std::atomic<comm::Heartbeat*> signalled_heartbeat{nullptr};
// Open MPI's daemon tears a job down with SIGCONT, SIGTERM 1 s later, SIGKILL 1 s after that;
// after a lost host that starts within milliseconds (measured: 15 ms). A beat at each signal
// lets this rank name the host (its kernel refuses the beat at once) while its output still
// reaches mpirun, rather than at the next interval.
void probe_peers() {
  if (comm::Heartbeat* beat = signalled_heartbeat.load()) beat->probe_now();
}
extern "C" void on_stop_signal(int signal) {
  stop_signal.store(signal);
  probe_peers();
}
extern "C" void on_continue_signal(int) { probe_peers(); }

void install_signal_handlers() {
  struct sigaction action {};
  sigemptyset(&action.sa_mask);
  for (int s : {SIGTERM, SIGUSR1, SIGCONT}) {
    action.sa_handler = s == SIGCONT ? on_continue_signal : on_stop_signal;
    if (sigaction(s, &action, nullptr) != 0) {
      throw std::runtime_error(std::string("sigaction failed: ") + std::strerror(errno));
    }
  }
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
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

// Training batch norm needs two values per channel (op_shapes.h): a batch the option chose.
void check_batch_norm_batch(const TrainOptions& o, const ModelSpec& spec) {
  for (const LayerSpec& l : spec.layers) {
    if (l.kind != LayerKind::kBatchNorm) continue;
    int64_t spatial = 1;
    for (size_t i = 1; i < l.in_shape.size(); ++i) spatial *= l.in_shape[i];
    if (o.batch_size / o.gpus_per_rank * spatial < 2) {
      throw OptionError("train.batch_size " + std::to_string(o.batch_size) + ": " + spec.arch +
                        "'s batch norm " + l.name + " sees one value per channel (" +
                        std::to_string(spatial) + " position(s) an image" +
                        (o.gpus_per_rank > 1 ? ", per GPU" : "") + "); train with a larger batch");
    }
  }
}

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

// Ends the job from a thread other than the main one (which may be blocked in MPI behind the
// lost peer): MPI_Abort on a thread of its own after `abort_delay_s`, and if that has not ended
// this process `exit_grace_s` later (mpirun cannot reach a lost node's daemon), `last_line` and
// _exit(status). Only the first call does anything.
void end_job_from_thread(comm::Communicator& comm, int status, std::string last_line,
                         double abort_delay_s, double exit_grace_s) {
  static std::atomic<bool> ending{false};
  if (ending.exchange(true)) return;
  std::thread([&comm, status, abort_delay_s] {
    std::this_thread::sleep_for(std::chrono::duration<double>(abort_delay_s));
    comm.abort(status);
  }).detach();
  std::thread([status, line = std::move(last_line), wait = abort_delay_s + exit_grace_s] {
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
    _exit(status);
  }).detach();
}

// A peer lost on another host: the launcher's time to end the job before this rank aborts it.
// Longer than the out-of-band keepalive the launchers set (launch/alexnet-mpirun: 5 s idle, then
// 3 probes 2 s apart), so that mpirun notices the lost daemon and ends the job itself. An earlier
// MPI_Abort makes mpirun send to that daemon, and a TCP connection with unacknowledged data gets
// no keepalive probes, only retransmissions for ~15 minutes: mpirun would hang (measured on
// emulated hosts: still running 60 s after a cut link, against 7-10 s with this wait).
constexpr double kLauncherGraceSeconds = 15;

std::string this_host() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

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

TrainJob::TrainJob(const TrainOptions& o, comm::MpiCommunicator& comm)
    : o_(o), comm_(comm), step_config_(step_config(o)) {}

// An orderly end, or an error this rank reports itself: its peers are told (a goodbye
// datagram), so that its closing heartbeat port does not read to them as a dead process.
TrainJob::~TrainJob() {
  signalled_heartbeat.store(nullptr);
  if (heartbeat_) heartbeat_->leave();
}

int TrainJob::run() {
  config_ = config_text(o_);
  check_same_config(comm_, config_);
  // comm.algorithm: every rank sees the same nodes, so all refuse uneven ones alike.
  try {
    comm_.set_algorithm(comm::parse_all_reduce_algorithm(o_.comm_algorithm));
  } catch (const std::invalid_argument& e) {
    throw CollectiveError(e.what(), kExitBadInput);
  }
  omp_set_num_threads(compute_threads(o_, comm_));
  open_data();
  make_state();
  open_run_dir();
  start_heartbeat();
  resume_or_initialize();
  state_->to_devices();
  say_what_runs();
  watchdog_ = std::make_unique<comm::Watchdog>(o_.comm_timeout_s, comm_.rank(), kExitPeerLost,
                                               [this] { comm_.abort(kExitPeerLost); });
  step_ = make_step(*state_, comm_, step_setup());
  const CheckpointPosition& at = state_->position();
  // fp16: the scale continues where the checkpoint left it (every rank has the same position).
  if (step_config_.loss_scaling && at.loss_scale > 0) {
    step_->loss_scaler().restore(at.loss_scale, at.loss_scale_good_steps);
  }
  install_signal_handlers();
  const int status = train();
  if (status == kExitOk) finish();
  return status;
}

// Both datasets against the model before anything is allocated for it.
void TrainJob::open_data() {
  if (o_.train_files.empty()) throw io::DataError("no training data: set data.train");
  train_set_ = std::make_unique<io::Dataset>(io::Dataset::open(o_.train_files));
  if (!o_.val_files.empty()) {
    val_set_ = std::make_unique<io::Dataset>(io::Dataset::open(o_.val_files));
  }
  const io::DatasetMeta& m = train_set_->meta();
  spec_ = model_for(o_, *train_set_);
  // Before the backend exists, the layout does not matter.
  check_dataset(*train_set_, "data.train", spec_,
                train_loader_config(o_, m, spec_, ActivationLayout::kNCHW, 0, 1, 0, 0).augment, m);
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
  check_batch_norm_batch(o_, spec_);
}

// The backends (one per GPU with --gpus-per-rank; on the cuda backend local rank r drives the
// visible devices r*G ... r*G+G-1, comm/gpu_assignment.h), the replicas and the schedule.
void TrainJob::make_state() {
  BackendOptions options = backend_options(o_);
  if (o_.backend == "cuda") {
    // Too few GPUs for gpus-per-rank, or no CUDA in this build: the options' fault.
    try {
      gpus_ = comm::assign_gpus(comm_.rank(), comm_.size(), comm_.local_rank(), comm_.local_size(),
                                o_.gpus_per_rank, cuda_device_count(), this_host());
    } catch (const std::invalid_argument& e) {
      throw OptionError(std::string("backend cuda: ") + e.what());
    }
  }
  std::vector<std::unique_ptr<Backend>> backends;
  const size_t devices = std::max<size_t>(1, gpus_.devices.size());
  for (size_t g = 0; g < devices; ++g) {
    if (!gpus_.devices.empty()) options.device = gpus_.devices[g];
    try {
      backends.push_back(make_backend(o_.backend, options));
    } catch (const std::invalid_argument& e) {
      throw OptionError(e.what());
    }
  }
  steps_per_epoch_ =
      io::samples_for_rank(train_set_->size(), /*shuffle=*/true, comm_.rank(), comm_.size()) /
      o_.batch_size;
  if (steps_per_epoch_ == 0) {
    throw io::DataError("each of " + std::to_string(comm_.size()) +
                        " ranks gets fewer samples than one batch of " +
                        std::to_string(o_.batch_size));
  }
  total_steps_ = total_steps(o_, steps_per_epoch_);
  std::unique_ptr<LrSchedule> schedule;
  try {  // the run's length is known now (cosine: more steps than warm-up)
    schedule = std::make_unique<LrSchedule>(schedule_config(o_, steps_per_epoch_));
  } catch (const std::invalid_argument& e) {
    throw OptionError("optim.schedule " + o_.schedule + ": " + e.what());
  }
  ReplicaConfig replica;
  replica.batch = o_.batch_size / o_.gpus_per_rank;
  replica.label_smoothing = o_.label_smoothing;
  replica.dropout = o_.dropout;
  replica.optimizer = optimizer_config(o_);
  state_ = std::make_unique<TrainState>(spec_, std::move(backends), replica, std::move(schedule));
}

void TrainJob::open_run_dir() {
  if (comm_.rank() == 0) {
    std::error_code ec;  // a file in the way, no permission: the option's fault
    std::filesystem::create_directories(o_.run_dir + "/checkpoints", ec);
    if (ec) throw OptionError("run.dir '" + o_.run_dir + "': cannot create it: " + ec.message());
  }
  comm_.barrier();  // the run directory exists before anyone uses it
  log_ = std::make_unique<RunLog>(o_.run_dir, comm_.rank() == 0);
  if (!gpus_.devices.empty()) {
    log_->say(comm::describe_gpu_assignment(gpus_, std::getenv("CUDA_VISIBLE_DEVICES")));
  }
}

// Every rank, collectively: UDP heartbeats to the ring neighbours on a thread of their own
// (comm/heartbeat.h). A neighbour silent for heartbeat_s x misses is a lost node, or one behind a
// cut link: MPI would wait for it up to comm.timeout_s (or forever), so the job ends now, with
// status 5 and a line naming the rank and host.
void TrainJob::start_heartbeat() {
  const int rank = comm_.rank();
  const comm::HeartbeatOptions options{o_.comm_heartbeat_s, o_.comm_heartbeat_misses};
  const std::string who = "alexnet-train: rank " + std::to_string(rank) + ": ";
  comm::Communicator& comm = comm_;
  heartbeat_ = comm::start_heartbeat(
      comm_, options,
      [&comm, who, options, self = this_host(), log = log_.get()](const comm::PeerLoss& loss) {
        // A peer on this host leaves its daemon reachable: abort at once; on another host, let
        // the launcher end the job first (kLauncherGraceSeconds).
        const double delay = loss.host == self ? 0 : kLauncherGraceSeconds;
        char why[160];
        if (loss.process_gone) {
          std::snprintf(why, sizeof why,
                        "is gone (its host refuses heartbeats: the process died or was killed)");
        } else {
          std::snprintf(why, sizeof why,
                        "sent no heartbeat for %.1f s (comm.heartbeat_s %g x %d): that node is "
                        "down or unreachable",
                        loss.seconds_silent, options.interval_s, options.misses);
        }
        char line[512];
        std::snprintf(line, sizeof line, "%srank %d on host %s %s; ending the job%s", who.c_str(),
                      loss.rank, loss.host.c_str(), why,
                      delay > 0 ? " (the launcher first, for 15 s)" : "");
        std::fprintf(stderr, "%s\n", line);
        std::fflush(stderr);
        log->peer_lost(loss.rank, loss.host, loss.process_gone, loss.seconds_silent);
        end_job_from_thread(comm, kExitPeerLost,
                            who + "lost host " + loss.host + "; exiting with status " +
                                std::to_string(kExitPeerLost),
                            delay, 3);
      },
      [&comm, who](const std::string& message) {
        // The peers would take this rank's silence for a lost node: say what it is, and end.
        std::fprintf(stderr, "%serror: heartbeat stopped: %s; ending the job\n", who.c_str(),
                     message.c_str());
        std::fflush(stderr);
        end_job_from_thread(comm, io::kExitFailure,
                            who + "exiting with status " + std::to_string(io::kExitFailure), 0, 3);
      },
      [who](int peer, const std::string& host, double seconds) {
        std::fprintf(stderr,
                     "%swarning: no heartbeat ever arrived from rank %d on host %s in %.0f s: is "
                     "UDP blocked between the hosts? That peer goes unwatched by the heartbeat "
                     "(comm.timeout_s still applies)\n",
                     who.c_str(), peer, host.c_str(), seconds);
        std::fflush(stderr);
      });
  signalled_heartbeat.store(heartbeat_.get());
}

// Rank 0 initializes the weights or loads the checkpoint; the broadcast gives every rank the
// same state.
void TrainJob::resume_or_initialize() {
  CheckpointPosition& at = state_->position();
  at = {};
  at.world_size = comm_.size();
  at.batch_size = o_.batch_size;
  at.seed = o_.seed;
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
      state_->load(path, train_set_->size());
      last_checkpoint_ = path;
      loaded = 1;
      // A requeued job re-reads its config file: say what differs from the checkpoint's run.
      const std::string changes = changed_settings(checkpoint_config(path), config_);
      if (!changes.empty()) {
        log_->say("warning: resuming with settings that differ from the checkpoint's: " + changes);
      }
      log_->say("resumed from " + path + " at step " + std::to_string(at.step) + " (epoch " +
                std::to_string(at.epoch) + ", step " + std::to_string(at.step_in_epoch) +
                " of it)");
    } else {
      state_->initialize(o_.seed);
      if (!o_.init_from.empty()) {  // weights in: fine-tuning (fresh only where init.skip says)
        try {
          log_->say(state_->init_from(o_.init_from, o_.init_skip));
        } catch (const std::invalid_argument& e) {  // an init.skip pattern that matches nothing
          throw OptionError(e.what());
        }
      }
    }
  }
  comm_.broadcast(&loaded, sizeof loaded, 0);
  state_->broadcast(comm_, 0);
  checkpoint_current_ = loaded != 0;
  set_aside_after_ = loaded != 0 ? at.step : -1;
  if (!loaded) return;
  if (at.seed != o_.seed) {
    throw CollectiveError("the checkpoint was made with seed " + std::to_string(at.seed) +
                              ", this run has seed " + std::to_string(o_.seed),
                          kExitBadInput);
  }
  // Another world size or batch: the same epoch, at the same fraction of it; each rank's shard
  // is different from here on, so the data order (not the samples per epoch) changes.
  const CheckpointPosition next =
      continued_position(at, comm_.size(), o_.batch_size, steps_per_epoch_);
  if (next.world_size != at.world_size || next.batch_size != at.batch_size) {
    log_->say("resuming a run of " + std::to_string(at.world_size) + " rank(s) x batch " +
              std::to_string(at.batch_size) + " on " + std::to_string(comm_.size()) + " x " +
              std::to_string(o_.batch_size) +
              ": the data order changes from here (same epoch, step " +
              std::to_string(next.step_in_epoch) + " of it)");
  }
  at = next;
}

void TrainJob::say_what_runs() {
  const Backend& backend = state_->backend();
  log_->say("alexnet-train: " + spec_.arch + ", " + std::to_string(spec_.num_trainable) +
            " parameters; " + std::to_string(comm_.size()) + " rank(s) x batch " +
            std::to_string(o_.batch_size) + " on the " + backend.name() + " backend" +
            (backend.host_memory()
                 ? ", " + std::to_string(compute_threads(o_, comm_)) + " thread(s) each; "
                 : " (" + std::to_string(o_.gpus_per_rank) + " GPU(s) each, " + o_.precision +
                       (o_.precision == "fp32" && o_.tf32 ? " with TF32" : "") + "); ") +
            std::to_string(train_set_->size()) + " training images, " +
            std::to_string(steps_per_epoch_) + " steps an epoch, " + std::to_string(total_steps_) +
            " steps in all; gradients in " + o_.wire + (o_.overlap ? ", overlapped" : "") +
            (comm_.size() > 1 ? "; all-reduce: " + comm_.algorithm_description() : "") +
            (augment_on_device(o_) ? "; augmentation on the GPU" : "") + "; run folder " +
            o_.run_dir);
}

StepSetup TrainJob::step_setup() const {
  const io::DatasetMeta& m = train_set_->meta();
  StepSetup s;
  s.config = step_config_;
  s.gpus = gpus_;
  s.comm_timeout_s = o_.comm_timeout_s;
  s.augment_on_device = augment_on_device(o_);
  s.augment =
      train_loader_config(o_, m, spec_, state_->backend().activation_layout(), 0, 1, 0, 0).augment;
  s.height = m.height;
  s.width = m.width;
  s.channels = m.channels;
  s.batch_size = o_.batch_size;
  s.seed = o_.seed;
  return s;
}

int TrainJob::train() {
  CheckpointPosition& at = state_->position();
  if (at.step >= total_steps_ || at.epoch >= o_.epochs) {
    log_->say("nothing left to train: step " + std::to_string(at.step) + " of " +
              std::to_string(total_steps_));
    return kExitOk;
  }
  const int rank = comm_.rank();
  io::Loader loader(*train_set_, train_loader_config(o_, train_set_->meta(), spec_,
                                                     state_->backend().activation_layout(), rank,
                                                     comm_.size(), at.epoch, at.step_in_epoch));
  Profiler profiler(o_.profile_steps > 0 ? 4096 * static_cast<size_t>(o_.profile_steps) : 0);
  if (o_.profile_steps > 0) step_->set_profiler(&profiler);
  const int64_t first_step = at.step;
  ProgressWindow window;
  checkpoint_clock_ = Clock::now();
  watchdog_->beat("training");
  while (at.step < total_steps_) {
    const int64_t run_step = at.step - first_step;
    profiler.set_enabled(o_.profile_steps > 0 && run_step >= o_.profile_start &&
                         run_step < o_.profile_start + o_.profile_steps);
    const auto data_start = Clock::now();
    const io::Batch* b = loader.next();
    const auto data_end = Clock::now();
    if (b == nullptr) break;
    profiler.record("data wait", "data", 0, data_start, data_end);
    DropoutKey key;
    key.seed = o_.seed;
    key.step = static_cast<uint64_t>(at.step);
    key.rank = static_cast<uint32_t>(rank);
    const double lr = state_->schedule().lr_at(at.step);
    const LossResult r = step_->run(*b, key, lr);
    ++at.step;
    checkpoint_current_ = false;
    if (step_config_.loss_scaling) {  // for the next checkpoint
      at.loss_scale = step_->loss_scaler().scale();
      at.loss_scale_good_steps = step_->loss_scaler().good_steps();
    }
    window.add(r, b->size, step_->times(), seconds_between(data_start, data_end));
    if (o_.profile_steps > 0 && run_step + 1 == o_.profile_start + o_.profile_steps) {
      write_profile(profiler);
    }
    watchdog_->beat("training");
    const bool epoch_end = b->step + 1 == b->steps_in_epoch;
    const int64_t next_epoch = epoch_end ? b->epoch + 1 : b->epoch;
    const int64_t next_step_in_epoch = epoch_end ? 0 : b->step + 1;

    const StepAgreement agreed = agree_after_step(r.loss);
    if (agreed.diverged > 0) {
      throw CollectiveError(
          "the loss became " + std::to_string(r.loss) + " on " +
              std::to_string(static_cast<int>(agreed.diverged)) + " rank(s) at step " +
              std::to_string(at.step) + "; stopping (lower optim.lr?)" +
              (last_checkpoint_.empty() ? std::string()
                                        : "; the last good checkpoint is " + last_checkpoint_),
          kExitDiverged);
    }
    if (o_.log_every > 0 && at.step % o_.log_every == 0) {
      log_->train(window.close(comm_, progress_record(*b, lr)));
    }
    if (agreed.stop_requested > 0) {
      write_checkpoint(next_epoch, next_step_in_epoch);
      log_->say("stopped by a signal at step " + std::to_string(at.step) +
                "; resume with --resume latest");
      return kExitStopped;
    }
    if ((o_.checkpoint_every_steps > 0 && at.step % o_.checkpoint_every_steps == 0) ||
        agreed.checkpoint_due > 0) {
      write_checkpoint(next_epoch, next_step_in_epoch);
      checkpoint_clock_ = Clock::now();
    }
    if (val_set_ && ((o_.val_every > 0 && at.step % o_.val_every == 0) || epoch_end)) {
      const EvalResult v = validate(b->epoch);
      state_->schedule().report(1.0 - v.top1);  // only the plateau schedule listens
      watchdog_->beat("training");
      window.restart();  // the img/s of the next progress line is training's alone
    }
    at.epoch = next_epoch;
    at.step_in_epoch = next_step_in_epoch;
  }
  return kExitOk;
}

// What every rank must agree on after a step, before the next: a stop signal, a diverged loss,
// rank 0's checkpoint clock.
TrainJob::StepAgreement TrainJob::agree_after_step(double loss) {
  StepAgreement agreed;
  agreed.stop_requested = stop_signal.load() != 0 ? 1 : 0;
  agreed.diverged = std::isfinite(loss) ? 0 : 1;
  const bool minutes_due =
      comm_.rank() == 0 && o_.checkpoint_every_minutes > 0 &&
      seconds_between(checkpoint_clock_, Clock::now()) >= 60 * o_.checkpoint_every_minutes;
  agreed.checkpoint_due = minutes_due ? 1 : 0;
  if (comm_.size() > 1) all_reduce_sum(comm_, agreed);
  return agreed;
}

// Where the run is after batch `b`: the position fields of a progress line.
TrainRecord TrainJob::progress_record(const io::Batch& b, double lr) const {
  TrainRecord where;
  where.epoch = b.epoch;
  where.step = state_->position().step;
  where.step_in_epoch = b.step + 1;
  where.steps_per_epoch = steps_per_epoch_;
  where.total_steps = total_steps_;
  where.lr = lr;
  return where;
}

void TrainJob::write_checkpoint(int64_t epoch, int64_t step_in_epoch) {
  CheckpointPosition& at = state_->position();
  at.epoch = epoch;
  at.step_in_epoch = step_in_epoch;
  checkpoint_current_ = true;
  if (comm_.rank() != 0) return;
  const std::string dir = o_.run_dir + "/checkpoints";
  const std::string path = checkpoint_path(dir, at.step);
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
    const auto unfinished = remove_unfinished_checkpoints(dir);
    if (!unfinished.empty()) {
      std::string removed = "removed what an earlier writer left half-written (killed mid-write):";
      for (const std::string& f : unfinished) {
        removed.append(" ").append(std::filesystem::path(f).filename().string());
      }
      log_->say(removed);
    }
    set_aside_after_ = -2;
  }
  try {
    state_->save(path, config_);
  } catch (const std::exception& e) {
    throw std::runtime_error("checkpoint " + path + " not written: " + e.what() +
                             (last_checkpoint_.empty() ? std::string(" (no earlier checkpoint)")
                                                       : "; the previous checkpoint " +
                                                             last_checkpoint_ + " is intact"));
  }
  last_checkpoint_ = path;
  prune_checkpoints(dir, o_.checkpoint_keep, path);
  log_->say("checkpoint " + path + " written (step " + std::to_string(at.step) + ")");
}

// Every rank evaluates its share of the validation set with rank 0's batch-norm statistics;
// the sums are reduced so the result covers every sample once.
EvalResult TrainJob::validate(int64_t epoch) {
  state_->share_buffers(comm_, 0);
  Model& model = state_->model();
  io::LoaderConfig lc = eval_loader_config(model, *val_set_, state_->backend(), o_.data_workers);
  lc.rank = comm_.rank();
  lc.world = comm_.size();
  io::Loader loader(*val_set_, lc);
  const EvalResult mine =
      evaluate(model, state_->backend(), loader, nullptr, [&] { watchdog_->beat("validating"); });
  struct {
    double loss, top1, top5, samples;
  } sums = {mine.loss * static_cast<double>(mine.samples),
            mine.top1 * static_cast<double>(mine.samples),
            mine.top5 * static_cast<double>(mine.samples), static_cast<double>(mine.samples)};
  all_reduce_sum(comm_, sums);
  EvalResult total;
  total.samples = static_cast<int64_t>(sums.samples);
  if (sums.samples > 0) {
    total.loss = sums.loss / sums.samples;
    total.top1 = sums.top1 / sums.samples;
    total.top5 = sums.top5 / sums.samples;
  }
  log_->validation(epoch, state_->position().step, total);
  return total;
}

// Each rank writes run.dir/profile/rank-R.json; rank 0 then merges those it can see (all of them
// on a shared file system) into profile/trace.json.
void TrainJob::write_profile(const Profiler& profiler) {
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
    if (in) {
      traces.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  const std::string merged = (dir / "trace.json").string();
  write_text_file(merged, merge_traces(traces));
  log_->say("profile of " + std::to_string(o_.profile_steps) + " steps from " +
            std::to_string(traces.size()) + " rank(s) written to " + merged +
            " (chrome://tracing or https://ui.perfetto.dev)" +
            (profiler.dropped() > 0 ? "; " + std::to_string(profiler.dropped()) + " events dropped"
                                    : std::string()));
}

// The last checkpoint (unless the last step has one) and rank 0's weights file.
void TrainJob::finish() {
  const CheckpointPosition& at = state_->position();
  if (!checkpoint_current_) write_checkpoint(at.epoch, at.step_in_epoch);
  if (comm_.rank() == 0) {
    const std::string path = o_.run_dir + "/weights.h5";
    state_->save_weights(path, config_);
    log_->say("alexnet-train: done after " + std::to_string(at.step) +
              " steps; weights written to " + path);
  }
  comm_.barrier();
}

}  // namespace alexnet::trainer
