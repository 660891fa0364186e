// alexnet-train's options: one table with defaults and help, read from an INI config file
// (sections become prefixes: [train] batch_size = 64 is train.batch_size) and the command line,
// the command line winning. Unknown keys are errors, never ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/lr_schedule.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"

namespace alexnet::trainer {

struct TrainOptions {
  std::string config_file;
  std::string arch = "alexnet-mini";
  std::string backend = "onednn";
  std::string precision = "fp32";  // cuda: fp32 | bf16 | fp16 (conv and FC compute)
  bool tf32 = false;               // cuda: fp32 convs and GEMMs on TF32 tensor cores
  int gpus_per_rank = 1;           // cuda: devices each rank drives
  std::vector<std::string> train_files, val_files;
  int data_workers = 2;
  std::string augment_on = "auto";  // host | device | auto (device on the cuda backend)
  int64_t batch_size = 128;         // per rank
  int64_t epochs = 1;
  int64_t max_steps = 0;  // 0: no limit
  int64_t val_every = 0;  // steps; 0: at the end of every epoch only
  int64_t log_every = 50;
  bool random_crop = true, flip = true;
  int64_t pad = 0;
  double lighting = 0;
  std::string optimizer = "sgd";
  double lr = 0.01, momentum = 0.9, weight_decay = 5e-4;
  bool nesterov = false;
  std::string momentum_rule = "pytorch";
  double beta1 = 0.9, beta2 = 0.999;
  double trust_coefficient = 0.001;  // lars: eta (You et al. 2017)
  double clip_grad_norm = 0;
  std::string schedule = "constant";
  int64_t warmup_steps = 0, step_epochs = 30, plateau_patience = 1;
  std::string milestones;
  double gamma = 0.1, min_lr = 0;
  double poly_power = 2;  // poly schedule
  double label_smoothing = 0;
  bool dropout = true;  // off: deterministic steps, for equivalence checks
  std::string run_dir = "runs/default";
  int threads = 0;  // compute threads per rank; 0: the node's cores shared among its ranks
  // Data parallelism.
  double bucket_mb = 25;
  bool overlap = true;
  std::string wire = "fp32";
  std::string comm_algorithm = "auto";  // ring | hierarchical | auto
  double comm_timeout_s = 600;
  double comm_heartbeat_s = 0.5;  // UDP heartbeats to the ring neighbours (comm/heartbeat.h)
  int comm_heartbeat_misses = 16;
  // Checkpoints and resume.
  int64_t checkpoint_every_steps = 0;
  double checkpoint_every_minutes = 30;
  int64_t checkpoint_keep = 3;
  std::string resume;  // "", "latest" or a path
  // Chrome trace of steps [profile_start, profile_start + profile_steps) of this run.
  int64_t profile_steps = 0, profile_start = 5;
  // Weights in (trainer/init_from.h): a safetensors or weights/checkpoint file to start from, and
  // regular expressions of state_dict keys to leave at fresh initialization.
  std::string init_from;
  std::vector<std::string> init_skip;
  uint64_t seed = 0;
  bool summary = false;
  bool print_config = false;
  bool version = false;
};

// Parses argv (and the --config file). Returns false after printing --help. Throws
// io::OptionError (io/cli.h) with a one-line message naming the option (or the config file) for
// a bad or unknown option, a value out of range or not finite, or a combination that cannot run.
bool parse_train_options(int argc, char** argv, TrainOptions& options);

// What the options mean for the optimizer, schedule, step, backend and loaders:
// trainer/train_config.h.

// Shared by the tools' option checks (alexnet-train, -eval, -export, -predict).
// Sane bounds on sizes taken from options, checked before anything is allocated.
inline constexpr int64_t kMaxBatch = int64_t{1} << 16;  // images per forward pass
inline constexpr int64_t kMaxWorkers = 256;             // loader threads
inline constexpr int64_t kMaxThreads = 4096;            // compute threads

// Throws io::OptionError("OPTION VALUE: expected ...") unless lo <= value <= hi.
void require_in_range(const std::string& option, int64_t value, int64_t lo, int64_t hi);
// The same for a real value, which must also be finite; `lo_open` / `hi_open` exclude the bound.
void require_finite_in_range(const std::string& option, double value, double lo, double hi,
                             bool lo_open = false, bool hi_open = false);

// Refuses a batch whose activations (and, training, their gradients) would not fit in this
// machine's memory, naming the option: a huge batch would otherwise end in std::bad_alloc.
void require_batch_fits(const std::string& option, int64_t batch, const ModelSpec& spec,
                        bool training);

// The shortest text that reads back as `value`, fixed or scientific (0.9, 5e-4, 600): the
// defaults as --help prints them (Boost's own lexical_cast prints 0.90000000000000002).
std::string number_text(double value);

// The resolved configuration as INI text (stored with the weights; printed by --print-config).
std::string config_text(const TrainOptions& options);

}  // namespace alexnet::trainer
