// What alexnet-train's options mean for each part of the job: the configurations of the
// optimizer, the schedule, the step, the backend and the loaders, the run's length, and what a
// resumed run changes of the settings its checkpoint was trained with. Pure functions of the
// options (trainer/train_options.h), so each is tested without a job.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "io/dataset.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/lr_schedule.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_options.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {

OptimizerConfig optimizer_config(const TrainOptions& options);
LrScheduleConfig schedule_config(const TrainOptions& options, int64_t steps_per_epoch);
TrainStepConfig step_config(const TrainOptions& options);
// The backend's precision and TF32 choice; the device is the caller's (comm/gpu_assignment.h).
BackendOptions backend_options(const TrainOptions& options);

// Optimizer steps in the whole run: train.epochs of them, or train.max_steps where fewer.
int64_t total_steps(const TrainOptions& options, int64_t steps_per_epoch);

// Training batches augmented by a kernel from the stored uint8 images (data.augment_on).
bool augment_on_device(const TrainOptions& options);

// The training loader of rank `rank` of `world`, from (start_epoch, start_step) on, cropping to
// the model's input in the backend's activation layout.
io::LoaderConfig train_loader_config(const TrainOptions& options, const io::DatasetMeta& data,
                                     const ModelSpec& spec, ActivationLayout layout, int rank,
                                     int world, int64_t start_epoch, int64_t start_step);

// "key = value" lines of a configuration text (config_text), keyed "section.key".
std::map<std::string, std::string> config_entries(const std::string& text);

// What `now` changes of `saved` (both config_text), "key old -> new, ..."; empty when nothing.
// The run's length, logging, checkpointing, profiling, the data workers and validation set are
// free to change: changing them is what resuming is for.
std::string changed_settings(const std::string& saved, const std::string& now);

}  // namespace alexnet::trainer
