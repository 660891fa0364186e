// The option table of alexnet-train, Boost.Program_options over INI files and argv.
#include "trainer/train_options.h"

#include <unistd.h>
#include <boost/program_options.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "comm/communicator.h"
#include "io/cli.h"
#include "trainer/backend_options.h"
#include "trainer/lr_schedule.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_config.h"

namespace po = boost::program_options;

namespace alexnet::trainer {
namespace {

using io::OptionError;

// A real default shown as written (number_text), not as lexical_cast's 17 digits.
po::typed_value<double>* with_default(double* value) {
  return po::value(value)->default_value(*value, number_text(*value));
}

// Boost reads "-1" into a uint64_t as 2^64 - 1: the seed is parsed here, digits only.
uint64_t parse_seed(const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) {
    throw OptionError("seed '" + text + "': expected an integer in [0, 2^64)");
  }
  return value;
}

po::options_description table(TrainOptions& o) {
  po::options_description d("alexnet-train options (config file sections: [model] [data] ...)");
  // clang-format off
  d.add_options()
    ("model.arch", po::value(&o.arch)->default_value(o.arch),
     "alexnet-paper | alexnet-torchvision | alexnet-keras | alexnet-mini")
    ("backend", po::value(&o.backend)->default_value(o.backend),
     "onednn | reference | cuda (cuDNN, gradients over NCCL)")
    ("precision", po::value(&o.precision)->default_value(o.precision),
     "fp32 | bf16 | fp16: what the cuda backend's conv and FC layers compute in (fp32 master "
     "weights; fp16 adds dynamic loss scaling); the CPU backends take fp32 only")
    ("tf32", po::value(&o.tf32)->default_value(o.tf32),
     "cuda, fp32: let convolutions and matrix products use TF32 tensor cores (PyTorch's default "
     "for cuDNN convolutions)")
    ("gpus-per-rank", po::value(&o.gpus_per_rank)->default_value(o.gpus_per_rank),
     "cuda: GPUs each rank drives (its replicas split the rank's batch); local rank r takes the "
     "visible devices r*G ... r*G+G-1 (CUDA_VISIBLE_DEVICES applies)")
    ("data.train", po::value(&o.train_files)->multitoken(), "training shards (files or globs)")
    ("data.val", po::value(&o.val_files)->multitoken(), "validation shards (files or globs)")
    ("data.workers", po::value(&o.data_workers)->default_value(o.data_workers),
     "augmentation threads")
    ("data.augment_on", po::value(&o.augment_on)->default_value(o.augment_on),
     "host | device | auto: where training batches are cropped, flipped and normalized; device "
     "(cuda, one GPU per rank) copies the stored uint8 images and augments them in a kernel; "
     "auto: device where it can")
    ("train.batch_size", po::value(&o.batch_size)->default_value(o.batch_size), "per rank")
    ("train.epochs", po::value(&o.epochs)->default_value(o.epochs), "epochs to train")
    ("train.max_steps", po::value(&o.max_steps)->default_value(o.max_steps),
     "stop after this many steps (0: no limit)")
    ("train.val_every", po::value(&o.val_every)->default_value(o.val_every),
     "validate every N steps (0: at each epoch's end only)")
    ("train.log_every", po::value(&o.log_every)->default_value(o.log_every),
     "progress line every N steps")
    ("train.label_smoothing", with_default(&o.label_smoothing),
     "cross-entropy label smoothing")
    ("augment.random_crop", po::value(&o.random_crop)->default_value(o.random_crop),
     "random crops (else center)")
    ("augment.flip", po::value(&o.flip)->default_value(o.flip), "random horizontal flips")
    ("augment.pad", po::value(&o.pad)->default_value(o.pad), "zero padding before cropping")
    ("augment.lighting", with_default(&o.lighting),
     "PCA lighting noise std (the paper: 0.1)")
    ("optim.name", po::value(&o.optimizer)->default_value(o.optimizer),
     "sgd | adam | adamw | lars | lamb (layer-wise trust ratio, see optim.trust_coefficient)")
    ("optim.lr", with_default(&o.lr), "base learning rate")
    ("optim.momentum", with_default(&o.momentum), "SGD and LARS momentum")
    ("optim.momentum_rule", po::value(&o.momentum_rule)->default_value(o.momentum_rule),
     "pytorch | paper (where the learning rate enters the momentum buffer)")
    ("optim.nesterov", po::value(&o.nesterov)->default_value(o.nesterov), "Nesterov momentum")
    ("optim.weight_decay", with_default(&o.weight_decay),
     "L2 weight decay (not on biases and batch norm)")
    ("optim.beta1", with_default(&o.beta1), "Adam and LAMB beta1")
    ("optim.beta2", with_default(&o.beta2), "Adam and LAMB beta2")
    ("optim.trust_coefficient", with_default(&o.trust_coefficient),
     "lars: eta in local_lr = eta * |w| / (|g| + wd * |w|), then v = momentum * v + lr * "
     "local_lr * (g + wd * w), w -= v (You et al. 2017); lamb: unused (its ratio is |w| / |r|). "
     "Per weight tensor; local_lr 1 where |w| or |g| is 0; biases and batch norm: 1, no decay")
    ("optim.clip_grad_norm", with_default(&o.clip_grad_norm),
     "clip the global gradient norm (0: off)")
    ("optim.schedule", po::value(&o.schedule)->default_value(o.schedule),
     "constant | step | multistep | cosine | poly (min_lr + (lr - min_lr) * (1 - t / T)^power "
     "over the steps after warmup) | plateau (divide by 10 when val error plateaus)")
    ("optim.warmup_steps", po::value(&o.warmup_steps)->default_value(o.warmup_steps),
     "linear warmup steps")
    ("optim.step_epochs", po::value(&o.step_epochs)->default_value(o.step_epochs),
     "step schedule: epochs between decays")
    ("optim.milestones", po::value(&o.milestones)->default_value(""),
     "multistep schedule: epochs, comma-separated")
    ("optim.gamma", with_default(&o.gamma), "decay factor")
    ("optim.min_lr", with_default(&o.min_lr), "cosine floor, poly end value")
    ("optim.poly_power", with_default(&o.poly_power), "poly schedule: power (You et al.: 2)")
    ("optim.plateau_patience", po::value(&o.plateau_patience)->default_value(o.plateau_patience),
     "plateau schedule: validations without improvement before dividing")
    ("train.dropout", po::value(&o.dropout)->default_value(o.dropout),
     "dropout layers active (0: off, for deterministic comparisons)")
    ("run.dir", po::value(&o.run_dir)->default_value(o.run_dir),
     "run folder: checkpoints/, metrics.jsonl, tensorboard/, weights.h5")
    ("run.threads", po::value(&o.threads)->default_value(o.threads),
     "compute threads per rank (0: the node's cores divided among its ranks)")
    ("comm.bucket_mb", with_default(&o.bucket_mb),
     "gradient all-reduce bucket size in MB")
    ("comm.overlap", po::value(&o.overlap)->default_value(o.overlap),
     "all-reduce gradient buckets while backward runs")
    ("comm.wire", po::value(&o.wire)->default_value(o.wire),
     "gradient values on the wire: fp32 | bf16 | fp16 (sums stay fp32)")
    ("comm.algorithm", po::value(&o.comm_algorithm)->default_value(o.comm_algorithm),
     "gradient all-reduce over MPI: ring (one ring over every rank) | hierarchical (shared "
     "memory inside each node, one ring per local rank between nodes; the same number of ranks "
     "on every node) | auto (hierarchical for several nodes of several ranks, else ring)")
    ("comm.timeout_s", with_default(&o.comm_timeout_s),
     "end the job when no step or evaluation batch completes for this long (0: never)")
    ("comm.heartbeat_s", with_default(&o.comm_heartbeat_s),
     "seconds between UDP heartbeats to the neighbour ranks, which end the job when one stays "
     "silent for heartbeat_s x heartbeat_misses (a lost node; 0: off), or refuses them (its "
     "host up, its process dead: seen within about heartbeat_s)")
    ("comm.heartbeat_misses",
     po::value(&o.comm_heartbeat_misses)->default_value(o.comm_heartbeat_misses),
     "heartbeats missed in a row before a rank counts as lost")
    ("checkpoint.every_steps",
     po::value(&o.checkpoint_every_steps)->default_value(o.checkpoint_every_steps),
     "checkpoint every N steps (0: off)")
    ("checkpoint.every_minutes",
     with_default(&o.checkpoint_every_minutes),
     "checkpoint every N minutes of training (0: off)")
    ("checkpoint.keep", po::value(&o.checkpoint_keep)->default_value(o.checkpoint_keep),
     "checkpoints kept (the newest; 0: all)")
    ("profile.steps", po::value(&o.profile_steps)->default_value(o.profile_steps),
     "write a Chrome trace (run.dir/profile/trace.json) of this many steps (0: off)")
    ("profile.start", po::value(&o.profile_start)->default_value(o.profile_start),
     "the first profiled step of this run (after warm-up)")
    ("init.from", po::value(&o.init_from),
     "start from these weights (safetensors, weights file or checkpoint) instead of fresh ones")
    ("init.skip", po::value(&o.init_skip)->multitoken(),
     "state_dict keys to leave fresh: regular expressions matched at the key's start, so a "
     "prefix works (classifier.6)")
    ("seed", po::value<std::string>()->default_value(std::to_string(o.seed))
                 ->notifier([&o](const std::string& text) { o.seed = parse_seed(text); }),
     "seed of initialization, data, dropout");
  // clang-format on
  return d;
}

}  // namespace

namespace {

// The config file's text parsed into vm, refusing what is not a readable regular file: an
// ifstream opens a folder without complaint and reads it as an empty configuration.
void store_config_file(const std::string& file, const po::options_description& options,
                       po::variables_map& vm) {
  const std::string what = "--config '" + file + "'";
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (!std::filesystem::exists(status)) throw OptionError(what + ": no such file");
  if (std::filesystem::is_directory(status)) throw OptionError(what + ": is a directory");
  if (!std::filesystem::is_regular_file(status)) throw OptionError(what + ": not a regular file");
  std::ifstream in(file);
  if (!in) throw OptionError(what + ": cannot be read: " + std::strerror(errno));
  try {
    po::store(po::parse_config_file(in, options, /*allow_unregistered=*/false), vm);
  } catch (const po::error& e) {
    throw OptionError(what + ": " + e.what());
  }
  if (in.bad()) throw OptionError(what + ": read error: " + std::strerror(errno));
}

// A name that a library parser checks (throwing std::invalid_argument), refused as the option.
template <class Parse>
void check_name(const std::string& option, Parse&& parse) {
  try {
    parse();
  } catch (const std::invalid_argument& e) {
    throw OptionError(option + ": " + e.what());
  }
}

void check_values(const TrainOptions& o) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr int64_t kBig = std::numeric_limits<int64_t>::max() / 4;  // step arithmetic stays exact
  require_in_range("gpus-per-rank", o.gpus_per_rank, 1, 64);
  require_in_range("data.workers", o.data_workers, 1, kMaxWorkers);
  require_in_range("train.batch_size", o.batch_size, 1, kMaxBatch);
  require_in_range("train.epochs", o.epochs, 1, 1000000);
  require_in_range("train.max_steps", o.max_steps, 0, kBig);
  require_in_range("train.val_every", o.val_every, 0, kBig);
  require_in_range("train.log_every", o.log_every, 0, kBig);
  require_finite_in_range("train.label_smoothing", o.label_smoothing, 0, 1, false, true);
  require_in_range("augment.pad", o.pad, 0, 1024);
  require_finite_in_range("augment.lighting", o.lighting, 0, kInf, false, true);
  require_finite_in_range("optim.lr", o.lr, 0, kInf, true, true);
  require_finite_in_range("optim.momentum", o.momentum, 0, 1, false, true);
  require_finite_in_range("optim.weight_decay", o.weight_decay, 0, kInf, false, true);
  require_finite_in_range("optim.beta1", o.beta1, 0, 1, false, true);
  require_finite_in_range("optim.beta2", o.beta2, 0, 1, false, true);
  require_finite_in_range("optim.trust_coefficient", o.trust_coefficient, 0, kInf, true, true);
  require_finite_in_range("optim.clip_grad_norm", o.clip_grad_norm, 0, kInf, false, true);
  require_in_range("optim.warmup_steps", o.warmup_steps, 0, kBig);
  require_in_range("optim.step_epochs", o.step_epochs, 1, 1000000);
  require_in_range("optim.plateau_patience", o.plateau_patience, 0, kBig);
  require_finite_in_range("optim.gamma", o.gamma, 0, kInf, true, true);
  require_finite_in_range("optim.min_lr", o.min_lr, 0, kInf, false, true);
  require_finite_in_range("optim.poly_power", o.poly_power, 0, kInf, true, true);
  require_in_range("run.threads", o.threads, 0, kMaxThreads);
  require_finite_in_range("comm.bucket_mb", o.bucket_mb, 0, 65536, true, false);
  require_finite_in_range("comm.timeout_s", o.comm_timeout_s, 0, 1e9);
  require_finite_in_range("comm.heartbeat_s", o.comm_heartbeat_s, 0, 3600);
  require_in_range("comm.heartbeat_misses", o.comm_heartbeat_misses, 1, 1000000);
  require_in_range("checkpoint.every_steps", o.checkpoint_every_steps, 0, kBig);
  require_finite_in_range("checkpoint.every_minutes", o.checkpoint_every_minutes, 0, 1e9);
  require_in_range("checkpoint.keep", o.checkpoint_keep, 0, 1000000);
  // The profiler reserves its events up front (4096 a step).
  require_in_range("profile.steps", o.profile_steps, 0, 100000);
  require_in_range("profile.start", o.profile_start, 0, kBig);
}

void check_names(const TrainOptions& o) {
  check_name("model.arch", [&] { build_model(o.arch, 10, 3); });
  if (o.backend != "onednn" && o.backend != "reference" && o.backend != "cuda") {
    throw OptionError("backend '" + o.backend + "': expected onednn, reference or cuda");
  }
  if (o.precision != "fp32" && o.precision != "bf16" && o.precision != "fp16") {
    throw OptionError("precision '" + o.precision + "': expected fp32, bf16 or fp16");
  }
  if (o.augment_on != "auto" && o.augment_on != "host" && o.augment_on != "device") {
    throw OptionError("data.augment_on '" + o.augment_on + "': expected host, device or auto");
  }
  if (o.wire != "fp32" && o.wire != "bf16" && o.wire != "fp16") {
    throw OptionError("comm.wire '" + o.wire + "': expected fp32, bf16 or fp16");
  }
  if (o.comm_algorithm != "ring" && o.comm_algorithm != "hierarchical" &&
      o.comm_algorithm != "auto") {
    throw OptionError("comm.algorithm '" + o.comm_algorithm +
                      "': expected ring, hierarchical or auto");
  }
  check_name("optim.name", [&] { parse_optimizer_kind(o.optimizer); });
  check_name("optim.momentum_rule", [&] { parse_momentum_rule(o.momentum_rule); });
  check_name("optim.schedule", [&] { parse_lr_schedule_kind(o.schedule); });
  if (!o.milestones.empty())
    check_name("optim.milestones", [&] { parse_milestones(o.milestones); });
  for (const std::string& p : o.init_skip) {
    try {
      std::regex(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw OptionError("init.skip '" + p + "' is not a regular expression: " + e.what());
    }
  }
}

// The combinations the optimizer and the schedule refuse, checked now (they would throw
// std::invalid_argument, an internal error, once the job has started).
void check_combinations(const TrainOptions& o) {
  if (o.augment_on == "device" && (o.backend != "cuda" || o.gpus_per_rank > 1)) {
    throw OptionError("data.augment_on device needs backend cuda with one GPU per rank");
  }
  if (o.gpus_per_rank > 1 && o.backend != "cuda") {
    throw OptionError("gpus-per-rank " + std::to_string(o.gpus_per_rank) +
                      " needs backend cuda, not " + o.backend);
  }
  if (o.gpus_per_rank > 1 && o.batch_size % o.gpus_per_rank != 0) {
    throw OptionError("train.batch_size " + std::to_string(o.batch_size) +
                      " does not split evenly over " + std::to_string(o.gpus_per_rank) +
                      " GPUs per rank");
  }
  if (o.precision != "fp32" && o.backend != "cuda") {
    throw OptionError("precision " + o.precision + " needs the cuda backend: the " + o.backend +
                      " backend computes in fp32");
  }
  check_name("optim", [&] { validate(optimizer_config(o)); });
  // The run's length is unknown until the data is open: a long one here, the job checks again.
  LrScheduleConfig sc = schedule_config(o, 1);
  sc.total_steps = std::numeric_limits<int64_t>::max() / 4;
  check_name("optim", [&] { validate(sc); });
}

}  // namespace

bool parse_train_options(int argc, char** argv, TrainOptions& o) {
  po::options_description options = table(o);
  po::options_description general("general");
  // clang-format off
  general.add_options()
    ("config", po::value(&o.config_file), "INI config file (command-line values override it)")
    ("summary", po::bool_switch(&o.summary), "print the model table and parameter count, exit")
    ("print-config", po::bool_switch(&o.print_config), "print the resolved configuration, exit")
    ("resume", po::value(&o.resume),
     "latest (the newest good checkpoint in run.dir, if any) or a checkpoint path")
    ("version", po::bool_switch(&o.version), "print the build (git describe) and exit")
    ("help,h", "this help");
  // clang-format on
  po::options_description all;
  all.add(general).add(options);
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, all), vm);
    if (vm.count("help")) {
      std::cout << "usage: alexnet-train --config FILE [--section.key=value ...]\n" << all;
      return false;
    }
    if (vm.count("config")) store_config_file(vm["config"].as<std::string>(), options, vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw OptionError(e.what());
  }
  check_values(o);
  check_names(o);
  check_combinations(o);
  return true;
}

void require_in_range(const std::string& option, int64_t value, int64_t lo, int64_t hi) {
  if (value >= lo && value <= hi) return;
  throw OptionError(option + " " + std::to_string(value) + ": expected " +
                    (hi == std::numeric_limits<int64_t>::max() / 4
                         ? "at least " + std::to_string(lo)
                         : "a value in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"));
}

void require_finite_in_range(const std::string& option, double value, double lo, double hi,
                             bool lo_open, bool hi_open) {
  const bool above = lo_open ? value > lo : value >= lo;
  const bool below = hi_open ? value < hi : value <= hi;
  if (std::isfinite(value) && above && below) return;
  std::string range = std::string(lo_open ? "(" : "[") + number_text(lo) + ", " +
                      (std::isinf(hi) ? "inf)" : number_text(hi) + (hi_open ? ")" : "]"));
  throw OptionError(option + " " + number_text(value) + ": expected a finite value in " + range);
}

void require_batch_fits(const std::string& option, int64_t batch, const ModelSpec& spec,
                        bool training) {
  double per_image = 0;  // floats
  for (const LayerSpec& l : spec.layers) {
    double n = 1;
    for (int64_t d : l.out_shape) n *= static_cast<double>(d);
    per_image += n;
  }
  const double bytes = static_cast<double>(batch) * per_image * 4 * (training ? 2 : 1);
  const double memory =
      static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  if (memory > 0 && bytes > memory) {
    auto gib = [](double b) { return std::to_string(static_cast<int64_t>(b / (1 << 30)) + 1); };
    throw OptionError(option + " " + std::to_string(batch) + ": " + spec.arch +
                      "'s activations at this batch need about " + gib(bytes) +
                      " GiB, more than this machine's " + gib(memory) + " GiB");
  }
}

std::string number_text(double value) {
  char fixed[400], sci[64];
  const auto f = std::to_chars(fixed, fixed + sizeof fixed, value, std::chars_format::fixed);
  const auto e = std::to_chars(sci, sci + sizeof sci, value, std::chars_format::scientific);
  if (f.ec != std::errc{} || e.ec != std::errc{}) return std::to_string(value);
  std::string a(fixed, f.ptr), b(sci, e.ptr);
  // "5e-04" -> "5e-4", "1e+05" -> "1e5"
  const size_t x = b.find('e');
  if (x != std::string::npos) {
    std::string mantissa = b.substr(0, x), exponent = b.substr(x + 1);
    const bool negative = !exponent.empty() && exponent[0] == '-';
    if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.erase(0, 1);
    exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
    b = mantissa + "e" + (negative ? "-" : "") + exponent;
  }
  return b.size() < a.size() ? b : a;
}

std::string config_text(const TrainOptions& o) {
  std::ostringstream s;
  auto list = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : " ") + x;
    return out;
  };
  s << "backend = " << o.backend << "\nprecision = " << o.precision << "\ntf32 = " << o.tf32
    << "\ngpus-per-rank = " << o.gpus_per_rank << "\nseed = " << o.seed << "\n"
    << "[model]\narch = " << o.arch << "\n"
    << "[data]\ntrain = " << list(o.train_files) << "\nval = " << list(o.val_files)
    << "\nworkers = " << o.data_workers << "\naugment_on = " << o.augment_on << "\n"
    << "[train]\nbatch_size = " << o.batch_size << "\nepochs = " << o.epochs
    << "\nmax_steps = " << o.max_steps << "\nval_every = " << o.val_every
    << "\nlog_every = " << o.log_every << "\nlabel_smoothing = " << o.label_smoothing
    << "\ndropout = " << o.dropout << "\n"
    << "[augment]\nrandom_crop = " << o.random_crop << "\nflip = " << o.flip << "\npad = " << o.pad
    << "\nlighting = " << o.lighting << "\n"
    << "[optim]\nname = " << o.optimizer << "\nlr = " << o.lr << "\nmomentum = " << o.momentum
    << "\nmomentum_rule = " << o.momentum_rule << "\nnesterov = " << o.nesterov
    << "\nweight_decay = " << o.weight_decay << "\nbeta1 = " << o.beta1 << "\nbeta2 = " << o.beta2
    << "\ntrust_coefficient = " << o.trust_coefficient << "\nclip_grad_norm = " << o.clip_grad_norm
    << "\nschedule = " << o.schedule << "\nwarmup_steps = " << o.warmup_steps
    << "\nstep_epochs = " << o.step_epochs << "\nmilestones = " << o.milestones
    << "\ngamma = " << o.gamma << "\nmin_lr = " << o.min_lr << "\npoly_power = " << o.poly_power
    << "\nplateau_patience = " << o.plateau_patience << "\n"
    << "[run]\ndir = " << o.run_dir << "\nthreads = " << o.threads << "\n"
    << "[comm]\nbucket_mb = " << o.bucket_mb << "\noverlap = " << o.overlap << "\nwire = " << o.wire
    << "\nalgorithm = " << o.comm_algorithm << "\ntimeout_s = " << o.comm_timeout_s
    << "\nheartbeat_s = " << o.comm_heartbeat_s
    << "\nheartbeat_misses = " << o.comm_heartbeat_misses << "\n"
    << "[checkpoint]\nevery_steps = " << o.checkpoint_every_steps
    << "\nevery_minutes = " << o.checkpoint_every_minutes << "\nkeep = " << o.checkpoint_keep
    << "\n"
    << "[init]\nfrom = " << o.init_from << "\nskip = " << list(o.init_skip) << "\n";
  return s.str();
}

}  // namespace alexnet::trainer
