// Training benchmark: training-step and forward-only images/s of whole models on a backend,
// against PyTorch (bench/torch_train_bench.py) measured in the same run with the same thread
// count and the same glibc allocator settings, and the ratio.
//
// A training step is what alexnet-train does per batch: copy the batch in, forward (training,
// dropout on), softmax cross-entropy, backward, SGD with momentum 0.9 and weight decay 5e-4.
// Inputs and labels are random, so the figures are the model's alone, not the loader's.
// On the cuda backend (--backend cuda --precision fp32|bf16 [--tf32]) the peer runs on the GPU
// too, channels_last, under autocast for bf16, with the same TF32 setting; --input device keeps
// the batch on the GPU as the peer's is (the loader's host-to-device copy is then not timed).
// Rounds alternate ours and PyTorch's; each figure is the best round (the least disturbed on a
// shared machine).
#include <malloc.h>
#include <omp.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io/cli.h"
#include "trainer/backend.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"

namespace po = boost::program_options;
using namespace alexnet::trainer;
using Clock = std::chrono::steady_clock;

namespace {

struct Case {
  std::string arch;
  int64_t batch = 0;
};

// "alexnet-torchvision:32,alexnet-mini:128"
std::vector<Case> parse_cases(const std::string& text) {
  std::vector<Case> cases;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    if (colon == std::string::npos)
      throw std::invalid_argument("--cases: '" + item + "' is not ARCH:BATCH");
    cases.push_back({item.substr(0, colon), std::stoll(item.substr(colon + 1))});
  }
  return cases;
}

// alexnet-mini is measured on Fashion-MNIST's shape (1x28x28, 10 classes); the full-size
// variants on ImageNet's (3 channels, their own input size, 1000 classes).
ModelSpec spec_for(const std::string& arch) {
  return arch == "alexnet-mini" ? build_model(arch, 10, 1, 28, 28) : build_model(arch, 1000, 3);
}

struct Rates {
  double train = 0, forward = 0;  // images/s
};

class OurModel {
 public:
  OurModel(const ModelSpec& spec, Backend& backend, int64_t batch, bool input_on_device)
      : input_on_device_(input_on_device),
        spec_(spec),
        backend_(backend),
        model_(spec, backend, batch),
        host_input_(static_cast<size_t>(model_.input_elements())),
        host_labels_(static_cast<size_t>(batch)),
        host_params_(static_cast<size_t>(spec.param_floats)),
        host_buffers_(static_cast<size_t>(std::max<int64_t>(spec.buffer_floats, 1))),
        input_(backend.allocate(host_input_.size() * 4)),
        labels_(backend.allocate(host_labels_.size() * 4)),
        optimizer_(sgd(), static_cast<size_t>(spec.param_floats), {}, &backend) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (float& v : host_input_) v = normal(rng);
    for (auto& l : host_labels_) l = static_cast<int32_t>(rng() % spec.num_classes);
    initialize_parameters(spec, 1, host_params_.data(), host_buffers_.data());
    backend.copy_to_device(model_.params(), host_params_.data(), host_params_.size() * 4);
    backend.copy_to_device(model_.buffers(), host_buffers_.data(),
                           static_cast<size_t>(spec.buffer_floats) * 4);
    backend.copy_to_device(input_.get(), host_input_.data(), host_input_.size() * 4);
    backend.copy_to_device(labels_.get(), host_labels_.data(), host_labels_.size() * 4);
  }

  void train_step() {
    // The batch arrives in host memory, as the loader's does (unless --input device).
    if (!input_on_device_) {
      backend_.copy_to_device(input_.get(), host_input_.data(), host_input_.size() * 4);
      backend_.copy_to_device(labels_.get(), host_labels_.data(), host_labels_.size() * 4);
    }
    DropoutKey key;
    key.step = step_++;
    model_.forward(static_cast<const float*>(input_.get()), true, key);
    model_.loss(static_cast<const int32_t*>(labels_.get()), true);
    model_.backward();
    const auto n = static_cast<size_t>(spec_.param_floats);
    optimizer_.step({model_.params(), n}, {model_.grads(), n}, 0.001);
    backend_.synchronize();
  }

  void forward_step() {
    if (!input_on_device_) {
      backend_.copy_to_device(input_.get(), host_input_.data(), host_input_.size() * 4);
    }
    model_.forward(static_cast<const float*>(input_.get()), false);
    backend_.synchronize();
  }

 private:
  static OptimizerConfig sgd() {
    OptimizerConfig c;
    c.momentum = 0.9;
    c.weight_decay = 5e-4;
    return c;
  }

  const bool input_on_device_;
  const ModelSpec& spec_;
  Backend& backend_;
  Model model_;
  std::vector<float> host_input_;
  std::vector<int32_t> host_labels_;
  std::vector<float> host_params_, host_buffers_;
  Backend::Memory input_, labels_;
  Optimizer optimizer_;
  uint64_t step_ = 0;
};

template <typename Step>
double images_per_second(Step step, int warmup, int steps, int64_t batch) {
  for (int i = 0; i < warmup; ++i) step();
  const auto start = Clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(batch * steps) / seconds;
}

Rates measure_ours(const ModelSpec& spec, Backend& backend, int64_t batch, int warmup, int steps,
                   bool input_on_device) {
  OurModel m(spec, backend, batch, input_on_device);
  Rates r;
  r.train = images_per_second([&] { m.train_step(); }, warmup, steps, batch);
  r.forward = images_per_second([&] { m.forward_step(); }, warmup, steps, batch);
  return r;
}

// How the PyTorch peer runs: on the CPU, or on the GPU with our precision and TF32 setting.
struct PeerSettings {
  std::string python = "/usr/bin/python3";
  std::string device = "cpu";
  std::string precision = "fp32";
  bool tf32 = false;
};

Rates measure_torch(const ModelSpec& spec, int64_t batch, int threads, int warmup, int steps,
                    const std::string& allocator_env, const std::filesystem::path& layers,
                    const PeerSettings& peer) {
  std::ofstream(layers) << torch_layer_lines(spec);
  std::ostringstream cmd;
  cmd << allocator_env << " " << peer.python << " " << ALEXNET_SOURCE_DIR
      << "/bench/torch_train_bench.py --arch " << spec.arch << " --layers " << layers.string()
      << " --batch " << batch << " --channels " << spec.in_channels << " --height " << spec.height
      << " --width " << spec.width << " --classes " << spec.num_classes << " --threads " << threads
      << " --warmup " << warmup << " --steps " << steps << " --device " << peer.device
      << " --precision " << peer.precision << (peer.tf32 ? " --tf32" : "") << " 2>&1";
  FILE* pipe = ::popen(cmd.str().c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot start: " + cmd.str());
  std::string output;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = ::pclose(pipe);
  Rates r;
  std::istringstream lines(output);
  std::string word;
  double value = 0;
  while (lines >> word) {
    if (word == "train" && lines >> value) r.train = value;
    if (word == "forward" && lines >> value) r.forward = value;
  }
  if (status != 0 || r.train <= 0 || r.forward <= 0) {
    throw std::runtime_error(
        "the PyTorch peer failed (needs python3-torch, python3-torchvision): " + cmd.str() + "\n" +
        output);
  }
  return r;
}

}  // namespace

int run(int argc, char** argv) {
  std::string cases_text = "alexnet-torchvision:32,alexnet-torchvision:64,alexnet-mini:128";
  std::string backend_name = "onednn";
  std::string allocator = "tuned";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int warmup = 2, steps = 5, rounds = 2;
  bool peer = true;
  std::string precision = "fp32", input = "host";
  PeerSettings peer_settings;
  po::options_description options("Options");
  options.add_options()("help", "print this help")(
      "cases", po::value(&cases_text)->default_value(cases_text),
      "ARCH:BATCH,... to measure (alexnet-mini on 1x28x28 and 10 classes, the others on "
      "ImageNet's shape and 1000 classes)")(
      "backend", po::value(&backend_name)->default_value(backend_name), "our backend")(
      "threads", po::value(&threads)->default_value(threads),
      "compute threads, for both (OpenMP for oneDNN, torch.set_num_threads)")(
      "allocator", po::value(&allocator)->default_value(allocator),
      "glibc malloc for both: 'tuned' keeps freed memory (no mmap for large blocks, no trim), "
      "'default' leaves glibc's settings")("warmup", po::value(&warmup)->default_value(warmup),
                                           "untimed steps before each measure")(
      "steps", po::value(&steps)->default_value(steps), "timed steps per measure")(
      "rounds", po::value(&rounds)->default_value(rounds),
      "rounds of ours-then-PyTorch; the best round is reported")("no-peer", po::bool_switch(),
                                                                 "skip PyTorch")(
      "precision", po::value(&precision)->default_value(precision),
      "cuda: fp32 | bf16 | fp16 for ours; the peer uses autocast with the same 16-bit type")(
      "tf32", po::bool_switch(&peer_settings.tf32),
      "cuda, fp32: TF32 tensor cores for both (ours: --tf32; torch: allow_tf32 for cuDNN and "
      "matmul)")("input", po::value(&input)->default_value(input),
                 "host: copy the batch in every step (as the loader's); device: keep it there "
                 "(as the peer's)")(
      "python", po::value(&peer_settings.python)->default_value(peer_settings.python),
      "the Python with torch and torchvision for the peer");
  po::variables_map vm;
  std::vector<Case> cases;
  try {
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
    peer = !vm["no-peer"].as<bool>();
    cases = parse_cases(cases_text);
    if (allocator != "tuned" && allocator != "default") {
      throw std::invalid_argument("--allocator must be 'tuned' or 'default'");
    }
    if (input != "host" && input != "device") {
      throw std::invalid_argument("--input must be 'host' or 'device'");
    }
    if (threads < 1 || warmup < 0 || steps < 1 || rounds < 1) {
      throw std::invalid_argument("--threads, --steps and --rounds must be positive");
    }
  } catch (const std::invalid_argument& e) {
    // A bad --cases, --allocator, ... value (parse_cases and the checks above).
    throw alexnet::io::OptionError(e.what());
  }
  if (vm.count("help")) {
    std::cout << "bench-train: training and forward images/s against PyTorch\n" << options;
    return 0;
  }

  // The same settings for both: mallopt here, the same values as glibc tunables for the child.
  std::string allocator_env = "env -u GLIBC_TUNABLES";
  if (allocator == "tuned") {
    constexpr int kTrimThreshold = 1 << 30;
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
    allocator_env = "GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=" +
                    std::to_string(kTrimThreshold);
  }
  omp_set_num_threads(threads);
  allocator_env += " OMP_NUM_THREADS=" + std::to_string(threads);

  const auto layers_file =
      std::filesystem::temp_directory_path() / ("bench-train-layers-" + std::to_string(::getpid()));
  try {
    BackendOptions backend_options;
    backend_options.precision = parse_precision(precision);
    backend_options.allow_tf32 = peer_settings.tf32;
    std::unique_ptr<Backend> backend = make_backend(backend_name, backend_options);
    if (!backend->host_memory()) peer_settings.device = "cuda";
    peer_settings.precision = precision;
    std::printf(
        "bench-train: %s backend (%s%s), peer on %s, batch input from the %s, %d threads, %s "
        "allocator, %d warm-up + %d timed steps, best of %d rounds\n\n",
        backend->name().c_str(), precision.c_str(), peer_settings.tf32 ? ", TF32" : "",
        peer_settings.device.c_str(), input.c_str(), threads, allocator.c_str(), warmup, steps,
        rounds);
    std::printf("| %-20s | %5s | %11s | %11s | %6s | %11s | %11s | %6s |\n", "model", "batch",
                "train ours", "train torch", "ratio", "fwd ours", "fwd torch", "ratio");
    std::printf(
        "|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(22, '-').c_str(), std::string(7, '-').c_str(),
        std::string(13, '-').c_str(), std::string(13, '-').c_str(), std::string(8, '-').c_str(),
        std::string(13, '-').c_str(), std::string(13, '-').c_str(), std::string(8, '-').c_str());
    std::fflush(stdout);
    for (const Case& c : cases) {
      const ModelSpec spec = spec_for(c.arch);
      Rates ours, torch;
      for (int round = 0; round < rounds; ++round) {
        const Rates o = measure_ours(spec, *backend, c.batch, warmup, steps, input == "device");
        ours.train = std::max(ours.train, o.train);
        ours.forward = std::max(ours.forward, o.forward);
        if (!peer) continue;
        const Rates t = measure_torch(spec, c.batch, threads, warmup, steps, allocator_env,
                                      layers_file, peer_settings);
        torch.train = std::max(torch.train, t.train);
        torch.forward = std::max(torch.forward, t.forward);
      }
      auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
      std::printf("| %-20s | %5lld | %11.1f | %11.1f | %5.2fx | %11.1f | %11.1f | %5.2fx |\n",
                  c.arch.c_str(), static_cast<long long>(c.batch), ours.train, torch.train,
                  ratio(ours.train, torch.train), ours.forward, torch.forward,
                  ratio(ours.forward, torch.forward));
      std::fflush(stdout);
    }
    std::printf("\nimages/s; ratio = ours / PyTorch (higher is better)\n");
  } catch (...) {
    std::filesystem::remove(layers_file);  // then run_cli reports it
    throw;
  }
  std::filesystem::remove(layers_file);
  return 0;
}

int main(int argc, char** argv) {
  return alexnet::io::run_cli("bench-train", [&] { return run(argc, argv); });
}
