// The training checkpoint: everything a run needs to continue exactly where it stopped, in one
// HDF5 file written atomically by rank 0 (io/checkpoint_file.h: temporary file, fsync, rename;
// a CRC-32 over every array, verified on load). Layout, readable with h5dump and h5py:
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
//   /@format, /@checksum_crc32 (io/checkpoint_file.h)
// Files are <run.dir>/checkpoints/step-<step, 9 digits>.h5.
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
// file, another arch, or an optimizer state this configuration does not have throws
// io::DataError naming the file and the problem.
CheckpointPosition load_checkpoint(const std::string& path, const ModelSpec& spec,
                                   std::vector<float>& params, std::vector<float>& buffers,
                                   Optimizer& optimizer, LrSchedule& schedule);

// The merged configuration text a checkpoint was written with (/@config).
std::string checkpoint_config(const std::string& path);

// The checkpoints in `dir`, oldest first (by step).
std::vector<std::string> list_checkpoints(const std::string& dir);

// The newest checkpoint in `dir` that opens and verifies; each damaged newer one is reported
// through `skipped` (path: reason). Empty when there is none.
std::string latest_good_checkpoint(const std::string& dir, std::vector<std::string>* skipped);

// Removes all but the newest `keep` checkpoints (keep < 1: keeps all).
void prune_checkpoints(const std::string& dir, int64_t keep);

}  // namespace alexnet::trainer
