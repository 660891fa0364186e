// alexnet-train: single-process training over the HDF5 loader on a CPU backend, validation,
// and a weights file at the end (the data-parallel MPI job builds on this loop).
// Exit status: 0 done; 2 bad input or options; 1 any other failure.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/error.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/evaluate.h"
#include "trainer/lr_schedule.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_options.h"
#include "trainer/weights_file.h"

using namespace alexnet;
using namespace alexnet::trainer;
using Clock = std::chrono::steady_clock;

namespace {

// alexnet-mini takes the dataset's image size; the full-size variants their own input.
ModelSpec model_for(const TrainOptions& o, const io::DatasetMeta& m) {
  const bool mini = o.arch == "alexnet-mini";
  return build_model(o.arch, m.num_classes, m.channels, mini ? m.height : 0, mini ? m.width : 0);
}

std::vector<DecayRange> decay_ranges(const ModelSpec& spec) {
  std::vector<DecayRange> ranges;
  size_t covered = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      if (p.is_buffer) continue;
      const auto offset = static_cast<size_t>(p.offset);
      if (offset > covered) ranges.push_back({covered, offset - covered, false});  // padding
      ranges.push_back({offset, static_cast<size_t>(p.numel()), p.weight_decay});
      covered = offset + static_cast<size_t>(p.numel());
    }
  }
  const auto size = static_cast<size_t>(spec.param_floats);
  if (covered < size) ranges.push_back({covered, size - covered, false});
  return ranges;
}

void print_eval(const char* what, int64_t epoch, int64_t step, const EvalResult& r) {
  std::printf("%s epoch %lld step %lld: loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)\n", what,
              static_cast<long long>(epoch), static_cast<long long>(step), r.loss, 100 * r.top1,
              100 * r.top5, static_cast<long long>(r.samples));
  std::fflush(stdout);
}

int train(const TrainOptions& o) {
  if (o.train_files.empty()) throw io::DataError("no training data: set data.train");
  io::Dataset train_set = io::Dataset::open(o.train_files);
  std::unique_ptr<io::Dataset> val_set;
  if (!o.val_files.empty()) val_set = std::make_unique<io::Dataset>(io::Dataset::open(o.val_files));
  const io::DatasetMeta& m = train_set.meta();
  if (val_set &&
      (val_set->meta().num_classes != m.num_classes || val_set->meta().channels != m.channels)) {
    throw io::DataError("validation data disagrees with the training data on classes or channels");
  }
  ModelSpec spec = model_for(o, m);
  std::unique_ptr<Backend> backend = make_backend(o.backend);
  Model model(spec, *backend, o.batch_size);
  std::vector<float> params(static_cast<size_t>(spec.param_floats));
  std::vector<float> buffers(static_cast<size_t>(spec.buffer_floats));
  initialize_parameters(spec, o.seed, params.data(), buffers.data());
  backend->copy_to_device(model.params(), params.data(), params.size() * 4);
  backend->copy_to_device(model.buffers(), buffers.data(), buffers.size() * 4);

  io::LoaderConfig lc;
  lc.batch_size = o.batch_size;
  lc.sampler.seed = o.seed;
  lc.sampler.shuffle = true;
  lc.drop_last = true;
  lc.workers = o.data_workers;
  lc.epochs = o.epochs;
  lc.augment.crop_height = spec.height;
  lc.augment.crop_width = spec.width;
  lc.augment.random_crop = o.random_crop;
  lc.augment.flip = o.flip;
  lc.augment.pad = o.pad;
  lc.augment.lighting_std = static_cast<float>(o.lighting);
  lc.augment.mean.assign(m.mean.begin(), m.mean.end());
  lc.augment.std.assign(m.std.begin(), m.std.end());
  lc.augment.layout = backend->activation_layout() == ActivationLayout::kNHWC ? io::Layout::kNHWC
                                                                              : io::Layout::kNCHW;
  io::Loader loader(train_set, lc);
  const int64_t steps_per_epoch = loader.steps_per_epoch();

  OptimizerConfig oc;
  oc.name = o.optimizer;
  oc.momentum = o.momentum;
  oc.nesterov = o.nesterov;
  oc.momentum_rule = o.momentum_rule;
  oc.weight_decay = o.weight_decay;
  oc.beta1 = o.beta1;
  oc.beta2 = o.beta2;
  oc.clip_grad_norm = o.clip_grad_norm;
  Optimizer optimizer(oc, params.size(), decay_ranges(spec));
  LrScheduleConfig sc;
  sc.name = o.schedule;
  sc.base_lr = o.lr;
  sc.steps_per_epoch = steps_per_epoch;
  sc.gamma = o.gamma;
  sc.step_epochs = o.step_epochs;
  if (!o.milestones.empty()) sc.milestones = parse_milestones(o.milestones);
  sc.total_steps = o.max_steps > 0 ? std::min(o.max_steps, steps_per_epoch * o.epochs)
                                   : steps_per_epoch * o.epochs;
  sc.min_lr = o.min_lr;
  sc.warmup_steps = o.warmup_steps;
  sc.plateau_factor = o.gamma;
  sc.plateau_patience = o.plateau_patience;
  LrSchedule schedule(sc);

  std::printf(
      "alexnet-train: %s on %s, %lld parameters, %lld training images (%lld steps an "
      "epoch of %lld), %s backend\n",
      spec.arch.c_str(), m.source.empty() ? "the data" : m.source.c_str(),
      static_cast<long long>(spec.num_trainable), static_cast<long long>(train_set.size()),
      static_cast<long long>(steps_per_epoch), static_cast<long long>(o.batch_size),
      backend->name().c_str());
  std::fflush(stdout);

  auto labels = backend->allocate(static_cast<size_t>(o.batch_size) * sizeof(int32_t));
  auto input = backend->allocate(static_cast<size_t>(model.input_elements()) * sizeof(float));
  float* grads = model.grads();
  float* weights = model.params();
  auto validate = [&](int64_t epoch, int64_t step) {
    if (!val_set) return;
    io::Loader val_loader(*val_set, eval_loader_config(model, *val_set, *backend, o.data_workers));
    EvalResult r = evaluate(model, *backend, val_loader);
    print_eval("validation", epoch, step, r);
    schedule.report(1.0 - r.top1);  // only the plateau schedule listens
  };

  int64_t step = 0;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  auto window_start = Clock::now();
  while (const io::Batch* b = loader.next()) {
    if (o.max_steps > 0 && step >= o.max_steps) break;
    backend->copy_to_device(input.get(), b->images,
                            static_cast<size_t>(model.input_elements()) * sizeof(float));
    backend->copy_to_device(labels.get(), b->labels, static_cast<size_t>(b->size) * 4);
    DropoutKey key;
    key.seed = o.seed;
    key.step = static_cast<uint64_t>(step);
    model.forward(static_cast<const float*>(input.get()), true, key);
    LossResult lr = model.loss(static_cast<const int32_t*>(labels.get()), true);
    if (!std::isfinite(lr.loss)) {
      throw std::runtime_error("loss is " + std::to_string(lr.loss) + " at step " +
                               std::to_string(step) + ": stopping (lower optim.lr?)");
    }
    model.backward();
    // CPU backends: parameters and gradients are host memory, updated in place.
    std::span<float> p(weights, static_cast<size_t>(spec.param_floats));
    std::span<float> g(grads, static_cast<size_t>(spec.param_floats));
    if (o.clip_grad_norm > 0) clip_grad_norm(g, o.clip_grad_norm);
    const double rate = schedule.lr_at(step);
    optimizer.step(p, g, rate);
    loss_sum += lr.loss * static_cast<double>(b->size);
    correct += lr.top1;
    seen += b->size;
    ++step;
    if (o.log_every > 0 && step % o.log_every == 0) {
      double seconds = std::chrono::duration<double>(Clock::now() - window_start).count();
      std::printf("epoch %lld step %lld/%lld: loss %.4f top-1 %.2f%% lr %.5g %.1f img/s\n",
                  static_cast<long long>(b->epoch), static_cast<long long>(b->step + 1),
                  static_cast<long long>(steps_per_epoch), loss_sum / static_cast<double>(seen),
                  100.0 * static_cast<double>(correct) / static_cast<double>(seen), rate,
                  static_cast<double>(seen) / seconds);
      std::fflush(stdout);
      loss_sum = 0;
      correct = seen = 0;
      window_start = Clock::now();
    }
    const bool epoch_end = b->step + 1 == b->steps_in_epoch;
    if ((o.val_every > 0 && step % o.val_every == 0) || epoch_end) validate(b->epoch, step);
  }

  std::filesystem::create_directories(o.run_dir);
  backend->copy_to_host(params.data(), model.params(), params.size() * 4);
  backend->copy_to_host(buffers.data(), model.buffers(), buffers.size() * 4);
  const std::string path = o.run_dir + "/weights.h5";
  save_weights(path, spec, params, buffers, config_text(o));
  std::printf("alexnet-train: %lld steps; weights written to %s\n", static_cast<long long>(step),
              path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    TrainOptions o;
    if (!parse_train_options(argc, argv, o)) return 0;
    if (o.print_config) {
      std::cout << config_text(o);
      return 0;
    }
    if (o.summary) {
      // With a dataset: its classes and channels; without: ImageNet's 1000 and RGB.
      ModelSpec spec = build_model(o.arch, 1000, 3);
      if (!o.train_files.empty()) spec = model_for(o, io::Dataset::open(o.train_files).meta());
      std::cout << summary_table(spec);
      return 0;
    }
    return train(o);
  } catch (const io::DataError& e) {
    std::cerr << "alexnet-train: error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "alexnet-train: bad option: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "alexnet-train: error: " << e.what() << "\n";
    return 1;
  }
}
