// Rank 0's record of a run, in the run directory: a progress line per interval on stdout,
// metrics.jsonl (one JSON object a line, appended across resumes), and TensorBoard scalars under
// tensorboard/. Other ranks hold a disabled RunLog that writes nothing.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "trainer/evaluate.h"
#include "trainer/tensorboard_writer.h"

namespace alexnet::trainer {

struct TrainRecord {
  int64_t epoch = 0, step = 0;  // step: optimizer steps taken, over the whole run
  int64_t step_in_epoch = 0, steps_per_epoch = 0, total_steps = 0;
  double loss = 0, top1 = 0, lr = 0;  // means over every rank's samples since the last record
  double images_per_sec = 0;          // all ranks together
  int world_size = 1;
  double eta_seconds = 0;
  // Seconds per step, mean over the ranks: forward and loss, backward, blocked on the gradient
  // all-reduce after backward, the optimizer, and waiting for the loader's next batch.
  double forward_seconds = 0, backward_seconds = 0, comm_wait_seconds = 0, optimizer_seconds = 0,
         data_wait_seconds = 0;
};

class RunLog {
 public:
  RunLog(const std::string& run_dir, bool enabled);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  void train(const TrainRecord& r);
  void validation(int64_t epoch, int64_t step, const EvalResult& r);
  // A line on stdout (rank 0 only), flushed.
  void say(const std::string& line);
  // {"event": "peer_lost", ...} in metrics.jsonl: the record of a lost peer that outlives the
  // launcher (which may end the job before the rank's stderr line reaches the user). Callable
  // from any thread (one fprintf: stdio locks the file for it).
  void peer_lost(int rank, const std::string& host, bool process_gone, double seconds_silent);

 private:
  bool enabled_;
  FILE* metrics_ = nullptr;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

}  // namespace alexnet::trainer
