// The option table of alexnet-train, Boost.Program_options over INI files and argv.
#include "trainer/train_options.h"

#include <boost/program_options.hpp>

#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace po = boost::program_options;

namespace alexnet::trainer {
namespace {

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
    ("train.label_smoothing", po::value(&o.label_smoothing)->default_value(0.0),
     "cross-entropy label smoothing")
    ("augment.random_crop", po::value(&o.random_crop)->default_value(o.random_crop),
     "random crops (else center)")
    ("augment.flip", po::value(&o.flip)->default_value(o.flip), "random horizontal flips")
    ("augment.pad", po::value(&o.pad)->default_value(o.pad), "zero padding before cropping")
    ("augment.lighting", po::value(&o.lighting)->default_value(o.lighting),
     "PCA lighting noise std (the paper: 0.1)")
    ("optim.name", po::value(&o.optimizer)->default_value(o.optimizer), "sgd | adam | adamw")
    ("optim.lr", po::value(&o.lr)->default_value(o.lr), "base learning rate")
    ("optim.momentum", po::value(&o.momentum)->default_value(o.momentum), "SGD momentum")
    ("optim.momentum_rule", po::value(&o.momentum_rule)->default_value(o.momentum_rule),
     "pytorch | paper (where the learning rate enters the momentum buffer)")
    ("optim.nesterov", po::value(&o.nesterov)->default_value(o.nesterov), "Nesterov momentum")
    ("optim.weight_decay", po::value(&o.weight_decay)->default_value(o.weight_decay),
     "L2 weight decay (not on biases and batch norm)")
    ("optim.beta1", po::value(&o.beta1)->default_value(o.beta1), "Adam beta1")
    ("optim.beta2", po::value(&o.beta2)->default_value(o.beta2), "Adam beta2")
    ("optim.clip_grad_norm", po::value(&o.clip_grad_norm)->default_value(o.clip_grad_norm),
     "clip the global gradient norm (0: off)")
    ("optim.schedule", po::value(&o.schedule)->default_value(o.schedule),
     "constant | step | multistep | cosine | plateau (divide by 10 when val error plateaus)")
    ("optim.warmup_steps", po::value(&o.warmup_steps)->default_value(o.warmup_steps),
     "linear warmup steps")
    ("optim.step_epochs", po::value(&o.step_epochs)->default_value(o.step_epochs),
     "step schedule: epochs between decays")
    ("optim.milestones", po::value(&o.milestones)->default_value(""),
     "multistep schedule: epochs, comma-separated")
    ("optim.gamma", po::value(&o.gamma)->default_value(o.gamma), "decay factor")
    ("optim.min_lr", po::value(&o.min_lr)->default_value(o.min_lr), "cosine floor")
    ("optim.plateau_patience", po::value(&o.plateau_patience)->default_value(o.plateau_patience),
     "plateau schedule: validations without improvement before dividing")
    ("train.dropout", po::value(&o.dropout)->default_value(o.dropout),
     "dropout layers active (0: off, for deterministic comparisons)")
    ("run.dir", po::value(&o.run_dir)->default_value(o.run_dir),
     "run folder: checkpoints/, metrics.jsonl, tensorboard/, weights.h5")
    ("run.threads", po::value(&o.threads)->default_value(o.threads),
     "compute threads per rank (0: the node's cores divided among its ranks)")
    ("comm.bucket_mb", po::value(&o.bucket_mb)->default_value(o.bucket_mb),
     "gradient all-reduce bucket size in MB")
    ("comm.overlap", po::value(&o.overlap)->default_value(o.overlap),
     "all-reduce gradient buckets while backward runs")
    ("comm.wire", po::value(&o.wire)->default_value(o.wire),
     "gradient values on the wire: fp32 | bf16 | fp16 (sums stay fp32)")
    ("comm.timeout_s", po::value(&o.comm_timeout_s)->default_value(o.comm_timeout_s),
     "end the job when no step or evaluation batch completes for this long (0: never)")
    ("checkpoint.every_steps",
     po::value(&o.checkpoint_every_steps)->default_value(o.checkpoint_every_steps),
     "checkpoint every N steps (0: off)")
    ("checkpoint.every_minutes",
     po::value(&o.checkpoint_every_minutes)->default_value(o.checkpoint_every_minutes),
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
    ("seed", po::value(&o.seed)->default_value(o.seed), "seed of initialization, data, dropout");
  // clang-format on
  return d;
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
    if (vm.count("config")) {
      const std::string file = vm["config"].as<std::string>();
      std::ifstream in(file);
      if (!in) throw std::invalid_argument("config file '" + file + "' cannot be read");
      po::store(po::parse_config_file(in, options, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw std::invalid_argument(e.what());
  }
  if (o.batch_size < 1) throw std::invalid_argument("train.batch_size must be at least 1");
  if (o.epochs < 1) throw std::invalid_argument("train.epochs must be at least 1");
  if (o.data_workers < 1) throw std::invalid_argument("data.workers must be at least 1");
  if (!(o.lr > 0)) throw std::invalid_argument("optim.lr must be positive");
  if (!(o.bucket_mb > 0)) throw std::invalid_argument("comm.bucket_mb must be positive");
  if (o.threads < 0) throw std::invalid_argument("run.threads must be 0 or more");
  if (o.precision != "fp32" && o.precision != "bf16" && o.precision != "fp16") {
    throw std::invalid_argument("precision '" + o.precision + "': expected fp32, bf16 or fp16");
  }
  if (o.augment_on != "auto" && o.augment_on != "host" && o.augment_on != "device") {
    throw std::invalid_argument("data.augment_on '" + o.augment_on +
                                "': expected host, device or auto");
  }
  if (o.augment_on == "device" && (o.backend != "cuda" || o.gpus_per_rank > 1)) {
    throw std::invalid_argument("data.augment_on device needs backend cuda with one GPU per rank");
  }
  if (o.gpus_per_rank < 1) throw std::invalid_argument("gpus-per-rank must be at least 1");
  if (o.gpus_per_rank > 1 && o.backend != "cuda") {
    throw std::invalid_argument("gpus-per-rank " + std::to_string(o.gpus_per_rank) +
                                " needs backend cuda, not " + o.backend);
  }
  if (o.gpus_per_rank > 1 && o.batch_size % o.gpus_per_rank != 0) {
    throw std::invalid_argument("train.batch_size " + std::to_string(o.batch_size) +
                                " does not split evenly over " + std::to_string(o.gpus_per_rank) +
                                " GPUs per rank");
  }
  if (o.wire != "fp32" && o.wire != "bf16" && o.wire != "fp16") {
    throw std::invalid_argument("comm.wire '" + o.wire + "': expected fp32, bf16 or fp16");
  }
  return true;
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
    << "\nclip_grad_norm = " << o.clip_grad_norm << "\nschedule = " << o.schedule
    << "\nwarmup_steps = " << o.warmup_steps << "\nstep_epochs = " << o.step_epochs
    << "\nmilestones = " << o.milestones << "\ngamma = " << o.gamma << "\nmin_lr = " << o.min_lr
    << "\nplateau_patience = " << o.plateau_patience << "\n"
    << "[run]\ndir = " << o.run_dir << "\nthreads = " << o.threads << "\n"
    << "[comm]\nbucket_mb = " << o.bucket_mb << "\noverlap = " << o.overlap << "\nwire = " << o.wire
    << "\ntimeout_s = " << o.comm_timeout_s << "\n"
    << "[checkpoint]\nevery_steps = " << o.checkpoint_every_steps
    << "\nevery_minutes = " << o.checkpoint_every_minutes << "\nkeep = " << o.checkpoint_keep
    << "\n"
    << "[init]\nfrom = " << o.init_from << "\nskip = " << list(o.init_skip) << "\n";
  return s.str();
}

}  // namespace alexnet::trainer
