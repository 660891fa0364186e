// The training checkpoint: everything a run needs to continue exactly where it stopped, in one
// HDF5 file written atomically by rank 0 (io/array_file.h: temporary file, fsync, rename;
// a CRC-32 over every array and every attribute, verified on load). Layout, readable with h5dump
// and h5py:
//   /model/<state_dict key>    parameters and buffers, PyTorch names and layouts (as the
//                              weights file); /model@arch, /model@num_classes
//   /optimizer/<state>         the optimizer's state arrays over the flat parameter buffer
//                              ("momentum", "velocity", "adam_m", "adam_v"); /optimizer@steps
//   /schedule@lr, @best, @num_bad_reports, @cooldown_counter, @reports   (plateau schedule)
//   /@step                     optimizer steps taken
//   /@epoch, /@step_in_epoch   the next batch's position in the data stream
//   /@world_size, /@batch_size the layout of that stream (ranks and per-rank batch)
//   /@seed                     every random stream is counter-based and keyed on it (data order
//                              and augmentation on (seed, epoch, sample), dropout on (seed, step,
//                              rank, layer)), so the seed and the position are the RNG state
//   /@config                   the merged configuration text
//   /@loss_scale, /@loss_scale_good_steps   fp16's dynamic loss scale and its count of good
//                              steps (trainer/loss_scaler.h); absent where there is no scaling
//   /@format, /@checksum_crc32 (io/array_file.h)
// Files are <run.dir>/checkpoints/step-<step, 9 digits>.h5.
//
// One line of checkpoints per folder. A job that started at step S (resumed from a checkpoint of
// step S; S = -1 when it started fresh), just before writing its first checkpoint, moves every
// step-*.h5 of the folder with a larger step into checkpoints/abandoned/: a damaged newer one
// skipped by --resume latest, or the branch left by --resume PATH to an older file. Those are
// never deleted (the job logs their names in one line; delete them by hand), so pruning only
// ever sees this line, and a later --resume latest cannot jump back onto the abandoned branch.
// A job refused or stopped before its first checkpoint moves nothing. Pruning keeps the
// checkpoint just written and the newest keep-1 older ones that verify; it never touches a
// newer one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/lr_schedule.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"

namespace alexnet::trainer {

struct CheckpointPosition {
  int64_t step = 0;           // optimizer steps taken
  int64_t epoch = 0;          // of the next batch
  int64_t step_in_epoch = 0;  // of the next batch
  int64_t world_size = 1;
  int64_t batch_size = 0;  // per rank
  uint64_t seed = 0;
  double loss_scale = 0;  // fp16's loss scaler; 0: none
  int64_t loss_scale_good_steps = 0;
};

std::string checkpoint_path(const std::string& dir, int64_t step);

// Host copies of the flat buffers; the optimizer and schedule as they are.
void save_checkpoint(const std::string& path, const ModelSpec& spec,
                     const std::vector<float>& params, const std::vector<float>& buffers,
                     Optimizer& optimizer, const LrSchedule& schedule,
                     const CheckpointPosition& position, const std::string& config);

// Restores into the given objects (sized for `spec` and this optimizer configuration). A damaged
// file, another arch, an optimizer state this configuration does not have, or a position or
// counter out of its range (check_position) throws io::DataError naming the file and the problem.
// `epoch_samples` (the training set's size; 0: unknown) bounds the position within the epoch.
CheckpointPosition load_checkpoint(const std::string& path, const ModelSpec& spec,
                                   std::vector<float>& params, std::vector<float>& buffers,
                                   Optimizer& optimizer, LrSchedule& schedule,
                                   int64_t epoch_samples = 0);

// The checks load_checkpoint makes of what a file says: 0 <= epoch <= step (an epoch takes a step
// at least), 1 <= world_size <= 2^24, 1 <= batch_size < 2^31, 0 <= step_in_epoch with
// step_in_epoch x world_size x batch_size below `epoch_samples` (where known), 0 <= optimizer
// steps <= step, 0 <= loss_scale_good_steps <= step and a finite loss scale, the schedule's
// counters >= 0 and its lr finite and >= 0, best not NaN. The first one out of range throws
// io::DataError "'PATH': attribute /@NAME = VALUE is out of range ...".
void check_position(const std::string& path, const CheckpointPosition& position,
                    int64_t optimizer_steps, const LrSchedule::State& schedule,
                    int64_t epoch_samples);

// The merged configuration text a checkpoint was written with (/@config).
std::string checkpoint_config(const std::string& path);

// The checkpoints in `dir` (step-<9 digits>.h5), oldest first (by step).
std::vector<std::string> list_checkpoints(const std::string& dir);

// The step in a checkpoint's file name; -1 when it is not such a name.
int64_t checkpoint_step(const std::string& path);

// Moves the checkpoints of `dir` with a step above `step` (all of them when step < 0) into
// `dir`/abandoned/, never over a file there (a name taken gets -1, -2, ... before .h5); returns
// their new paths, oldest first. For rank 0 of a job starting at `step`, before its first
// checkpoint. A failed move throws io::DataError naming the file.
std::vector<std::string> set_aside_checkpoints_after(const std::string& dir, int64_t step);

// Removes the half-written files (step-<step>.h5.tmp-<pid>) that a writer killed mid-write left
// in `dir` (a lost host, a kill -9); returns their paths. No checkpoint ever reads them. For
// rank 0 of a job, before its first checkpoint: one run writes into a folder at a time.
std::vector<std::string> remove_unfinished_checkpoints(const std::string& dir);

// The newest checkpoint in `dir` that opens and verifies; each damaged newer one is reported
// through `skipped` (path: reason). Empty when there is none.
std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped);

// After `just_written` (a checkpoint in `dir`): keeps it and the newest keep-1 older checkpoints
// that verify, and removes the other older ones, damaged ones included; checkpoints newer than
// `just_written` are left alone (set_aside_checkpoints_after moved any away). keep < 1 keeps all.
// Verifying reads the older files it keeps (keep-1 of them). Returns the paths removed.
std::vector<std::string> prune_checkpoints(const std::string& dir, int64_t keep,
                                           const std::string& just_written);

}  // namespace alexnet::trainer
