// The optimizers and lr schedules against torch 1.13 (tests/trainer/torch_optimizer_reference.py
// writes its trajectories for the same gradients), the paper's momentum rule against its
// equations in double, LARS and LAMB against NumPy in double (numpy_lars_lamb_reference.py), and
// what the trainer relies on: no allocation in a step, bit-identical resume, weight decay ranges,
// piecewise updates, clipping, and one-line config errors.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <ostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/subprocess.h"
#include "trainer/lr_schedule.h"
#include "trainer/optimizer.h"

// Every allocation in this binary is counted, so that a test can show a step makes none.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

// Not inlined: GCC would then see a new-expression's pointer reach free() and warn.
[[gnu::noinline]] void* operator new(std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace alexnet::trainer {
namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kScript = ALEXNET_SOURCE_DIR "/tests/trainer/torch_optimizer_reference.py";

// As in the script: tensors w1[500], b[31], w2[500], b without weight decay; 10 steps.
constexpr size_t kSize = 1031;
const std::vector<DecayRange> kDecayRanges = {{0, 500, true}, {500, 31, false}, {531, 500, true}};
constexpr int kSteps = 10;
constexpr double kMaxNorm = 2.0;
constexpr int64_t kStepsPerEpoch = 3;

// Errors are relative to the element, or to the array's RMS for elements near zero: a rounding
// error is relative to the operands, and an element that cancels to near zero keeps the absolute
// error of operands of the array's typical size.
//
// Float32 against torch's float32, which rounds the same operations in the same order but may
// fuse a multiply-add (its AVX2 kernels use FMA) or sum a norm in another order: an operation
// may come out an ulp (6e-8 relative) apart, and such differences, a few per step, mostly cancel
// over ten steps (under 3e-7 here). 1e-6 leaves room for that and is far below what a real
// mistake does: eps inside the sqrt, a missed decay range or a wrong bias correction each show
// 1e-5 or more.
constexpr double kFloatTolerance = 1e-6;
// Float32 against exact (double) arithmetic: every operation rounds, and ten steps add about two
// roundings each to a state that is carried on, so the worst case is near 10 * 2 * 6e-8.
constexpr double kExactTolerance = 2e-6;
// Learning rates are doubles on both sides; torch steps recursive forms (lr *= ratio each step)
// where we use closed forms, which drift apart by an ulp or so per step over a few dozen steps.
constexpr double kLrTolerance = 1e-12;

using test::read_text;
using test::run;
using test::shell_quote;

// The script's arrays, computed once per test binary (importing torch takes a second or two);
// `error` says why they are not there.
struct Reference {
  std::map<std::string, std::vector<double>> arrays;
  std::string error;

  const std::vector<double>& at(const std::string& key) const {
    auto it = arrays.find(key);
    if (it == arrays.end()) throw std::runtime_error("the torch reference has no array " + key);
    return it->second;
  }
  std::vector<float> floats(const std::string& key) const {
    const std::vector<double>& a = at(key);
    return {a.begin(), a.end()};  // exact: the script wrote floats with 9 digits
  }
};

// Parses the script's output: one array a line, "KEY v1 v2 ...".
void parse_reference(const std::string& output, Reference& ref) {
  std::ifstream in(output);
  std::string line, key, token;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    fields >> key;
    std::vector<double>& values = ref.arrays[key];
    // strtod, not operator>>: it reads "nan".
    while (fields >> token) values.push_back(std::strtod(token.c_str(), nullptr));
  }
  if (ref.arrays.empty()) ref.error = "the torch reference wrote nothing to " + output;
}

Reference load_reference() {
  Reference ref;
  // Under CTest a fixture runs the script once for all tests (each test is its own process).
  if (const char* file = std::getenv("ALEXNET_TORCH_OPTIMIZER_REFERENCE");
      file != nullptr && *file != 0) {
    if (!std::filesystem::exists(file)) {
      ref.error = std::string("ALEXNET_TORCH_OPTIMIZER_REFERENCE=") + file +
                  " does not exist (the torch_optimizer_reference fixture failed?)";
    } else {
      parse_reference(file, ref);
    }
    return ref;
  }
  std::string dir = (std::filesystem::temp_directory_path() / "alexnet-optimizer-XXXXXX").string();
  if (::mkdtemp(dir.data()) == nullptr) {
    ref.error = "mkdtemp failed: " + dir;
    return ref;
  }
  const std::string log = dir + "/python.log", output = dir + "/reference.txt";
  // Not a skip: without torch this suite would silently stop checking against PyTorch.
  if (!std::filesystem::exists(kPython)) {
    ref.error = kPython + " is missing; install python3 with python3-torch (PyTorch 1.13)";
  } else if (run(shell_quote(kPython) + " -c 'import torch'", log) != 0) {
    ref.error = kPython + " cannot import torch (install python3-torch):\n" + read_text(log);
  } else if (!std::filesystem::exists(kScript)) {
    ref.error = kScript + " is missing";
  } else {
    const std::string command =
        shell_quote(kPython) + " " + shell_quote(kScript) + " " + shell_quote(output);
    if (run(command, log) != 0) {
      ref.error = "the torch reference failed: " + command + "\n" + read_text(log);
    }
  }
  if (ref.error.empty()) parse_reference(output, ref);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return ref;
}

const Reference& reference() {
  static const Reference ref = load_reference();
  return ref;
}

// The largest error of got[i] against want[i], relative to max(|want[i]|, rms(want)).
struct Worst {
  double error = 0;
  size_t index = 0;
  double got = 0, want = 0;
};

template <typename T>
Worst worst_error(std::span<const T> got, std::span<const double> want) {
  double squares = 0;
  for (double w : want) squares += w * w;
  const double rms = std::sqrt(squares / static_cast<double>(std::max<size_t>(1, want.size())));
  Worst worst;
  for (size_t i = 0; i < want.size(); ++i) {
    double g = static_cast<double>(got[i]);
    double e = std::abs(g - want[i]) / std::max(std::abs(want[i]), rms);
    if (!(e <= worst.error)) worst = {e, i, g, want[i]};  // NaN counts as the worst
  }
  return worst;
}

template <typename T>
void expect_close(std::span<const T> got, std::span<const double> want, double tolerance,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  Worst w = worst_error(got, want);
  EXPECT_LE(w.error, tolerance) << what << ": element " << w.index << " is " << w.got
                                << ", expected " << w.want;
}
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tolerance,
                  const std::string& what) {
  expect_close(std::span<const float>(got), std::span<const double>(want), tolerance, what);
}

template <typename T>
bool bit_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// ---- Against torch.optim ------------------------------------------------------------------------

struct TorchCase {
  std::string name;
  OptimizerConfig config;
};

std::vector<TorchCase> torch_cases() {
  OptimizerConfig sgd{.name = "sgd", .momentum = 0.9, .weight_decay = 5e-4};
  OptimizerConfig nesterov = sgd;
  nesterov.nesterov = true;
  OptimizerConfig adam{.name = "adam", .weight_decay = 5e-4};
  OptimizerConfig adamw{.name = "adamw", .weight_decay = 0.05};
  OptimizerConfig clip = sgd;
  clip.clip_grad_norm = kMaxNorm;
  return {{"sgd", sgd},   {"nesterov", nesterov}, {"sgd_lr_change", sgd},
          {"adam", adam}, {"adamw", adamw},       {"sgd_clip", clip}};
}

// gtest prints a parameter that fails; the name says it all.
void PrintTo(const TorchCase& c, std::ostream* os) { *os << c.name; }

// torch's state names for ours.
std::string torch_state_name(const std::string& ours) {
  if (ours == "momentum") return "momentum_buffer";
  if (ours == "adam_m") return "exp_avg";
  if (ours == "adam_v") return "exp_avg_sq";
  return "(torch has no " + ours + ")";
}

// Replays the reference's gradients through an optimizer; returns the parameters after each step.
std::vector<std::vector<float>> replay(Optimizer& opt, const std::vector<double>& lrs,
                                       std::vector<double>* norms = nullptr) {
  const Reference& ref = reference();
  std::vector<float> params = ref.floats("init");
  std::vector<std::vector<float>> trajectory;
  for (int k = 0; k < kSteps; ++k) {
    std::vector<float> grads = ref.floats("grad." + std::to_string(k));
    if (opt.config().clip_grad_norm > 0) {
      double norm = clip_grad_norm(grads, opt.config().clip_grad_norm);
      if (norms) norms->push_back(norm);
    }
    opt.step(params, grads, lrs[static_cast<size_t>(k)]);
    trajectory.push_back(params);
  }
  return trajectory;
}

class TorchOptimizer : public ::testing::TestWithParam<TorchCase> {
 protected:
  void SetUp() override { ASSERT_TRUE(reference().error.empty()) << reference().error; }
};

TEST_P(TorchOptimizer, TrajectoryAndStateMatchTorch) {
  const TorchCase& c = GetParam();
  const Reference& ref = reference();
  Optimizer opt(c.config, kSize, kDecayRanges);
  std::vector<double> norms;
  auto trajectory = replay(opt, ref.at(c.name + ".lr"), &norms);
  for (int k = 0; k < kSteps; ++k) {
    expect_close(trajectory[static_cast<size_t>(k)], ref.at(c.name + ".param." + std::to_string(k)),
                 kFloatTolerance, c.name + " parameters after step " + std::to_string(k));
  }
  EXPECT_EQ(opt.steps(), kSteps);
  for (const StateArray& a : opt.state()) {
    expect_close(std::span<const float>(a.values),
                 ref.at(c.name + ".state." + torch_state_name(a.name)), kFloatTolerance,
                 c.name + " state " + a.name);
  }
  if (c.config.clip_grad_norm > 0) {
    // Our norm accumulates in double, torch's in float: float rounding, as above.
    expect_close(std::span<const double>(norms), ref.at(c.name + ".norm"), kFloatTolerance,
                 "clip_grad_norm's norms");
    const std::vector<double>& torch_norms = ref.at(c.name + ".norm");
    int clipped = static_cast<int>(std::count_if(torch_norms.begin(), torch_norms.end(),
                                                 [](double n) { return n > kMaxNorm; }));
    EXPECT_GT(clipped, 0) << "the case should clip some steps";
    EXPECT_LT(clipped, kSteps) << "and leave others alone";
  }
}

INSTANTIATE_TEST_SUITE_P(Torch, TorchOptimizer, ::testing::ValuesIn(torch_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

TEST(TorchOptimizerPaperRule, DiffersFromTorchAfterTheLrChange) {
  ASSERT_TRUE(reference().error.empty()) << reference().error;
  const Reference& ref = reference();
  OptimizerConfig config{
      .name = "sgd", .momentum = 0.9, .momentum_rule = "paper", .weight_decay = 5e-4};
  Optimizer opt(config, kSize, kDecayRanges);
  auto trajectory = replay(opt, ref.at("sgd_lr_change.lr"));
  // Same as torch while the lr is constant (steps 0-4), then not: torch's new lr also scales the
  // momentum accumulated under the old one.
  for (int k = 0; k < 5; ++k) {
    expect_close(trajectory[static_cast<size_t>(k)],
                 ref.at("sgd_lr_change.param." + std::to_string(k)), kFloatTolerance,
                 "paper rule before the lr change, step " + std::to_string(k));
  }
  std::vector<float> last = trajectory.back();
  // The gap is about (0.01 - 0.001) * accumulated momentum ~ 1e-3 of the parameters' size: far
  // above rounding.
  EXPECT_GT(worst_error(std::span<const float>(last),
                        std::span<const double>(ref.at("sgd_lr_change.param.9")))
                .error,
            1e-4);
}

// ---- The paper's rule against its equations -----------------------------------------------------

std::vector<float> random_floats(size_t n, double scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng) * static_cast<float>(scale);
  return v;
}

// Krizhevsky et al. 2012, section 5, in double:
//   v_{i+1} = 0.9 v_i - 0.0005 eps w_i - eps <dL/dw>_i;   w_{i+1} = w_i + v_{i+1}
// with momentum mu, weight decay wd and learning rate eps.
struct PaperInDouble {
  std::vector<double> w, v;
  void step(const std::vector<float>& g, double mu, double wd, double lr) {
    for (size_t i = 0; i < w.size(); ++i) {
      v[i] = mu * v[i] - wd * lr * w[i] - lr * g[i];
      w[i] = w[i] + v[i];
    }
  }
};

// torch.optim.SGD's rule, in double.
struct PyTorchInDouble {
  std::vector<double> w, v;
  void step(const std::vector<float>& g, double mu, double wd, double lr) {
    for (size_t i = 0; i < w.size(); ++i) {
      v[i] = mu * v[i] + (g[i] + wd * w[i]);
      w[i] = w[i] - lr * v[i];
    }
  }
};

class PaperRule : public ::testing::Test {
 protected:
  static constexpr size_t kN = 257;
  static constexpr double kMu = 0.9, kWd = 5e-4;
  void SetUp() override {
    init_ = random_floats(kN, 1.0, 1);
    for (int k = 0; k < kSteps; ++k) grads_.push_back(random_floats(kN, 0.1, 100 + k));
  }
  // The rule in float, through Optimizer; returns the final parameters and the state array.
  std::pair<std::vector<float>, std::vector<float>> run_ours(const std::string& rule,
                                                             const std::vector<double>& lrs) {
    OptimizerConfig config{
        .name = "sgd", .momentum = kMu, .momentum_rule = rule, .weight_decay = kWd};
    Optimizer opt(config, kN);
    std::vector<float> params = init_;
    for (int k = 0; k < kSteps; ++k) {
      std::vector<float> g = grads_[static_cast<size_t>(k)];
      opt.step(params, g, lrs[static_cast<size_t>(k)]);
    }
    std::span<float> state = opt.state().at(0).values;
    return {params, {state.begin(), state.end()}};
  }
  template <typename Rule>
  Rule run_double(const std::vector<double>& lrs) {
    Rule r{{init_.begin(), init_.end()}, std::vector<double>(kN, 0.0)};
    for (int k = 0; k < kSteps; ++k) {
      r.step(grads_[static_cast<size_t>(k)], kMu, kWd, lrs[static_cast<size_t>(k)]);
    }
    return r;
  }
  std::vector<float> init_;
  std::vector<std::vector<float>> grads_;
};

TEST_F(PaperRule, FollowsThePapersEquations) {
  std::vector<double> lrs = {0.01, 0.01, 0.01, 0.005, 0.005, 0.001, 0.001, 0.02, 0.02, 0.02};
  auto [params, velocity] = run_ours("paper", lrs);
  PaperInDouble want = run_double<PaperInDouble>(lrs);
  expect_close(params, want.w, kExactTolerance, "paper rule parameters");
  expect_close(velocity, want.v, kExactTolerance, "paper rule velocity");
}

TEST_F(PaperRule, EqualsThePyTorchRuleUpToScalingWhenTheLrIsConstant) {
  const double lr = 0.01;
  std::vector<double> lrs(kSteps, lr);
  auto [paper_params, velocity] = run_ours("paper", lrs);
  auto [torch_params, momentum] = run_ours("pytorch", lrs);
  PyTorchInDouble exact = run_double<PyTorchInDouble>(lrs);
  expect_close(torch_params, exact.w, kExactTolerance, "pytorch rule parameters");
  expect_close(paper_params, exact.w, kExactTolerance, "paper rule parameters, constant lr");
  expect_close(momentum, exact.v, kExactTolerance, "pytorch rule momentum");
  // v_paper = -lr * v_pytorch.
  std::vector<double> scaled(exact.v.size());
  for (size_t i = 0; i < scaled.size(); ++i) scaled[i] = -lr * exact.v[i];
  expect_close(velocity, scaled, kExactTolerance, "paper velocity against -lr * pytorch momentum");
}

TEST_F(PaperRule, DiffersFromThePyTorchRuleAfterAnLrChange) {
  std::vector<double> lrs = {0.01, 0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.001};
  auto [paper_params, velocity] = run_ours("paper", lrs);
  auto [torch_params, momentum] = run_ours("pytorch", lrs);
  PaperInDouble paper = run_double<PaperInDouble>(lrs);
  PyTorchInDouble pytorch = run_double<PyTorchInDouble>(lrs);
  expect_close(paper_params, paper.w, kExactTolerance, "paper rule");
  expect_close(torch_params, pytorch.w, kExactTolerance, "pytorch rule");
  // Each follows its own equations, and those part by far more than rounding.
  Worst gap = worst_error(std::span<const float>(paper_params), std::span<const double>(pytorch.w));
  EXPECT_GT(gap.error, 1e-4);
}

// ---- LARS and LAMB against their papers' formulas in NumPy (float64) ---------------------------

// As numpy_lars_lamb_reference.py: a conv weight [300] and bias [17], batch norm's weight and bias
// [12 each], fc weights [400] and [64] (the latter starting at zero), a bias [10]; the weights
// adapt, the rest (bias, batch norm) neither adapts nor decays. Five steps.
const std::vector<DecayRange> kLayers = {{0, 300, true},   {300, 17, false}, {317, 12, false},
                                         {329, 12, false}, {341, 400, true}, {741, 64, true},
                                         {805, 10, false}};
constexpr size_t kLayersSize = 815;
constexpr int kLayerSteps = 5;
// Float32 against float64: each step rounds a few operations per element (6e-8 each) and the
// trust ratio once more; measured at most 5e-7 (LAMB's m) over the five steps. A wrong ratio
// moves elements by far more: biases and batch norm not excluded, decay left out of LARS's
// denominator, or ratio 0 instead of 1 at a zero norm each moved some by 8e-2 to 2 when tried.
constexpr double kLayerwiseTolerance = 2e-6;

void expect_one_line_invalid_argument(const std::function<void()>& f, const std::string& part);

struct LayerwiseCase {
  std::string name;
  OptimizerConfig config;
};
void PrintTo(const LayerwiseCase& c, std::ostream* os) { *os << c.name; }

std::vector<LayerwiseCase> layerwise_cases() {
  OptimizerConfig lars{
      .name = "lars", .momentum = 0.9, .weight_decay = 5e-3, .trust_coefficient = 0.02};
  OptimizerConfig lamb{.name = "lamb", .weight_decay = 1e-2, .eps = 1e-6};
  OptimizerConfig lamb_no_decay = lamb;
  lamb_no_decay.weight_decay = 0;
  return {{"lars", lars}, {"lamb", lamb}, {"lamb_no_decay", lamb_no_decay}};
}

class LayerwiseVsNumPy : public ::testing::TestWithParam<LayerwiseCase> {
 protected:
  void SetUp() override { ASSERT_TRUE(reference().error.empty()) << reference().error; }
  // The trajectory through `update(range)` calls: whole layers in the given order per step.
  std::vector<std::vector<float>> run(const std::vector<DecayRange>& pieces) {
    const Reference& ref = reference();
    const LayerwiseCase& c = GetParam();
    opt_ = std::make_unique<Optimizer>(c.config, kLayersSize, kLayers);
    std::vector<float> params = ref.floats("layerwise.init");
    std::vector<std::vector<float>> trajectory;
    const std::vector<double>& lrs = ref.at(c.name + ".lr");
    for (int k = 0; k < kLayerSteps; ++k) {
      const std::vector<float> grads = ref.floats("layerwise.grad." + std::to_string(k));
      opt_->begin_step(lrs[static_cast<size_t>(k)]);
      for (const DecayRange& r : pieces) opt_->update(params, grads, r.offset, r.count);
      trajectory.push_back(params);
    }
    return trajectory;
  }
  std::unique_ptr<Optimizer> opt_;
};

TEST_P(LayerwiseVsNumPy, TrajectoryAndStateFollowThePaper) {
  const LayerwiseCase& c = GetParam();
  auto trajectory = run({{0, kLayersSize, true}});
  for (int k = 0; k < kLayerSteps; ++k) {
    expect_close(trajectory[static_cast<size_t>(k)],
                 reference().at(c.name + ".param." + std::to_string(k)), kLayerwiseTolerance,
                 c.name + " parameters after step " + std::to_string(k));
  }
  for (const StateArray& a : opt_->state()) {
    expect_close(std::span<const float>(a.values), reference().at(c.name + ".state." + a.name),
                 kLayerwiseTolerance, c.name + " state " + a.name);
  }
}

// Bucket by bucket, last layer first, as TrainStep updates: the same bits as one update.
TEST_P(LayerwiseVsNumPy, LayerByLayerInBackwardOrderEqualsOneUpdate) {
  auto whole = run({{0, kLayersSize, true}});
  auto buckets = run({{741, 74, true}, {317, 424, true}, {0, 317, true}});
  EXPECT_TRUE(bit_equal(whole.back(), buckets.back()));
}

INSTANTIATE_TEST_SUITE_P(NumPy, LayerwiseVsNumPy, ::testing::ValuesIn(layerwise_cases()),
                         [](const auto& param_info) { return param_info.param.name; });

// The reference is what the test holds us to: check that its cases reach the corners they are
// there for, and that the ratio is not 1 by accident (then LARS would be plain momentum SGD).
TEST(LayerwiseVsNumPy, TheCasesReachTheZeroNormsAndTheRatioMatters) {
  ASSERT_TRUE(reference().error.empty()) << reference().error;
  const Reference& ref = reference();
  auto norm_of = [](const std::vector<float>& x, size_t offset, size_t count) {
    return grad_norm(std::span<const float>(x).subspan(offset, count));
  };
  EXPECT_EQ(norm_of(ref.floats("layerwise.init"), 741, 64), 0) << "w3 starts at zero";
  EXPECT_EQ(norm_of(ref.floats("layerwise.grad.2"), 341, 400), 0) << "w2's gradient at step 2";
  // Momentum SGD (lr * local_lr replaced by lr) on the same data lands far from LARS.
  OptimizerConfig sgd{.name = "sgd", .momentum = 0.9, .weight_decay = 5e-3};
  Optimizer opt(sgd, kLayersSize, kLayers);
  std::vector<float> params = ref.floats("layerwise.init");
  for (int k = 0; k < kLayerSteps; ++k) {
    opt.step(params, ref.floats("layerwise.grad." + std::to_string(k)),
             ref.at("lars.lr")[static_cast<size_t>(k)]);
  }
  EXPECT_GT(
      worst_error(std::span<const float>(params), std::span<const double>(ref.at("lars.param.4")))
          .error,
      1e-2);
}

TEST(Layerwise, AnUpdateThatCutsALayerThrowsOneLine) {
  for (const LayerwiseCase& c : layerwise_cases()) {
    SCOPED_TRACE(c.name);
    Optimizer opt(c.config, kLayersSize, kLayers);
    std::vector<float> p = random_floats(kLayersSize, 1.0, 8),
                       g = random_floats(kLayersSize, 0.1, 9);
    opt.begin_step(0.1);
    expect_one_line_invalid_argument([&] { opt.update(p, g, 0, 150); }, "cuts the layer [0, 300)");
    // Ranges without decay may be cut: they have no norms.
    EXPECT_NO_THROW(opt.update(p, g, 300, 20));
    EXPECT_NO_THROW(opt.update(p, g, 320, 21));
  }
}

// ---- What the trainer relies on -----------------------------------------------------------------

std::vector<OptimizerConfig> all_configs() {
  OptimizerConfig plain{.name = "sgd", .momentum = 0, .weight_decay = 5e-4};
  OptimizerConfig sgd{.name = "sgd", .momentum = 0.9, .weight_decay = 5e-4};
  OptimizerConfig nesterov = sgd;
  nesterov.nesterov = true;
  OptimizerConfig paper = sgd;
  paper.momentum_rule = "paper";
  OptimizerConfig paper_nesterov = paper;
  paper_nesterov.nesterov = true;
  OptimizerConfig decoupled = sgd;
  decoupled.decoupled_weight_decay = true;
  OptimizerConfig adam{.name = "adam", .weight_decay = 5e-4};
  OptimizerConfig adamw{.name = "adamw", .weight_decay = 0.05};
  OptimizerConfig lars{.name = "lars", .momentum = 0.9, .weight_decay = 5e-4};
  OptimizerConfig lamb{.name = "lamb", .weight_decay = 1e-2};
  return {plain, sgd, nesterov, paper, paper_nesterov, decoupled, adam, adamw, lars, lamb};
}

// LARS and LAMB: norms per decay range (one layer each), so no cuts inside one.
bool layerwise(const OptimizerConfig& c) { return c.name == "lars" || c.name == "lamb"; }

std::string describe(const OptimizerConfig& c) {
  return c.name + " momentum " + std::to_string(c.momentum) + (c.nesterov ? " nesterov " : " ") +
         c.momentum_rule + (c.decoupled_weight_decay ? " decoupled" : "");
}

double lr_of_step(int k) { return 0.01 / (1 + k % 3); }  // changes every step

TEST(Optimizer, StepAllocatesNothingAndKeepsItsBuffers) {
  for (const OptimizerConfig& config : all_configs()) {
    SCOPED_TRACE(describe(config));
    Optimizer opt(config, kSize, kDecayRanges);
    std::vector<float> params = random_floats(kSize, 1.0, 2), grads = random_floats(kSize, 0.1, 3);
    std::vector<StateArray> before = opt.state();
    const size_t cut = layerwise(config) ? 500 : 100;  // a layer boundary for LARS and LAMB
    int64_t allocations = g_allocations.load();
    for (int k = 0; k < kSteps; ++k) {
      clip_grad_norm(grads, 1.0);
      opt.step(params, grads, lr_of_step(k));
      opt.begin_step(lr_of_step(k));
      opt.update(params, grads, 0, cut);
      opt.update(params, grads, cut, kSize - cut);
    }
    EXPECT_EQ(g_allocations.load() - allocations, 0);
    std::vector<StateArray> after = opt.state();
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      EXPECT_EQ(after[i].values.data(), before[i].values.data()) << after[i].name;
      EXPECT_EQ(after[i].values.size(), kSize) << after[i].name;
    }
  }
}

TEST(Optimizer, StateNamesFollowTheConfiguration) {
  auto names = [](const OptimizerConfig& c) {
    std::vector<std::string> n;
    for (const StateArray& a : Optimizer(c, 5).state()) n.push_back(a.name);
    return n;
  };
  auto configs = all_configs();
  EXPECT_EQ(names(configs[0]), std::vector<std::string>{});
  EXPECT_EQ(names(configs[1]), std::vector<std::string>{"momentum"});
  EXPECT_EQ(names(configs[3]), std::vector<std::string>{"velocity"});
  EXPECT_EQ(names(configs[6]), (std::vector<std::string>{"adam_m", "adam_v"}));
  EXPECT_EQ(names(configs[7]), (std::vector<std::string>{"adam_m", "adam_v"}));
  EXPECT_EQ(names(configs[8]), std::vector<std::string>{"lars_velocity"});
  EXPECT_EQ(names(configs[9]), (std::vector<std::string>{"lamb_m", "lamb_v"}));
}

TEST(Optimizer, ResumedRunContinuesBitIdentically) {
  const int kSaveAfter = 4;
  std::vector<std::vector<float>> grads;
  for (int k = 0; k < kSteps; ++k) grads.push_back(random_floats(kSize, 0.1, 200 + k));
  for (const OptimizerConfig& config : all_configs()) {
    SCOPED_TRACE(describe(config));
    std::vector<float> straight = random_floats(kSize, 1.0, 4), resumed = straight;
    Optimizer a(config, kSize, kDecayRanges);
    for (int k = 0; k < kSteps; ++k) a.step(straight, grads[static_cast<size_t>(k)], lr_of_step(k));

    // Save after kSaveAfter steps: parameters, state arrays (copied), step counter.
    std::map<std::string, std::vector<float>> saved;
    int64_t saved_steps;
    {
      Optimizer b(config, kSize, kDecayRanges);
      for (int k = 0; k < kSaveAfter; ++k) {
        b.step(resumed, grads[static_cast<size_t>(k)], lr_of_step(k));
      }
      for (const StateArray& s : b.state()) saved[s.name].assign(s.values.begin(), s.values.end());
      saved_steps = b.steps();
    }
    Optimizer c(config, kSize, kDecayRanges);
    for (const auto& [name, values] : saved) c.load_state(name, values);
    c.set_steps(saved_steps);
    for (int k = kSaveAfter; k < kSteps; ++k) {
      c.step(resumed, grads[static_cast<size_t>(k)], lr_of_step(k));
    }

    EXPECT_TRUE(bit_equal(straight, resumed));
    auto sa = a.state(), sc = c.state();
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_TRUE(std::equal(sa[i].values.begin(), sa[i].values.end(), sc[i].values.begin()))
          << sa[i].name;
    }
    EXPECT_EQ(a.steps(), c.steps());
  }
}

TEST(Optimizer, LoadStateRejectsUnknownNamesAndSizes) {
  Optimizer sgd(all_configs()[1], 8);
  std::vector<float> eight(8), seven(7);
  EXPECT_NO_THROW(sgd.load_state("momentum", eight));
  EXPECT_THROW(sgd.load_state("momentum", seven), std::invalid_argument);
  EXPECT_THROW(sgd.load_state("adam_m", eight), std::invalid_argument);
  // The paper's buffer is in other units: a checkpoint of one rule does not load into the other.
  EXPECT_THROW(sgd.load_state("velocity", eight), std::invalid_argument);
  EXPECT_THROW(sgd.set_steps(-1), std::invalid_argument);
}

TEST(Optimizer, WeightDecayLeavesExcludedRangesAlone) {
  for (const OptimizerConfig& config : all_configs()) {
    // Their exclusion is also from the trust ratio, whose layers differ between the three
    // layouts here: LayerwiseVsNumPy checks it against the papers.
    if (layerwise(config)) continue;
    SCOPED_TRACE(describe(config));
    OptimizerConfig no_decay = config;
    no_decay.weight_decay = 0;
    Optimizer masked(config, kSize, kDecayRanges), everywhere(config, kSize),
        nowhere(no_decay, kSize);
    const std::vector<float> init = random_floats(kSize, 1.0, 5);
    std::vector<float> pm = init, pe = init, pn = init;
    for (int k = 0; k < kSteps; ++k) {
      std::vector<float> g = random_floats(kSize, 0.1, 300 + k);
      masked.step(pm, g, lr_of_step(k));
      everywhere.step(pe, g, lr_of_step(k));
      nowhere.step(pn, g, lr_of_step(k));
    }
    for (const DecayRange& r : kDecayRanges) {
      const std::vector<float>& want = r.decay ? pe : pn;
      auto first = static_cast<std::ptrdiff_t>(r.offset),
           last = first + static_cast<std::ptrdiff_t>(r.count);
      EXPECT_TRUE(std::equal(pm.begin() + first, pm.begin() + last, want.begin() + first))
          << "range at " << r.offset << (r.decay ? " decays" : " does not decay");
    }
    EXPECT_FALSE(bit_equal(pe, pn)) << "weight decay should change something";
  }
}

TEST(Optimizer, DecayRangesMustTileTheBuffer) {
  OptimizerConfig sgd = all_configs()[1];
  auto make = [&](std::vector<DecayRange> ranges) { Optimizer opt(sgd, 10, std::move(ranges)); };
  EXPECT_NO_THROW(make({{4, 6, true}, {0, 4, false}}));                      // in any order
  EXPECT_THROW(make({{0, 4, true}, {5, 5, false}}), std::invalid_argument);  // a gap
  EXPECT_THROW(make({{0, 5, true}, {4, 6, false}}), std::invalid_argument);  // an overlap
  EXPECT_THROW(make({{0, 9, true}}), std::invalid_argument);                 // too short
  EXPECT_THROW(make({{0, 11, true}}), std::invalid_argument);                // too long
}

TEST(Optimizer, PiecewiseUpdateEqualsOneStep) {
  for (const OptimizerConfig& config : all_configs()) {
    if (layerwise(config))
      continue;  // whole layers only: LayerByLayerInBackwardOrderEqualsOneUpdate
    SCOPED_TRACE(describe(config));
    Optimizer whole(config, kSize, kDecayRanges), pieces(config, kSize, kDecayRanges);
    std::vector<float> pw = random_floats(kSize, 1.0, 6), pp = pw;
    for (int k = 0; k < 3; ++k) {
      std::vector<float> g = random_floats(kSize, 0.1, 400 + k);
      whole.step(pw, g, lr_of_step(k));
      // Out of order, with cuts inside the decay ranges and one empty piece.
      pieces.begin_step(lr_of_step(k));
      pieces.update(pp, g, 517, kSize - 517);
      pieces.update(pp, g, 0, 250);
      pieces.update(pp, g, 250, 0);
      pieces.update(pp, g, 250, 267);
    }
    EXPECT_TRUE(bit_equal(pw, pp));
  }
}

TEST(Optimizer, UpdateChecksItsArguments) {
  Optimizer opt(all_configs()[1], 10);
  std::vector<float> p(10), g(10), short_g(9);
  EXPECT_THROW(opt.update(p, g, 0, 10), std::logic_error);  // before begin_step
  EXPECT_THROW(opt.begin_step(-0.1), std::invalid_argument);
  EXPECT_THROW(opt.begin_step(std::nan("")), std::invalid_argument);
  opt.begin_step(0.1);
  EXPECT_THROW(opt.update(p, short_g, 0, 9), std::invalid_argument);
  EXPECT_THROW(opt.update(p, g, 5, 6), std::invalid_argument);
  EXPECT_NO_THROW(opt.update(p, g, 5, 5));
}

// ---- Clipping -----------------------------------------------------------------------------------

TEST(ClipGradNorm, ScalesToMaxNormAndReturnsTheNorm) {
  std::vector<float> g = random_floats(kSize, 0.1, 7);
  double exact = 0;
  for (float x : g) exact += static_cast<double>(x) * x;
  exact = std::sqrt(exact);
  const std::vector<float> before = g;
  const double max_norm = exact / 3;
  double norm = clip_grad_norm(g, max_norm);
  // Summation order only: double rounding, far below float's.
  EXPECT_NEAR(norm, exact, 1e-12 * exact);
  // After scaling by a float factor, each element carries one float rounding (6e-8 relative).
  EXPECT_NEAR(grad_norm(g), max_norm, 1e-6 * max_norm);
  // torch: max_norm / (total_norm + 1e-6) in float32, then one multiply per element.
  const float factor = static_cast<float>(max_norm) / (static_cast<float>(norm) + 1e-6f);
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], before[i] * factor) << i;
}

TEST(ClipGradNorm, LeavesSmallGradientsAlone) {
  std::vector<float> g = random_floats(kSize, 0.1, 8);
  const std::vector<float> before = g;
  double norm = clip_grad_norm(g, 1e3);
  EXPECT_GT(norm, 0);
  EXPECT_TRUE(bit_equal(g, before));
  EXPECT_EQ(clip_coefficient(norm, 1e3), 1.0);
}

TEST(ClipGradNorm, ReturnsNonFiniteNormsAndLeavesTheGradients) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> g = random_floats(kSize, 0.1, 9);
    g[123] = bad;
    const std::vector<float> before = g;
    double norm = clip_grad_norm(g, 1.0);
    EXPECT_FALSE(std::isfinite(norm)) << bad;
    EXPECT_EQ(std::isnan(norm), std::isnan(bad));
    EXPECT_TRUE(bit_equal(g, before)) << "the caller decides what to do with bad gradients";
  }
}

TEST(ClipGradNorm, LargeFiniteGradientsDoNotOverflow) {
  // 1e30 squared overflows float but not double.
  std::vector<float> g(4, 1e30f);
  double norm = clip_grad_norm(g, 1.0);
  // sqrt(4 x^2) = 2x exactly in double, up to the rounding of x^2 and the sum.
  EXPECT_NEAR(norm, 2.0 * static_cast<double>(1e30f), 1e-15 * 2e30);
  EXPECT_NEAR(g[0], 0.5f, 1e-6f);  // one float rounding of the factor and the product
  EXPECT_THROW(clip_grad_norm(g, 0), std::invalid_argument);

  // A norm beyond float's range still clips.
  std::vector<float> huge(2, 3e38f);
  norm = clip_grad_norm(huge, 1.0);
  EXPECT_NEAR(norm, std::sqrt(2.0) * static_cast<double>(3e38f), 1e-15 * 4.3e38);
  // The factor, 2.4e-39, is a subnormal float: 2^-149 / 2.4e-39 = 6e-7 relative precision.
  EXPECT_NEAR(huge[0], 1 / std::sqrt(2.0), 2e-6);
}

// ---- Configuration errors -----------------------------------------------------------------------

void expect_one_line_invalid_argument(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning '" << part << "'";
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(part), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
  }
}

TEST(OptimizerConfig, BadNamesAndValuesThrowOneLine) {
  auto with = [](const std::function<void(OptimizerConfig&)>& edit) {
    return [edit] {
      OptimizerConfig c;
      edit(c);
      Optimizer opt(c, 4);
    };
  };
  expect_one_line_invalid_argument(with([](auto& c) { c.name = "rmsprop"; }), "rmsprop");
  expect_one_line_invalid_argument(with([](auto& c) { c.name = "SGD"; }), "SGD");
  expect_one_line_invalid_argument(with([](auto& c) { c.momentum_rule = "caffe"; }), "caffe");
  expect_one_line_invalid_argument(with([](auto& c) { c.momentum = -0.1; }), "momentum");
  expect_one_line_invalid_argument(with([](auto& c) { c.momentum = 1; }), "momentum");
  expect_one_line_invalid_argument(with([](auto& c) { c.weight_decay = -1; }), "weight_decay");
  expect_one_line_invalid_argument(with([](auto& c) { c.beta2 = 1; }), "beta2");
  expect_one_line_invalid_argument(with([](auto& c) { c.eps = 0; }), "eps");
  expect_one_line_invalid_argument(with([](auto& c) { c.clip_grad_norm = -1; }), "clip");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.momentum = 0;
                                     c.nesterov = true;
                                   }),
                                   "nesterov");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "adam";
                                     c.nesterov = true;
                                   }),
                                   "nesterov");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "adamw";
                                     c.momentum_rule = "paper";
                                   }),
                                   "paper");
  expect_one_line_invalid_argument(with([](auto& c) { c.trust_coefficient = 0; }),
                                   "trust_coefficient");
  expect_one_line_invalid_argument(with([](auto& c) { c.trust_coefficient = std::nan(""); }),
                                   "trust_coefficient");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "lars";
                                     c.nesterov = true;
                                   }),
                                   "nesterov");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "lamb";
                                     c.decoupled_weight_decay = true;
                                   }),
                                   "decoupled_weight_decay");
  expect_one_line_invalid_argument(with([](auto& c) { c.name = "larc"; }), "lars or lamb");
  EXPECT_EQ(parse_optimizer_kind("adamw"), OptimizerKind::kAdamW);
  EXPECT_EQ(parse_optimizer_kind("lars"), OptimizerKind::kLars);
  EXPECT_EQ(parse_optimizer_kind("lamb"), OptimizerKind::kLamb);
  EXPECT_EQ(parse_momentum_rule("paper"), MomentumRule::kPaper);
}

TEST(LrScheduleConfig, BadNamesAndValuesThrowOneLine) {
  auto with = [](const std::function<void(LrScheduleConfig&)>& edit) {
    return [edit] {
      LrScheduleConfig c;
      edit(c);
      LrSchedule schedule(c);
    };
  };
  expect_one_line_invalid_argument(with([](auto& c) { c.name = "exponential"; }), "exponential");
  expect_one_line_invalid_argument(with([](auto& c) { c.base_lr = -1; }), "base_lr");
  expect_one_line_invalid_argument(with([](auto& c) { c.steps_per_epoch = 0; }), "steps_per_epoch");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.warmup_steps = 5;
                                     c.warmup_start_factor = 0;
                                   }),
                                   "warmup_start_factor");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "step";
                                     c.step_epochs = 0;
                                   }),
                                   "step_epochs");
  expect_one_line_invalid_argument(with([](auto& c) { c.name = "multistep"; }), "milestones");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "multistep";
                                     c.milestones = {5, 5};
                                   }),
                                   "milestones");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "cosine";
                                     c.total_steps = 10;
                                     c.warmup_steps = 10;
                                   }),
                                   "total_steps");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "plateau";
                                     c.plateau_factor = 1;
                                   }),
                                   "plateau_factor");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "poly";
                                     c.total_steps = 10;
                                     c.poly_power = 0;
                                   }),
                                   "poly_power");
  expect_one_line_invalid_argument(with([](auto& c) {
                                     c.name = "poly";
                                     c.total_steps = 4;
                                     c.warmup_steps = 4;
                                   }),
                                   "total_steps");
  for (const char* bad :
       {"", "30,,60", "60,30", "30,30", "x", "-1", "3.5", "30,", "99999999999999999999"}) {
    expect_one_line_invalid_argument([bad] { parse_milestones(bad); }, "milestones");
  }
  EXPECT_EQ(parse_milestones("30,60,80"), (std::vector<int64_t>{30, 60, 80}));
  EXPECT_EQ(parse_milestones("0"), (std::vector<int64_t>{0}));
  EXPECT_EQ(parse_lr_schedule_kind("plateau"), LrScheduleKind::kPlateau);
}

// ---- Learning-rate schedules against torch.optim.lr_scheduler -----------------------------------

class TorchSchedule : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(reference().error.empty()) << reference().error; }
  static void expect_schedule(const LrScheduleConfig& config, const std::string& key) {
    LrSchedule schedule(config);
    const std::vector<double>& want = reference().at("lr." + key);
    std::vector<double> got;
    for (size_t t = 0; t < want.size(); ++t) got.push_back(schedule.lr_at(static_cast<int64_t>(t)));
    expect_close(std::span<const double>(got), std::span<const double>(want), kLrTolerance, key);
  }
};

TEST_F(TorchSchedule, StepLR) {
  expect_schedule({.name = "step",
                   .base_lr = 0.1,
                   .steps_per_epoch = kStepsPerEpoch,
                   .gamma = 0.1,
                   .step_epochs = 2},
                  "step");
}

TEST_F(TorchSchedule, MultiStepLR) {
  expect_schedule({.name = "multistep",
                   .base_lr = 0.1,
                   .steps_per_epoch = kStepsPerEpoch,
                   .gamma = 0.1,
                   .milestones = {2, 5, 6}},
                  "multistep");
}

TEST_F(TorchSchedule, CosineAnnealingLR) {
  LrScheduleConfig config{.name = "cosine", .base_lr = 0.1, .total_steps = 20, .min_lr = 1e-4};
  expect_schedule(config, "cosine");
  // Held at the minimum after T_max, where torch's cosine would rise again.
  EXPECT_EQ(LrSchedule(config).lr_at(27), 1e-4);
}

TEST_F(TorchSchedule, LinearWarmupThenCosineAsSequentialLR) {
  expect_schedule({.name = "cosine",
                   .base_lr = 0.1,
                   .total_steps = 20,
                   .min_lr = 1e-4,
                   .warmup_steps = 5,
                   .warmup_start_factor = 0.25},
                  "warmup_cosine");
}

TEST_F(TorchSchedule, LinearWarmupThenStepAsSequentialLR) {
  // The step schedule's epochs count from the end of warmup.
  expect_schedule({.name = "step",
                   .base_lr = 0.1,
                   .steps_per_epoch = kStepsPerEpoch,
                   .gamma = 0.1,
                   .step_epochs = 2,
                   .warmup_steps = 4,
                   .warmup_start_factor = 0.5},
                  "warmup_step");
}

TEST_F(TorchSchedule, PolynomialLR) {
  LrScheduleConfig config{.name = "poly", .base_lr = 0.1, .total_steps = 20, .poly_power = 2};
  expect_schedule(config, "poly");
  EXPECT_EQ(LrSchedule(config).lr_at(27), 0);  // torch's too: held at the end
}

TEST_F(TorchSchedule, LinearWarmupThenPolynomialAsSequentialLR) {
  expect_schedule({.name = "poly",
                   .base_lr = 0.1,
                   .total_steps = 20,
                   .poly_power = 2,
                   .warmup_steps = 4,
                   .warmup_start_factor = 0.25},
                  "warmup_poly");
}

// With an end value (TensorFlow's polynomial_decay; torch's PolynomialLR has none): the formula.
TEST(LrSchedule, PolyDecaysToMinLrWithItsPower) {
  LrSchedule schedule({.name = "poly",
                       .base_lr = 2.0,
                       .total_steps = 110,
                       .min_lr = 0.02,
                       .poly_power = 3,
                       .warmup_steps = 10});
  for (int64_t t : {10, 11, 35, 60, 109}) {
    const double left = 1 - static_cast<double>(t - 10) / 100;
    EXPECT_DOUBLE_EQ(schedule.lr_at(t), 0.02 + (2.0 - 0.02) * left * left * left) << t;
  }
  EXPECT_EQ(schedule.lr_at(110), 0.02);
  EXPECT_EQ(schedule.lr_at(1000), 0.02);
  EXPECT_DOUBLE_EQ(schedule.lr_at(5), 2.0 * (1.0 / 3 + (2.0 / 3) * 5 / 10));  // warmup
  EXPECT_EQ(parse_lr_schedule_kind("poly"), LrScheduleKind::kPoly);
}

TEST_F(TorchSchedule, ReduceLROnPlateau) {
  LrScheduleConfig plateau{.name = "plateau",
                           .base_lr = 0.1,
                           .plateau_factor = 0.1,
                           .plateau_patience = 2,
                           .plateau_threshold = 1e-4};
  LrScheduleConfig cooldown{.name = "plateau",
                            .base_lr = 0.1,
                            .min_lr = 2e-4,
                            .plateau_factor = 0.1,
                            .plateau_patience = 1,
                            .plateau_threshold = 1e-4,
                            .plateau_cooldown = 2};
  for (const auto& [key, config] :
       {std::pair{"plateau", plateau}, std::pair{"plateau_cooldown", cooldown}}) {
    SCOPED_TRACE(key);
    LrSchedule schedule(config);
    const std::vector<double>& metrics = reference().at(std::string("metrics.") + key);
    std::vector<double> got;
    int cuts = 0;
    for (double m : metrics) {
      cuts += schedule.report(m) ? 1 : 0;
      got.push_back(schedule.lr_at(1000));
    }
    expect_close(std::span<const double>(got),
                 std::span<const double>(reference().at(std::string("lr.") + key)), kLrTolerance,
                 key);
    EXPECT_GE(cuts, 2);
  }
}

// ---- Learning-rate schedules: state and warmup --------------------------------------------------

TEST(LrSchedule, PlateauStateRestoresIdentically) {
  LrScheduleConfig config{
      .name = "plateau", .base_lr = 0.1, .plateau_patience = 1, .plateau_cooldown = 1};
  const std::vector<double> metrics = {1, 0.9, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.7, 0.75, 0.75};
  LrSchedule straight(config), first(config), resumed(config);
  std::vector<double> want, got;
  for (double m : metrics) {
    straight.report(m);
    want.push_back(straight.lr_at(0));
  }
  for (size_t i = 0; i < 5; ++i) {
    first.report(metrics[i]);
    got.push_back(first.lr_at(0));
  }
  resumed.set_state(first.state());
  for (size_t i = 5; i < metrics.size(); ++i) {
    resumed.report(metrics[i]);
    got.push_back(resumed.lr_at(0));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(resumed.state().reports, static_cast<int64_t>(metrics.size()));
  EXPECT_LT(want.back(), 0.1);
}

TEST(LrSchedule, OtherSchedulesIgnoreReports) {
  LrSchedule schedule({.name = "constant", .base_lr = 0.05});
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(schedule.report(1.0));
  EXPECT_EQ(schedule.lr_at(123), 0.05);
}

TEST(LrSchedule, WarmupScalesThePlateausLr) {
  LrSchedule schedule({.name = "plateau",
                       .base_lr = 0.1,
                       .warmup_steps = 4,
                       .warmup_start_factor = 0.5,
                       .plateau_patience = 0});
  EXPECT_DOUBLE_EQ(schedule.lr_at(0), 0.05);
  EXPECT_DOUBLE_EQ(schedule.lr_at(2), 0.075);
  EXPECT_DOUBLE_EQ(schedule.lr_at(4), 0.1);
  schedule.report(1.0);
  EXPECT_TRUE(schedule.report(1.0));  // patience 0: the first report without improvement cuts
  EXPECT_DOUBLE_EQ(schedule.lr_at(2), 0.0075);
  EXPECT_DOUBLE_EQ(schedule.lr_at(10), 0.01);
}

}  // namespace
}  // namespace alexnet::trainer
