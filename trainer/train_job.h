// The data-parallel training job of alexnet-train, one per rank: opens the data and the model,
// resumes or initializes the state, builds the step, and runs the loop of steps with its
// progress lines, checkpoints, validation and profile. main() (trainer/alexnet_train.cc) maps
// what it returns and throws to the exit statuses.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "comm/gpu_assignment.h"
#include "comm/heartbeat.h"
#include "comm/mpi_communicator.h"
#include "comm/watchdog.h"
#include "io/dataset.h"
#include "io/loader.h"
#include "trainer/evaluate.h"
#include "trainer/model_spec.h"
#include "trainer/profiler.h"
#include "trainer/run_log.h"
#include "trainer/step.h"
#include "trainer/train_options.h"
#include "trainer/train_state.h"

namespace alexnet::trainer {

// A problem every rank detects the same way at the same point (so no rank is left waiting):
// rank 0 reports it, all ranks exit with `status` without aborting the others.
class CollectiveError : public std::runtime_error {
 public:
  CollectiveError(const std::string& what, int exit_status)
      : std::runtime_error(what), status(exit_status) {}
  int status;
};

// The model for the training data; images the arch cannot take (too small for its kernels and
// pools) are the data's fault (io::DataError naming its first file).
ModelSpec model_for(const TrainOptions& options, const io::Dataset& data);

class TrainJob {
 public:
  // Both must outlive the job; every rank of `comm` runs one.
  TrainJob(const TrainOptions& options, comm::MpiCommunicator& comm);
  ~TrainJob();

  // The whole job; returns its exit status (io/cli.h: done, or stopped by a signal after its
  // checkpoint). Throws io::DataError / io::OptionError for bad input, CollectiveError,
  // comm::PeerLost, std::exception for the rest.
  int run();

 private:
  using Clock = std::chrono::steady_clock;

  void open_data();
  void make_state();
  void open_run_dir();
  void start_heartbeat();
  void resume_or_initialize();
  void say_what_runs();
  StepSetup step_setup() const;
  int train();  // the loop: kExitOk at its end, kExitStopped on a signal
  // Counts of ranks, summed over them: fields of doubles for one all-reduce.
  struct StepAgreement {
    double stop_requested = 0;  // got SIGTERM or SIGUSR1
    double diverged = 0;        // the loss is NaN or Inf
    double checkpoint_due = 0;  // rank 0: checkpoint.every_minutes have passed
  };
  StepAgreement agree_after_step(double loss);
  TrainRecord progress_record(const io::Batch& b, double lr) const;
  void write_checkpoint(int64_t epoch, int64_t step_in_epoch);
  EvalResult validate(int64_t epoch);
  void write_profile(const Profiler& profiler);
  void finish();

  const TrainOptions& o_;
  comm::MpiCommunicator& comm_;
  const TrainStepConfig step_config_;  // the options' (trainer/train_config.h)
  std::string config_;                 // the merged configuration text (config_text)
  std::unique_ptr<io::Dataset> train_set_, val_set_;
  ModelSpec spec_;
  comm::GpuAssignment gpus_;  // backend cuda
  std::unique_ptr<TrainState> state_;
  std::unique_ptr<RunLog> log_;
  std::unique_ptr<comm::Heartbeat> heartbeat_;  // null on one rank or comm.heartbeat_s 0
  std::unique_ptr<comm::Watchdog> watchdog_;
  std::unique_ptr<Step> step_;
  int64_t steps_per_epoch_ = 0, total_steps_ = 0;
  std::string last_checkpoint_;
  bool checkpoint_current_ = false;  // the last checkpoint is of the current step
  Clock::time_point checkpoint_clock_;
  // Rank 0: the step this run started from (-1: fresh) until its first checkpoint, which first
  // sets aside the folder's later ones (damaged, or an abandoned branch); then -2.
  int64_t set_aside_after_ = -2;
};

}  // namespace alexnet::trainer
