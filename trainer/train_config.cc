// The options-to-configuration translation of alexnet-train (trainer/train_config.h).
#include "trainer/train_config.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "comm/communicator.h"
#include "trainer/backend_options.h"

namespace po = boost::program_options;

namespace alexnet::trainer {

OptimizerConfig optimizer_config(const TrainOptions& o) {
  OptimizerConfig oc;
  oc.name = o.optimizer;
  oc.momentum = o.momentum;
  oc.nesterov = o.nesterov;
  oc.momentum_rule = o.momentum_rule;
  oc.weight_decay = o.weight_decay;
  oc.beta1 = o.beta1;
  oc.beta2 = o.beta2;
  oc.trust_coefficient = o.trust_coefficient;
  oc.clip_grad_norm = o.clip_grad_norm;
  return oc;
}

int64_t total_steps(const TrainOptions& o, int64_t steps_per_epoch) {
  const int64_t all = steps_per_epoch * o.epochs;
  return o.max_steps > 0 ? std::min(o.max_steps, all) : all;
}

LrScheduleConfig schedule_config(const TrainOptions& o, int64_t steps_per_epoch) {
  LrScheduleConfig sc;
  sc.name = o.schedule;
  sc.base_lr = o.lr;
  sc.steps_per_epoch = steps_per_epoch;
  sc.gamma = o.gamma;
  sc.step_epochs = o.step_epochs;
  if (!o.milestones.empty()) sc.milestones = parse_milestones(o.milestones);
  sc.total_steps = total_steps(o, steps_per_epoch);
  sc.min_lr = o.min_lr;
  sc.poly_power = o.poly_power;
  sc.warmup_steps = o.warmup_steps;
  sc.plateau_factor = o.gamma;
  sc.plateau_patience = o.plateau_patience;
  return sc;
}

TrainStepConfig step_config(const TrainOptions& o) {
  TrainStepConfig tc;
  tc.bucket_mb = o.bucket_mb;
  tc.wire = comm::parse_wire_type(o.wire);
  tc.overlap = o.overlap;
  tc.clip_grad_norm = o.clip_grad_norm;
  // Only fp16's range needs loss scaling; bf16 keeps fp32's exponent.
  tc.loss_scaling = parse_precision(o.precision) == Precision::kFloat16;
  return tc;
}

BackendOptions backend_options(const TrainOptions& o) {
  BackendOptions options;
  options.precision = parse_precision(o.precision);
  options.allow_tf32 = o.tf32;
  return options;
}

bool augment_on_device(const TrainOptions& o) {
  return o.augment_on == "device" ||
         (o.augment_on == "auto" && o.backend == "cuda" && o.gpus_per_rank == 1);
}

io::LoaderConfig train_loader_config(const TrainOptions& o, const io::DatasetMeta& data,
                                     const ModelSpec& spec, ActivationLayout layout, int rank,
                                     int world, int64_t start_epoch, int64_t start_step) {
  io::LoaderConfig lc;
  lc.batch_size = o.batch_size;
  lc.sampler.seed = o.seed;
  lc.sampler.shuffle = true;
  lc.drop_last = true;
  lc.workers = o.data_workers;
  lc.rank = rank;
  lc.world = world;
  lc.start_epoch = start_epoch;
  lc.start_step = start_step;
  lc.epochs = o.epochs - start_epoch;
  lc.augment.crop_height = spec.height;
  lc.augment.crop_width = spec.width;
  lc.augment.random_crop = o.random_crop;
  lc.augment.flip = o.flip;
  lc.augment.pad = o.pad;
  lc.augment.lighting_std = static_cast<float>(o.lighting);
  lc.augment.mean.assign(data.mean.begin(), data.mean.end());
  lc.augment.std.assign(data.std.begin(), data.std.end());
  lc.augment.layout = layout == ActivationLayout::kNHWC ? io::Layout::kNHWC : io::Layout::kNCHW;
  lc.augment_on_host = !augment_on_device(o);
  return lc;
}

std::map<std::string, std::string> config_entries(const std::string& text) {
  // Boost's INI reader, the one that read the options in the first place; every key unregistered.
  std::istringstream in(text);
  const po::parsed_options parsed =
      po::parse_config_file(in, po::options_description(), /*allow_unregistered=*/true);
  std::map<std::string, std::string> entries;
  for (const po::option& option : parsed.options) {
    entries[option.string_key] = option.value.empty() ? std::string() : option.value.front();
  }
  return entries;
}

std::string changed_settings(const std::string& saved, const std::string& now) {
  // The batch size too: a resumed run continues at the same fraction of the epoch.
  static const std::set<std::string> kFree = {"train.epochs",
                                              "train.max_steps",
                                              "train.log_every",
                                              "train.val_every",
                                              "train.batch_size",
                                              "data.workers",
                                              "data.val",
                                              "run.dir",
                                              "run.threads",
                                              "comm.timeout_s",
                                              "comm.algorithm",
                                              "comm.heartbeat_s",
                                              "comm.heartbeat_misses",
                                              "checkpoint.every_steps",
                                              "checkpoint.every_minutes",
                                              "checkpoint.keep",
                                              "profile.steps",
                                              "profile.start"};
  const auto before = config_entries(saved), after = config_entries(now);
  std::string changes;
  for (const auto& [key, value] : after) {
    if (kFree.count(key) != 0) continue;
    const auto it = before.find(key);
    if (it == before.end() || it->second == value) continue;
    changes += (changes.empty() ? "" : ", ") + key + " " + it->second + " -> " + value;
  }
  return changes;
}

}  // namespace alexnet::trainer
