// Training on the GPU against training on the CPU: 200 steps of the same model, data, dropout
// masks and optimizer on the oneDNN backend and on the CUDA backend (fp32 with TF32 off, bf16, and
// fp16 with dynamic loss scaling), through the same TrainStep the job uses. The loss curves must
// track: fp32 step by step, 16-bit over windows. Runs as one MPI process (singleton); skips without
// a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "tests/gpu/gpu_test.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {
namespace {

constexpr int64_t kBatch = 32;
constexpr int kSteps = 200;

// A learnable problem: each class has its own fixed image pattern; a sample is its pattern plus
// noise. Images NCHW.
struct Data {
  int64_t channels, size, classes;
  std::vector<float> images;  // [samples, C, H, W]
  std::vector<int32_t> labels;
};

Data make_data(int64_t channels, int64_t size, int64_t classes, int64_t samples) {
  Data d{channels, size, classes, {}, {}};
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t pixels = channels * size * size;
  std::vector<float> patterns(static_cast<size_t>(classes * pixels));
  for (float& p : patterns) p = normal(rng);
  for (int64_t s = 0; s < samples; ++s) {
    const auto label = static_cast<int32_t>(rng() % static_cast<uint32_t>(classes));
    d.labels.push_back(label);
    for (int64_t i = 0; i < pixels; ++i) {
      d.images.push_back(0.6f * patterns[static_cast<size_t>(label * pixels + i)] + normal(rng));
    }
  }
  return d;
}

struct TrainingRun {
  std::vector<double> losses;
  int64_t skipped = 0;
  double final_scale = 1;
};

TrainingRun train(const std::string& backend_name, Precision precision, const std::string& arch,
                  const Data& data) {
  BackendOptions options;
  options.precision = precision;
  options.allow_tf32 = false;
  std::unique_ptr<Backend> backend = make_backend(backend_name, options);
  const ModelSpec spec = build_model(arch, data.classes, data.channels, data.size, data.size);
  Model model(spec, *backend, kBatch);
  std::vector<float> params(static_cast<size_t>(spec.param_floats));
  std::vector<float> buffers(static_cast<size_t>(std::max<int64_t>(spec.buffer_floats, 1)));
  initialize_parameters(spec, 1234, params.data(), buffers.data());
  backend->copy_to_device(model.params(), params.data(), params.size() * 4);
  backend->copy_to_device(model.buffers(), buffers.data(),
                          static_cast<size_t>(spec.buffer_floats) * 4);

  OptimizerConfig oc;
  oc.name = "sgd";
  oc.momentum = 0.9;
  oc.weight_decay = 5e-4;
  Optimizer optimizer(oc, static_cast<size_t>(spec.param_floats), {}, backend.get());
  comm::MpiCommunicator comm;  // one rank: the all-reduce is the identity
  TrainStepConfig tc;
  tc.loss_scaling = precision == Precision::kFloat16;
  TrainStep step(model, optimizer, comm, tc);

  const int64_t pixels = data.channels * data.size * data.size;
  const auto samples = static_cast<int64_t>(data.labels.size());
  auto input = backend->allocate(static_cast<size_t>(kBatch * pixels) * 4);
  auto labels = backend->allocate(static_cast<size_t>(kBatch) * 4);
  TrainingRun run;
  for (int s = 0; s < kSteps; ++s) {
    const int64_t first = (s * kBatch) % (samples - kBatch + 1);
    std::vector<float> nchw(data.images.begin() + first * pixels,
                            data.images.begin() + (first + kBatch) * pixels);
    const std::vector<float> x =
        testing::to_backend(*backend, nchw, kBatch, data.channels, data.size, data.size);
    backend->copy_to_device(input.get(), x.data(), x.size() * 4);
    backend->copy_to_device(labels.get(), data.labels.data() + first, kBatch * 4);
    DropoutKey key;
    key.seed = 99;
    key.step = static_cast<uint64_t>(s);
    const LossResult r = step.run(static_cast<const float*>(input.get()),
                                  static_cast<const int32_t*>(labels.get()), key, 0.01);
    EXPECT_TRUE(std::isfinite(r.loss)) << backend_name << " step " << s;
    run.losses.push_back(r.loss);
    run.skipped += step.last_step_skipped();
  }
  run.final_scale = step.loss_scaler().scale();
  return run;
}

double window_mean(const std::vector<double>& v, size_t begin, size_t count) {
  double s = 0;
  for (size_t i = begin; i < begin + count; ++i) s += v[i];
  return s / static_cast<double>(count);
}

// The GPU run's losses against the CPU run's: every step within `step_tolerance` (relative), and
// the GPU run learning (the last 20 steps' mean well below the first step's loss). alexnet-paper,
// with the paper's initialization, is still on its plateau after 200 steps at this learning rate
// (checked on the CPU): there the curves must track, without the learning check.
void expect_tracks(const TrainingRun& gpu, const TrainingRun& cpu, double step_tolerance,
                   double window_tolerance, bool learns) {
  ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
  for (size_t i = 0; i < gpu.losses.size(); ++i) {
    EXPECT_NEAR(gpu.losses[i], cpu.losses[i], step_tolerance * std::max(1.0, cpu.losses[i]))
        << "step " << i;
  }
  for (size_t w = 0; w + 20 <= gpu.losses.size(); w += 20) {
    const double g = window_mean(gpu.losses, w, 20), c = window_mean(cpu.losses, w, 20);
    EXPECT_NEAR(g, c, window_tolerance * std::max(1.0, c)) << "steps " << w << " to " << w + 19;
  }
  const double last = window_mean(gpu.losses, gpu.losses.size() - 20, 20);
  if (learns) {
    EXPECT_LT(last, 0.5 * gpu.losses.front()) << "the GPU run did not learn";
  }
}

class GpuTraining : public ::testing::TestWithParam<std::string> {
 protected:
  bool mini() const { return GetParam() == "alexnet-mini"; }
  const Data& data() {
    static std::map<std::string, Data> made;
    auto it = made.find(GetParam());
    if (it == made.end()) {
      it =
          made.emplace(GetParam(), mini() ? make_data(1, 28, 10, 2048) : make_data(3, 67, 10, 2048))
              .first;
    }
    return it->second;
  }
  // The CPU run, fp32 on oneDNN, made once per variant for all precisions.
  const TrainingRun& cpu_run() {
    static std::map<std::string, TrainingRun> runs;
    auto it = runs.find(GetParam());
    if (it == runs.end()) {
      it = runs.emplace(GetParam(), train("onednn", Precision::kFloat32, GetParam(), data())).first;
    }
    return it->second;
  }
  TrainingRun gpu_run(Precision precision) { return train("cuda", precision, GetParam(), data()); }
};

TEST_P(GpuTraining, Fp32LossTracksTheCpuStepByStep) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  expect_tracks(gpu_run(Precision::kFloat32), cpu_run(), 2e-2, 1e-2, mini());
}

TEST_P(GpuTraining, Bf16LossTracksTheCpuOverWindows) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  expect_tracks(gpu_run(Precision::kBFloat16), cpu_run(), 0.25, 0.1, mini());
}

TEST_P(GpuTraining, Fp16WithLossScalingTracksTheCpu) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  const TrainingRun gpu = gpu_run(Precision::kFloat16);
  // GradScaler's start (2^16) overflows in the first steps and backs off; after that few skips.
  EXPECT_LT(gpu.skipped, 20);
  EXPECT_GT(gpu.final_scale, 1.0);
  // Skipped steps shift the trajectory by a step or two: looser than bf16.
  expect_tracks(gpu, cpu_run(), 0.3, 0.12, mini());
}

// alexnet-paper at 67 px: grouped convs, LRN, overlapping pools, dropout; alexnet-mini: batch norm.
INSTANTIATE_TEST_SUITE_P(Variants, GpuTraining, ::testing::Values("alexnet-paper", "alexnet-mini"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace alexnet::trainer
