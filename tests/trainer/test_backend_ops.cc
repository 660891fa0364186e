// Every op of the Backend interface (trainer/backend.h), from one table of cases, run on every
// backend and precision this build has, against the reference backend (the specification): the
// same inputs on both sides, every output, gradient and piece of state compared. Adding a backend
// adds a target (and a tolerance column), no test code. The harness converts activations between
// NCHW and the backend's activation_layout(); outputs start as NaN, so an element an op never
// writes fails the comparison; every op object is run twice with new data (ops are made once per
// layer and reused every step).
//
// Test names: BackendOps/VsReference.Matches/<target>__<case>, e.g. `ctest -R 'BackendOps.*lrn'`
// or `ctest -R 'BackendOps.*cuda_bf16'`. CUDA targets skip, visibly, without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/optimizer.h"

namespace alexnet::trainer::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

size_t sz(int64_t n) { return static_cast<size_t>(n); }

// ---------------------------------------------------------------------------------------------
// Targets: a backend at a precision.

struct Tolerance {
  double onednn, cuda_fp32, cuda_tf32, cuda_bf16, cuda_fp16;
};

struct Target {
  const char* name;     // in test names
  const char* backend;  // make_backend's name
  Precision precision;
  bool allow_tf32;
  double Tolerance::*tolerance;  // its column in the tolerance table
  // cuDNN may choose a transform-domain convolution (FFT, Winograd), which spreads one NaN input
  // over a whole tile of outputs: there a NaN must reach (at least) the reference's NaN places.
  bool conv_nan_may_spread;
};

const Target kTargets[] = {
    {"onednn_fp32", "onednn", Precision::kFloat32, false, &Tolerance::onednn, false},
#ifdef ALEXNET_WITH_CUDA
    {"cuda_fp32", "cuda", Precision::kFloat32, false, &Tolerance::cuda_fp32, true},
    {"cuda_tf32", "cuda", Precision::kFloat32, true, &Tolerance::cuda_tf32, true},
    {"cuda_bf16", "cuda", Precision::kBFloat16, false, &Tolerance::cuda_bf16, true},
    {"cuda_fp16", "cuda", Precision::kFloat16, false, &Tolerance::cuda_fp16, true},
#endif
};

// For GoogleTest's messages: the target's name, not its bytes.
void PrintTo(const Target& target, std::ostream* os) { *os << target.name; }

// ---------------------------------------------------------------------------------------------
// Tolerances: the largest relative_error() (max |got - want| over max |want|, one number a tensor)
// allowed on each target. The bugs these tests exist for (a wrong index, window, layout or
// convention, a missing term, a stale output, LRN's alpha scaled twice, a biased running
// variance) move results by 1e-2 or more (the bf16 bound is the loosest, and still catches them
// in the fp32 targets of the same case).

// Selection, permutation, or the same per-element function in the same float arithmetic (ReLU,
// max-pool forward, flatten, dropout, the optimizer's update, scale, top-1/top-5 counts): equal.
constexpr Tolerance kExact = {0, 0, 0, 0, 0};
// Ops that compute in fp32 at every precision (only conv and linear take TF32/bf16/fp16 inputs):
// float sums of up to ~1200 terms in another order than the reference's double sums. oneDNN:
// about sqrt(K) * 2^-24 of the terms' size against a largest output of a few sqrt(K) terms, so
// ~1e-7 (measured at most 6.9e-7, conv; 2.2e-7, LRN and batch norm): 1e-5 leaves a margin of over
// 10. cuDNN: its algorithms (FFT and Winograd included) round differently: ~1e-6, 1e-4 bound.
constexpr Tolerance kFloatSums = {1e-5, 1e-4, 1e-4, 1e-4, 1e-4};
// Convolutions and matrix products, inputs rounded to the target's precision, fp32 accumulation:
// TF32 keeps 10 mantissa bits (2^-11 relative rounding an input) and bf16 7 (2^-8); the errors of
// a sum of random-sign products partly cancel, so the tensor's relative error stays a few times
// the input rounding: 5e-3 (TF32), 1e-2 (bf16, where dw is rounded to bf16 once more). fp16 keeps
// 10 bits like TF32; with inputs in [-1, 1] it is far from overflow: the bf16 bound, as before.
constexpr Tolerance kMatmul = {1e-5, 1e-4, 5e-3, 1e-2, 1e-2};
// The mean loss: one float log-softmax a row against the reference's double, summed: ~1e-7
// relative a term on either CPU or GPU, so the same 1e-5 everywhere (its gradient, dlogits, is
// kFloatSums).
constexpr Tolerance kLossValue = {1e-5, 1e-5, 1e-5, 1e-5, 1e-5};
// sum_of_squares: exact float squares summed in double in another order: at most n * 2^-53
// relative apart (5e6 terms: 6e-10), far less in practice.
constexpr Tolerance kDoubleSums = {1e-10, 1e-10, 1e-10, 1e-10, 1e-10};
// LARS and LAMB: the same per-element functions, each layer's step scaled by a ratio of norms
// summed in double in another order on a device: a few ulps (6e-8 each) over three steps.
constexpr Tolerance kLayerwise = {0, 1e-6, 1e-6, 1e-6, 1e-6};

// ---------------------------------------------------------------------------------------------
// Results and their comparison.

enum class NaNs {
  kNone,        // no NaN anywhere (one is a failure on either side)
  kSamePlaces,  // NaN (if any) at the reference's places
  kInjected,    // the inputs hold NaN: the reference has some here, the target the same places
};

struct Result {
  std::string name;            // "y", "dx round 1", ...
  std::vector<double> values;  // activations in NCHW
  bool exact = false;          // by nature of the op (selection, counts): kExact whatever the row
  NaNs nans = NaNs::kNone;
  const Tolerance* own_tolerance = nullptr;  // one other than the row's (the loss value)
};
using Results = std::vector<Result>;

template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  return std::vector<double>(v.begin(), v.end());
}

void expect_matches(const Result& got, const Result& want, double tolerance, bool nan_may_spread) {
  SCOPED_TRACE(want.name);
  ASSERT_EQ(got.values.size(), want.values.size());
  if (want.exact) tolerance = 0;
  size_t nans = 0;
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < want.values.size(); ++i) {
    const double a = got.values[i], b = want.values[i];
    if (std::isnan(b)) {
      ++nans;
      ASSERT_TRUE(std::isnan(a)) << "element " << i << ": " << a << ", reference NaN";
      continue;
    }
    if (std::isnan(a)) {
      if (want.nans != NaNs::kNone && nan_may_spread) continue;
      FAIL() << "element " << i << ": NaN, reference " << b;
    }
    if (std::isinf(a) || std::isinf(b) || tolerance == 0) {
      ASSERT_EQ(a, b) << "element " << i;
      continue;
    }
    diff = std::max(diff, std::abs(a - b));
    scale = std::max(scale, std::abs(b));
  }
  if (want.nans == NaNs::kInjected) {
    EXPECT_GT(nans, 0u) << "the reference has no NaN here: the case does not test propagation";
  }
  if (tolerance > 0) {
    EXPECT_LT(diff / scale, tolerance) << "relative error";
  }
}

// ---------------------------------------------------------------------------------------------
// The case table's rows: an op, its shape and data, run on one backend.

struct OpCase {
  std::string name;
  Tolerance tolerance;
  bool conv = false;  // a convolution (for Target::conv_nan_may_spread)
  std::function<Results(Backend&)> run;
};

// Data in NCHW (and the plain layouts of weights and vectors) into the backend, and back.
DeviceArray<float> activation(Backend& b, const std::vector<float>& nchw, int64_t n, int64_t c,
                              int64_t h, int64_t w) {
  return DeviceArray<float>(b, to_backend(b, nchw, n, c, h, w));
}
std::vector<double> read_activation(Backend& b, DeviceArray<float>& a, int64_t n, int64_t c,
                                    int64_t h, int64_t w) {
  return to_double(from_backend(b, a.read(), n, c, h, w));
}
DeviceArray<float> nan_array(Backend& b, size_t n) { return DeviceArray<float>(b, n, kNaN); }

std::string round_name(const char* what, uint32_t round) {
  return std::string(what) + " round " + std::to_string(round);
}

// --- conv2d ----------------------------------------------------------------------------------

OpCase conv2d(std::string name, const Conv2dShape& s, bool bias, bool inject_nan = false) {
  const Tolerance tolerance = kMatmul;
  auto run = [s, bias, inject_nan](Backend& b) {
    const int64_t n = s.batch, ic = s.in_channels, oc = s.out_channels;
    const int64_t oh = s.out_height(), ow = s.out_width();
    const size_t nx = sz(n * ic * s.height * s.width), ny = sz(n * oc * oh * ow);
    const size_t nw = sz(oc * (ic / s.groups) * s.kernel_h * s.kernel_w);
    const NaNs nans = inject_nan ? NaNs::kInjected : NaNs::kNone;
    auto op = b.make_conv2d(s, bias);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      const uint32_t seed = 10 + 10 * round;
      auto x = random_floats(nx, seed), dy = random_floats(ny, seed + 3);
      if (inject_nan) {  // reaches the outputs whose windows hold it and the weights it multiplies
        x[nx / 3] = kNaN;
        dy[ny / 2] = kNaN;
      }
      DeviceArray<float> gx = activation(b, x, n, ic, s.height, s.width);
      DeviceArray<float> gw(b, random_floats(nw, seed + 1));
      DeviceArray<float> gb(b, random_floats(sz(oc), seed + 2));
      DeviceArray<float> gdy = activation(b, dy, n, oc, oh, ow);
      DeviceArray<float> y = nan_array(b, ny), dx = nan_array(b, nx), dw = nan_array(b, nw);
      DeviceArray<float> db = nan_array(b, sz(oc));
      op->forward(gx.get(), gw.get(), bias ? gb.get() : nullptr, y.get());
      op->backward_data(gdy.get(), gw.get(), dx.get());
      op->backward_weights(gx.get(), gdy.get(), dw.get(), bias ? db.get() : nullptr);
      results.push_back(
          {round_name("y", round), read_activation(b, y, n, oc, oh, ow), false, nans});
      results.push_back(
          {round_name("dx", round), read_activation(b, dx, n, ic, s.height, s.width), false, nans});
      results.push_back({round_name("dw", round), to_double(dw.read()), false, nans});
      if (bias) results.push_back({round_name("db", round), to_double(db.read()), false, nans});
    }
    return results;
  };
  return {std::move(name), tolerance, true, run};
}

// --- linear ----------------------------------------------------------------------------------

OpCase linear(std::string name, int64_t batch, int64_t in, int64_t out, bool bias,
              bool inject_nan = false) {
  auto run = [=](Backend& b) {
    auto op = b.make_linear(batch, in, out, bias);
    const NaNs nans = inject_nan ? NaNs::kInjected : NaNs::kNone;
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      const uint32_t seed = 40 + 10 * round;
      auto x = random_floats(sz(batch * in), seed);
      // Sample 1's input 4: NaN in sample 1's outputs only, and in dw's column 4; dx stays finite.
      if (inject_nan) x[sz(in + 4)] = kNaN;
      DeviceArray<float> gx(b, x), gw(b, random_floats(sz(out * in), seed + 1));
      DeviceArray<float> gb(b, random_floats(sz(out), seed + 2));
      DeviceArray<float> gdy(b, random_floats(sz(batch * out), seed + 3));
      DeviceArray<float> y = nan_array(b, sz(batch * out)), dx = nan_array(b, sz(batch * in));
      DeviceArray<float> dw = nan_array(b, sz(out * in)), db = nan_array(b, sz(out));
      op->forward(gx.get(), gw.get(), bias ? gb.get() : nullptr, y.get());
      op->backward_data(gdy.get(), gw.get(), dx.get());
      op->backward_weights(gx.get(), gdy.get(), dw.get(), bias ? db.get() : nullptr);
      results.push_back({round_name("y", round), to_double(y.read()), false, nans});
      results.push_back({round_name("dx", round), to_double(dx.read())});
      results.push_back({round_name("dw", round), to_double(dw.read()), false, nans});
      if (bias) results.push_back({round_name("db", round), to_double(db.read())});
    }
    return results;
  };
  return {std::move(name), kMatmul, false, run};
}

// --- relu ------------------------------------------------------------------------------------

// Zeros and NaN in x, NaN in dy; in place (y = x for forward, dx = dy for backward) as a model
// may run it.
OpCase relu(std::string name, int64_t n, bool in_place) {
  auto run = [=](Backend& b) {
    auto op = b.make_relu(n);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      auto x = random_floats(sz(n), 70 + round), dy = random_floats(sz(n), 80 + round);
      x[3] = kNaN;  // NaN passes ReLU, forward and backward
      x[sz(n - 1)] = kNaN;
      x[10] = 0.0f;
      x[11] = -0.0f;
      dy[5] = kNaN;
      DeviceArray<float> gx(b, x), gdy(b, dy);
      DeviceArray<float> y = nan_array(b, sz(n)), dx = nan_array(b, sz(n));
      float* y_ptr = in_place ? gx.get() : y.get();
      float* dx_ptr = in_place ? gdy.get() : dx.get();
      op->forward(gx.get(), y_ptr);
      op->backward(y_ptr, gdy.get(), dx_ptr);
      results.push_back(
          {round_name("y", round), to_double((in_place ? gx : y).read()), true, NaNs::kInjected});
      // A NaN output passes dy on (PyTorch's threshold_backward); dy's NaN where y > 0.
      results.push_back({round_name("dx", round), to_double((in_place ? gdy : dx).read()), true,
                         NaNs::kSamePlaces});
    }
    return results;
  };
  return {std::move(name), kExact, false, run};
}

// --- max_pool --------------------------------------------------------------------------------

// lo..hi: the input range; all negative with padding: a zero-valued padding would win at the
// borders (the reference's is -inf and never wins).
OpCase max_pool(std::string name, const Pool2dShape& s, float lo, float hi) {
  auto run = [=](Backend& b) {
    const int64_t oh = s.out_height(), ow = s.out_width();
    const size_t nx = sz(s.batch * s.channels * s.height * s.width);
    const size_t ny = sz(s.batch * s.channels * oh * ow);
    auto op = b.make_max_pool(s);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      DeviceArray<float> gx = activation(b, random_floats(nx, 100 + round, lo, hi), s.batch,
                                         s.channels, s.height, s.width);
      DeviceArray<float> gdy =
          activation(b, random_floats(ny, 200 + round), s.batch, s.channels, oh, ow);
      for (bool training : {false, true}) {  // training last: backward needs its argmax
        DeviceArray<float> y = nan_array(b, ny);
        op->forward(gx.get(), y.get(), training);
        // Selection: exact.
        results.push_back({round_name(training ? "y training" : "y inference", round),
                           read_activation(b, y, s.batch, s.channels, oh, ow), true});
        if (hi < 0) {
          const auto& v = results.back().values;
          EXPECT_EQ(std::count_if(v.begin(), v.end(), [](double e) { return !(e < 0); }), 0)
              << "padding won a window";
        }
      }
      DeviceArray<float> dx = nan_array(b, nx);
      op->backward(gdy.get(), dx.get());
      // Overlapping windows: a position's gradient sums the dy of every window it is the max of.
      results.push_back({round_name("dx", round),
                         read_activation(b, dx, s.batch, s.channels, s.height, s.width)});
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// --- adaptive_avg_pool -----------------------------------------------------------------------

OpCase adaptive_avg_pool(std::string name, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh,
                         int64_t ow) {
  auto run = [=](Backend& b) {
    const size_t nx = sz(n * c * h * w), ny = sz(n * c * oh * ow);
    auto op = b.make_adaptive_avg_pool(n, c, h, w, oh, ow);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      DeviceArray<float> gx = activation(b, random_floats(nx, 300 + round), n, c, h, w);
      DeviceArray<float> gdy = activation(b, random_floats(ny, 400 + round), n, c, oh, ow);
      DeviceArray<float> y = nan_array(b, ny), dx = nan_array(b, nx);
      op->forward(gx.get(), y.get());
      op->backward(gdy.get(), dx.get());
      results.push_back({round_name("y", round), read_activation(b, y, n, c, oh, ow)});
      results.push_back({round_name("dx", round), read_activation(b, dx, n, c, h, w)});
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// --- lrn -------------------------------------------------------------------------------------

// Inputs of magnitude up to `range` make alpha * sum(x^2) comparable to k (5 channels of 35^2
// give 0.6 with the paper's alpha), so that a window or alpha-scaling error shows: dividing alpha
// by the size once more, or summing one channel more or less, moves outputs by several percent.
OpCase lrn(std::string name, const LrnShape& s, float range) {
  auto run = [=](Backend& b) {
    const size_t n = sz(s.batch * s.channels * s.height * s.width);
    auto op = b.make_lrn(s);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      const auto x = random_floats(n, 500 + round, -range, range);
      DeviceArray<float> gx = activation(b, x, s.batch, s.channels, s.height, s.width);
      DeviceArray<float> gdy =
          activation(b, random_floats(n, 600 + round), s.batch, s.channels, s.height, s.width);
      for (bool training : {false, true}) {  // training last: backward may need its workspace
        DeviceArray<float> y = nan_array(b, n);
        op->forward(gx.get(), y.get(), training);
        results.push_back({round_name(training ? "y training" : "y inference", round),
                           read_activation(b, y, s.batch, s.channels, s.height, s.width)});
      }
      DeviceArray<float> dx = nan_array(b, n);
      op->backward(gx.get(), gdy.get(), dx.get());
      results.push_back({round_name("dx", round),
                         read_activation(b, dx, s.batch, s.channels, s.height, s.width)});
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// --- batch_norm ------------------------------------------------------------------------------

// Training forward (batch statistics, running statistics updated: PyTorch's momentum and the
// unbiased variance, which a biased one misses by m / (m - 1)), backward, then inference with
// the updated running statistics; the running statistics evolve over both rounds from the same
// start on both sides. Off-centre inputs (lo..hi), so that subtracting the mean matters.
OpCase batch_norm(std::string name, const BatchNormShape& s, float lo, float hi) {
  auto run = [=](Backend& b) {
    const size_t n = sz(s.batch * s.channels * s.spatial), c = sz(s.channels);
    // [N, C, spatial] is [N, C, H = spatial, W = 1] for the layout conversion.
    auto in = [&](const std::vector<float>& v) {
      return activation(b, v, s.batch, s.channels, s.spatial, 1);
    };
    auto out = [&](DeviceArray<float>& a) {
      return read_activation(b, a, s.batch, s.channels, s.spatial, 1);
    };
    auto op = b.make_batch_norm(s);
    DeviceArray<float> mean(b, random_floats(c, 700, -0.5, 0.5)),
        var(b, random_floats(c, 701, 0.5, 2));
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      DeviceArray<float> x = in(random_floats(n, 710 + round, lo, hi));
      DeviceArray<float> dy = in(random_floats(n, 720 + round));
      DeviceArray<float> gamma(b, random_floats(c, 730 + round, 0.5, 1.5));
      DeviceArray<float> beta(b, random_floats(c, 740 + round, -0.5, 0.5));
      DeviceArray<float> y = nan_array(b, n), dx = nan_array(b, n), z = nan_array(b, n);
      DeviceArray<float> dgamma = nan_array(b, c), dbeta = nan_array(b, c);
      op->forward_training(x.get(), gamma.get(), beta.get(), y.get(), mean.get(), var.get());
      results.push_back({round_name("training y", round), out(y)});
      results.push_back({round_name("running mean", round), to_double(mean.read())});
      results.push_back({round_name("running var", round), to_double(var.read())});
      op->backward(x.get(), dy.get(), gamma.get(), dx.get(), dgamma.get(), dbeta.get());
      results.push_back({round_name("dx", round), out(dx)});
      results.push_back({round_name("dgamma", round), to_double(dgamma.read())});
      results.push_back({round_name("dbeta", round), to_double(dbeta.read())});
      DeviceArray<float> x2 = in(random_floats(n, 750 + round, lo, hi));
      op->forward_inference(x2.get(), gamma.get(), beta.get(), mean.get(), var.get(), z.get());
      results.push_back({round_name("inference y", round), out(z)});
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// Inference needs no batch statistics, so a single sample is fine (training would throw).
OpCase batch_norm_inference(std::string name, const BatchNormShape& s) {
  auto run = [=](Backend& b) {
    const size_t n = sz(s.batch * s.channels * s.spatial), c = sz(s.channels);
    auto op = b.make_batch_norm(s);
    DeviceArray<float> x = activation(b, random_floats(n, 800), s.batch, s.channels, s.spatial, 1);
    DeviceArray<float> gamma(b, random_floats(c, 801, 0.5, 1.5)), beta(b, random_floats(c, 802));
    DeviceArray<float> mean(b, random_floats(c, 803)), var(b, random_floats(c, 804, 0.5, 2));
    DeviceArray<float> y = nan_array(b, n);
    op->forward_inference(x.get(), gamma.get(), beta.get(), mean.get(), var.get(), y.get());
    return Results{Result{"inference y", read_activation(b, y, s.batch, s.channels, s.spatial, 1)}};
  };
  return {std::move(name), kFloatSums, false, run};
}

// --- dropout ---------------------------------------------------------------------------------

// The same mask (trainer/dropout_math.h) and the same float product on every backend: bit for
// bit. A dropped NaN or inf stays NaN (multiplied by 0), not 0. A new step draws a new mask.
OpCase dropout(std::string name, int64_t n, double p) {
  auto run = [=](Backend& b) {
    auto op = b.make_dropout(n, p);
    Results results;
    std::vector<bool> previous_kept;
    for (uint32_t round = 0; round < 2; ++round) {
      auto x = random_floats(sz(n), 900 + round);
      x[7] = kNaN;
      x[8] = kInf;
      x[9] = -kInf;
      DeviceArray<float> gx(b, x), gdy(b, random_floats(sz(n), 910 + round));
      DeviceArray<float> y = nan_array(b, sz(n)), dx = nan_array(b, sz(n));
      const DropoutKey key{.seed = 1234, .step = 7 + round, .rank = 3, .layer = 2};
      op->forward(key, gx.get(), y.get());
      op->backward(gdy.get(), dx.get());
      results.push_back({round_name("y", round), to_double(y.read()), true, NaNs::kInjected});
      results.push_back({round_name("dx", round), to_double(dx.read()), true});
      // dy has no zeros, so dx's zeros are the dropped elements.
      std::vector<bool> kept(sz(n));
      for (size_t i = 0; i < kept.size(); ++i) kept[i] = results.back().values[i] != 0;
      const double fraction =
          static_cast<double>(std::count(kept.begin(), kept.end(), true)) / static_cast<double>(n);
      // 5 standard deviations of a binomial fraction over n draws (at most 0.5 / sqrt(n) each).
      EXPECT_NEAR(fraction, 1 - p, 5 * 0.5 / std::sqrt(static_cast<double>(n))) << "kept";
      if (p > 0 && p < 1 && round == 1) {
        EXPECT_NE(kept, previous_kept) << "the same mask twice";
      }
      previous_kept = kept;
    }
    return results;
  };
  return {std::move(name), kExact, false, run};
}

// --- flatten ---------------------------------------------------------------------------------

// PyTorch's (C, H, W) order, i.e. the NCHW data itself, whatever the activation layout; backward
// restores the activation layout. A permutation: exact, NaN included.
OpCase flatten(std::string name, int64_t n, int64_t c, int64_t h, int64_t w) {
  auto run = [=](Backend& b) {
    const size_t total = sz(n * c * h * w);
    auto op = b.make_flatten(n, c, h, w);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      auto x = random_floats(total, 90 + round);
      x[total / 2] = kNaN;
      DeviceArray<float> gx = activation(b, x, n, c, h, w);
      DeviceArray<float> gdy(b, random_floats(total, 95 + round));
      DeviceArray<float> y = nan_array(b, total), dx = nan_array(b, total);
      op->forward(gx.get(), y.get());
      op->backward(gdy.get(), dx.get());
      results.push_back({round_name("y", round), to_double(y.read()), true, NaNs::kInjected});
      results.push_back({round_name("dx", round), read_activation(b, dx, n, c, h, w), true});
    }
    return results;
  };
  return {std::move(name), kExact, false, run};
}

// --- softmax_cross_entropy -------------------------------------------------------------------

std::vector<int32_t> random_labels(int64_t n, int64_t classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> labels(sz(n));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<uint32_t>(classes));
  return labels;
}

// The loss, top-1 and top-5 (exact counts) and, with a gradient, dlogits * scale.
void push_loss(Backend& b, SoftmaxCrossEntropyOp& op, const std::vector<float>& logits,
               const std::vector<int32_t>& labels, bool gradient, float scale,
               const std::string& what, NaNs nans, Results& results) {
  // Which class a NaN row ranks first is nobody's contract: no top-k there.
  const bool top_k = nans == NaNs::kNone;
  DeviceArray<float> z(b, logits), dz = nan_array(b, logits.size());
  DeviceArray<int32_t> l(b, labels);
  const LossResult r = op.forward_backward(z.get(), l.get(), gradient ? dz.get() : nullptr, scale);
  results.push_back({what + " loss", {r.loss}, false, nans, &kLossValue});
  if (top_k) {
    results.push_back(
        {what + " top1 top5", {static_cast<double>(r.top1), static_cast<double>(r.top5)}, true});
  }
  if (gradient) results.push_back({what + " dlogits", to_double(dz.read()), false, nans});
}

// Random logits in [-range, range] for the loss and gradient; evaluation (no gradient) gives the
// same result; integer logits in -2..2 for top-1/top-5, where ties with the label's logit (which
// count for the label) are common.
OpCase softmax_cross_entropy(std::string name, int64_t batch, int64_t classes, double smoothing,
                             float range, float scale) {
  auto run = [=](Backend& b) {
    auto op = b.make_softmax_cross_entropy(batch, classes, smoothing);
    Results results;
    for (uint32_t round = 0; round < 2; ++round) {
      auto logits = random_floats(sz(batch * classes), 100 + round, -range, range);
      const auto labels = random_labels(batch, classes, 200 + round);
      const std::string r = "round " + std::to_string(round);
      push_loss(b, *op, logits, labels, true, scale, r + " training", NaNs::kNone, results);
      const size_t training = results.size();
      push_loss(b, *op, logits, labels, false, scale, r + " evaluation", NaNs::kNone, results);
      EXPECT_EQ(results[training].values, results[training - 3].values) << "evaluation loss";
      EXPECT_EQ(results[training + 1].values, results[training - 2].values) << "evaluation top-k";
      for (float& v : logits) v = std::round(v * 2 / range);
      push_loss(b, *op, logits, labels, false, scale, r + " ties", NaNs::kNone, results);
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// Hand-made ranks: label ranked first (tied), fifth (four above), sixth (five above).
OpCase softmax_top_k_ties(std::string name) {
  auto run = [](Backend& b) {
    auto op = b.make_softmax_cross_entropy(3, 7, 0.0);
    const std::vector<float> logits = {
        1, 1, 1, 1, 1, 1, 1,  // label 3, all tied: top-1
        5, 4, 3, 2, 1, 0, 1,  // label 4 (value 1, tied with class 6): four above, top-5
        6, 5, 4, 3, 2, 1, 0,  // label 5: five above, neither
    };
    Results results;
    push_loss(b, *op, logits, {3, 4, 5}, true, 1.0f, "ranks", NaNs::kNone, results);
    EXPECT_EQ(results[1].values, (std::vector<double>{1, 2})) << "top-1, top-5";
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// A NaN logit makes the loss NaN and its own row's gradient NaN; the other rows are unaffected.
OpCase softmax_nan(std::string name) {
  auto run = [](Backend& b) {
    const int64_t batch = 4, classes = 6;
    auto op = b.make_softmax_cross_entropy(batch, classes, 0.1);
    auto logits = random_floats(sz(batch * classes), 110, -3, 3);
    logits[sz(2 * classes + 4)] = kNaN;
    Results results;
    push_loss(b, *op, logits, {0, 5, 1, 3}, true, 1.0f, "nan", NaNs::kInjected, results);
    const std::vector<double>& dz = results[1].values;
    for (size_t i = 0; i < dz.size(); ++i) {
      EXPECT_EQ(std::isnan(dz[i]), i / classes == 2) << "dlogits " << i;
    }
    return results;
  };
  return {std::move(name), kFloatSums, false, run};
}

// --- optimizer_update ------------------------------------------------------------------------

// The Optimizer over parameters in the backend's memory (host loops on host-memory backends,
// make_optimizer_update() elsewhere) against its host loops: the same per-element functions
// (trainer/optimizer_math.h) in the same float order, so bit for bit. Decay on the first part and
// off on the rest (biases), so that both decay variants run; a changing lr exercises the paper
// rule's units.
// LARS and LAMB (two layers and a bias range here) also scale each layer by a ratio of norms,
// double sums whose order differs on a device (kDoubleSums apart): an element may then round an
// ulp apart, so kLayerwise.
OpCase optimizer_update(std::string name, const OptimizerConfig& config,
                        Tolerance tolerance = kExact) {
  auto run = [=](Backend& b) {
    const size_t size = 10007;
    const std::vector<DecayRange> ranges = {
        {0, 2500, true}, {2500, 3500, true}, {6000, size - 6000, false}};
    Optimizer optimizer(config, size, ranges, &b);
    DeviceArray<float> params(b, random_floats(size, 15));
    for (uint32_t step = 0; step < 3; ++step) {
      DeviceArray<float> grads(b, random_floats(size, 16 + step));
      optimizer.step(std::span<float>(params.get(), size),
                     std::span<const float>(grads.get(), size), 0.01 * (step + 1));
    }
    Results results{{"params", to_double(params.read()), true}};
    for (const StateArray& s : optimizer.state()) {
      results.push_back(
          {s.name, to_double(std::vector<float>(s.values.begin(), s.values.end())), true});
    }
    return results;
  };
  return {std::move(name), tolerance, false, run};
}

OptimizerConfig sgd(const char* rule, bool nesterov, double momentum) {
  OptimizerConfig c;
  c.name = "sgd";
  c.momentum_rule = rule;
  c.nesterov = nesterov;
  c.momentum = momentum;
  c.weight_decay = 5e-4;
  return c;
}

OptimizerConfig adam(const char* name, bool decoupled) {
  OptimizerConfig c;
  c.name = name;
  c.weight_decay = 1e-2;
  c.decoupled_weight_decay = decoupled;
  return c;
}

OptimizerConfig layerwise(const char* name) {
  OptimizerConfig c;
  c.name = name;
  c.weight_decay = 1e-2;
  c.trust_coefficient = 0.02;
  return c;
}

// --- sum_of_squares and scale ----------------------------------------------------------------

// special: NaN or inf at one place (the overflow check of loss scaling), or 0 for none.
OpCase sum_of_squares_and_scale(std::string name, size_t n, float special = 0) {
  auto run = [=](Backend& b) {
    auto x = random_floats(n, 17, -3, 3);
    if (special != 0) x[n / 2] = special;
    DeviceArray<float> gx(b, x);
    const double sum = b.sum_of_squares(gx.get(), n), again = b.sum_of_squares(gx.get(), n);
    EXPECT_EQ(std::memcmp(&sum, &again, sizeof sum), 0) << "not deterministic";
    b.scale(gx.get(), n, 0.37f);  // x *= 0.37 in float: exact
    const NaNs nans = std::isnan(special) ? NaNs::kInjected : NaNs::kNone;
    return Results{Result{"sum of squares", {sum}, false, nans},
                   Result{"scaled", to_double(gx.read()), true, nans}};
  };
  return {std::move(name), kDoubleSums, false, run};
}

// ---------------------------------------------------------------------------------------------
// The table. Shapes: odd and non-power-of-two sizes, batch > 1, groups, strides, padding, and
// AlexNet's own (at small sizes) beside them. Conv2dShape: batch, in, out, height, width,
// kernel h/w, stride h/w, pad h/w, groups.

std::vector<OpCase> make_cases() {
  std::vector<OpCase> cases = {
      // conv2d: matrix products (kMatmul).
      conv2d("conv2d_alexnet_conv1_small", {2, 3, 64, 35, 35, 11, 11, 4, 4, 2, 2, 1}, true),
      conv2d("conv2d_conv1_like_63x63", {2, 3, 16, 63, 63, 11, 11, 4, 4, 2, 2, 1}, true),
      conv2d("conv2d_conv1_like_63x63_no_bias", {2, 3, 16, 63, 63, 11, 11, 4, 4, 2, 2, 1}, false),
      conv2d("conv2d_k5_pad2_groups2", {2, 10, 14, 11, 11, 5, 5, 1, 1, 2, 2, 2}, true),
      conv2d("conv2d_conv2_like_groups2", {2, 16, 24, 13, 13, 5, 5, 1, 1, 2, 2, 2}, true),
      conv2d("conv2d_conv2_like_groups2_no_bias", {2, 16, 24, 13, 13, 5, 5, 1, 1, 2, 2, 2}, false),
      conv2d("conv2d_k3_pad1_groups2_no_bias", {2, 18, 22, 13, 13, 3, 3, 1, 1, 1, 1, 2}, false),
      conv2d("conv2d_k3_pad1_batch3", {3, 24, 32, 7, 7, 3, 3, 1, 1, 1, 1, 1}, true),
      conv2d("conv2d_k3_pad1_batch3_no_bias", {3, 24, 32, 7, 7, 3, 3, 1, 1, 1, 1, 1}, false),
      conv2d("conv2d_odd_channels_stride2_batch3", {3, 5, 7, 15, 17, 3, 3, 2, 2, 1, 1, 1}, true),
      conv2d("conv2d_blocked_channels_k3", {2, 32, 48, 13, 13, 3, 3, 1, 1, 1, 1, 1}, true),
      conv2d("conv2d_non_square_kernel_groups3", {3, 6, 9, 10, 12, 3, 5, 2, 1, 0, 2, 3}, true),
      conv2d("conv2d_k3x2_stride2x3", {2, 5, 6, 11, 10, 3, 2, 2, 3, 1, 0, 1}, true),
      conv2d("conv2d_k3x2_stride2x3_no_bias", {2, 5, 6, 11, 10, 3, 2, 2, 3, 1, 0, 1}, false),
      conv2d("conv2d_nan", {2, 5, 7, 9, 9, 3, 3, 2, 2, 1, 1, 1}, true, /*inject_nan=*/true),
      // linear: matrix products (kMatmul).
      linear("linear_odd", 3, 37, 19, true),
      linear("linear_odd_11_outputs", 3, 37, 11, true),
      linear("linear_odd_no_bias", 5, 129, 7, false),
      linear("linear_single_output", 4, 65, 1, true),
      linear("linear_1x1x1", 1, 1, 1, true),
      linear("linear_wider", 7, 300, 65, true),
      linear("linear_batch8_256_to_100", 8, 256, 100, true),
      linear("linear_k1000_no_bias", 5, 1000, 3, false),
      linear("linear_batch17", 17, 129, 65, true),
      linear("linear_nan", 3, 11, 5, true, /*inject_nan=*/true),
      // relu: selection (kExact). An odd length: a vector loop's tail.
      relu("relu_odd_length", 1037, false),
      relu("relu_in_place", 3 * 7 * 11 * 5, true),
      // max_pool: y selection (exact), dx float sums (kFloatSums). Pool2dShape: batch, channels,
      // height, width, kernel (3), stride (2), pad (0): AlexNet's overlapping 3x3/2 by default.
      max_pool("max_pool_3x3s2_13x13", {.batch = 2, .channels = 5, .height = 13, .width = 13}, -1,
               1),
      max_pool("max_pool_3x3s2_27x27", {.batch = 3, .channels = 7, .height = 27, .width = 27}, -1,
               1),
      max_pool("max_pool_pad1_negative",
               {.batch = 2, .channels = 5, .height = 13, .width = 13, .pad = 1}, -2, -1),
      max_pool("max_pool_pad1_negative_12x11",
               {.batch = 2, .channels = 7, .height = 12, .width = 11, .pad = 1}, -2, -1),
      max_pool("max_pool_2x2s2_9x10",
               {.batch = 2, .channels = 3, .height = 9, .width = 10, .kernel = 2, .stride = 2}, -1,
               1),
      // adaptive_avg_pool: float sums (kFloatSums).
      adaptive_avg_pool("adaptive_avg_pool_overlapping_bins", 2, 5, 13, 13, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_6x6_copy", 2, 7, 6, 6, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_alexnet_256ch", 2, 256, 6, 6, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_uniform_2x2", 3, 5, 12, 12, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_uniform_rows", 2, 7, 12, 13, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_uniform_3x2", 2, 3, 18, 10, 6, 5),
      adaptive_avg_pool("adaptive_avg_pool_7x5_to_4x3", 2, 3, 7, 5, 4, 3),
      adaptive_avg_pool("adaptive_avg_pool_more_bins_than_inputs", 2, 5, 3, 4, 6, 6),
      adaptive_avg_pool("adaptive_avg_pool_1x1_to_6x6", 4, 3, 1, 1, 6, 6),
      // lrn: float sums (kFloatSums); the paper's k = 2, alpha = 1e-4, beta = 0.75 by default.
      lrn("lrn_size5_7ch", {.batch = 2, .channels = 7, .height = 5, .width = 3, .size = 5}, 60),
      lrn("lrn_size3", {.batch = 3, .channels = 5, .height = 4, .width = 7, .size = 3}, 60),
      lrn("lrn_size5_alexnet_96ch",
          {.batch = 2, .channels = 96, .height = 13, .width = 13, .size = 5}, 60),
      lrn("lrn_size5_16ch", {.batch = 2, .channels = 16, .height = 13, .width = 13, .size = 5}, 40),
      lrn("lrn_even_size4", {.batch = 2, .channels = 7, .height = 3, .width = 5, .size = 4}, 60),
      lrn("lrn_even_size4_9ch", {.batch = 2, .channels = 9, .height = 5, .width = 7, .size = 4},
          40),
      lrn("lrn_size1", {.batch = 2, .channels = 5, .height = 3, .width = 3, .size = 1}, 60),
      lrn("lrn_window_wider_than_channels",
          {.batch = 3,
           .channels = 3,
           .height = 4,
           .width = 5,
           .size = 7,
           .alpha = 0.01,
           .beta = 0.5,
           .k = 1},
          40),
      // batch_norm: float sums (kFloatSums).
      batch_norm("batch_norm_after_linear", {.batch = 4, .channels = 5, .spatial = 1}, -1, 3),
      batch_norm("batch_norm_after_linear_11ch", {.batch = 5, .channels = 11, .spatial = 1}, 1, 4),
      batch_norm("batch_norm_3x5", {.batch = 3, .channels = 7, .spatial = 15}, -1, 3),
      batch_norm("batch_norm_5x7", {.batch = 4, .channels = 6, .spatial = 5 * 7}, 1, 4),
      batch_norm("batch_norm_eps_momentum",
                 {.batch = 2, .channels = 16, .spatial = 15, .eps = 1e-3, .momentum = 0.3}, -1, 3),
      batch_norm("batch_norm_13x13_eps_momentum",
                 {.batch = 2, .channels = 3, .spatial = 13 * 13, .eps = 1e-3, .momentum = 0.3}, 1,
                 4),
      batch_norm_inference("batch_norm_inference_one_sample",
                           {.batch = 1, .channels = 7, .spatial = 1}),
      // dropout: the same mask and product (kExact). Odd n, not a multiple of any vector width.
      dropout("dropout_p0_5", 3 * 4099, 0.5),
      dropout("dropout_p0_1", 3 * 4099, 0.1),
      dropout("dropout_p0", 3 * 4099, 0.0),
      dropout("dropout_p1", 3 * 4099, 1.0),
      dropout("dropout_p1_3", 3 * 4099, 1.0 / 3),
      // flatten: a permutation (kExact).
      flatten("flatten_3x5x4x7", 3, 5, 4, 7),
      flatten("flatten_alexnet_256x6x6", 2, 256, 6, 6),
      flatten("flatten_5x7x3", 3, 5, 7, 3),
      flatten("flatten_1x1_spatial", 4, 9, 1, 1),
      flatten("flatten_one_channel", 2, 1, 4, 5),
      // softmax_cross_entropy: float sums (kFloatSums); top-1/top-5 exact.
      softmax_cross_entropy("softmax_cross_entropy", 9, 13, 0.0, 4, 1),
      softmax_cross_entropy("softmax_cross_entropy_smoothing0_1", 9, 13, 0.1, 4, 1),
      softmax_cross_entropy("softmax_cross_entropy_smoothing1", 9, 13, 1.0, 4, 1),
      softmax_cross_entropy("softmax_cross_entropy_4x10", 4, 10, 0.0, 5, 1),
      softmax_cross_entropy("softmax_cross_entropy_1000_classes", 37, 1000, 0.1, 5, 1),
      softmax_cross_entropy("softmax_cross_entropy_loss_scale512", 5, 7, 0.0, 5, 512),
      softmax_cross_entropy("softmax_cross_entropy_batch300", 300, 100, 0.2, 5, 1),
      softmax_cross_entropy("softmax_cross_entropy_3_classes", 2, 3, 0.0, 5, 1),
      softmax_top_k_ties("softmax_cross_entropy_top_k_ties"),
      softmax_nan("softmax_cross_entropy_nan"),
      // optimizer_update: the same per-element functions (kExact).
      optimizer_update("optimizer_update_sgd_plain", sgd("pytorch", false, 0.0)),
      optimizer_update("optimizer_update_sgd_momentum", sgd("pytorch", false, 0.9)),
      optimizer_update("optimizer_update_sgd_nesterov", sgd("pytorch", true, 0.9)),
      optimizer_update("optimizer_update_sgd_paper", sgd("paper", false, 0.9)),
      optimizer_update("optimizer_update_sgd_paper_nesterov", sgd("paper", true, 0.9)),
      optimizer_update("optimizer_update_adam", adam("adam", false)),
      optimizer_update("optimizer_update_adam_decoupled", adam("adam", true)),
      optimizer_update("optimizer_update_adamw", adam("adamw", true)),
      optimizer_update("optimizer_update_lars", layerwise("lars"), kLayerwise),
      optimizer_update("optimizer_update_lamb", layerwise("lamb"), kLayerwise),
      // sum_of_squares: double sums (kDoubleSums); scale exact.
      sum_of_squares_and_scale("sum_of_squares_n0", 0),
      sum_of_squares_and_scale("sum_of_squares_n1", 1),
      sum_of_squares_and_scale("sum_of_squares_n255", 255),
      sum_of_squares_and_scale("sum_of_squares_n1000003", 1000003),
      sum_of_squares_and_scale("sum_of_squares_n5000000", 5000000),
      sum_of_squares_and_scale("sum_of_squares_inf", 1000, kInf),
      sum_of_squares_and_scale("sum_of_squares_nan", 1000, kNaN),
  };
  return cases;
}

const std::vector<OpCase>& all_cases() {
  static const std::vector<OpCase> cases = make_cases();
  return cases;
}

// ---------------------------------------------------------------------------------------------
// The harness.

std::unique_ptr<Backend> make_target(const Target& t) {
  BackendOptions options;
  options.precision = t.precision;
  options.allow_tf32 = t.allow_tf32;
  return make_backend(t.backend, options);
}

// Where the target cannot run here, the reason (for GTEST_SKIP), else empty.
std::string unavailable(const Target& t) {
  if (std::string(t.backend) != "cuda") return "";
  if (!cuda_backend_built()) return "no CUDA backend in build";
  if (cuda_device_count() == 0) return "no CUDA device";
  return "";
}

class VsReference : public ::testing::TestWithParam<std::tuple<Target, size_t>> {};

TEST_P(VsReference, Matches) {
  const Target& target = std::get<0>(GetParam());
  const OpCase& c = all_cases()[std::get<1>(GetParam())];
  if (const std::string why = unavailable(target); !why.empty()) GTEST_SKIP() << why;
  Results want, got;
  {
    SCOPED_TRACE("on the reference backend");
    auto reference = make_reference_backend();
    want = c.run(*reference);
  }
  {
    SCOPED_TRACE(std::string("on ") + target.name);
    auto backend = make_target(target);
    got = c.run(*backend);
  }
  if (HasFatalFailure()) return;
  ASSERT_EQ(got.size(), want.size());
  const double tolerance = c.tolerance.*target.tolerance;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].name, want[i].name);
    const double own = want[i].own_tolerance ? want[i].own_tolerance->*target.tolerance : tolerance;
    expect_matches(got[i], want[i], own, c.conv && target.conv_nan_may_spread);
  }
}

std::string case_test_name(const ::testing::TestParamInfo<VsReference::ParamType>& info) {
  return std::string(std::get<0>(info.param).name) + "__" +
         all_cases()[std::get<1>(info.param)].name;
}

INSTANTIATE_TEST_SUITE_P(BackendOps, VsReference,
                         ::testing::Combine(::testing::ValuesIn(kTargets),
                                            ::testing::Range(size_t{0}, all_cases().size())),
                         case_test_name);

// ---------------------------------------------------------------------------------------------
// What every backend says of itself.

class Contract : public ::testing::TestWithParam<Target> {};

// Memory 64-byte aligned (oneDNN's and the vector loops' need; cudaMalloc gives 256); host memory
// exactly where there is no device optimizer update (the optimizer then runs host loops).
TEST_P(Contract, AllocatesAlignedAndSaysWhereItsMemoryIs) {
  const Target& target = GetParam();
  if (const std::string why = unavailable(target); !why.empty()) GTEST_SKIP() << why;
  auto backend = make_target(target);
  EXPECT_EQ(backend->name(), target.backend);
  for (size_t bytes : {size_t{1}, size_t{100}, size_t{4096}}) {
    Backend::Memory m = backend->allocate(bytes);
    ASSERT_NE(m.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.get()) % 64, 0u) << bytes << " bytes";
  }
  EXPECT_EQ(backend->host_memory(), backend->make_optimizer_update() == nullptr);
}

INSTANTIATE_TEST_SUITE_P(BackendOps, Contract, ::testing::ValuesIn(kTargets),
                         [](const auto& target) { return std::string(target.param.name); });

}  // namespace
}  // namespace alexnet::trainer::testing
