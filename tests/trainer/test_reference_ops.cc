// Reference ops: numerical gradients, hand-computed cases, dropout masks, shapes, NaN, dtypes.
#include "trainer/cpu/reference_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/dropout_math.h"

namespace alexnet::trainer::reference {
namespace {

using Vec = std::vector<double>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

size_t sz(int64_t n) { return static_cast<size_t>(n); }

// Uniform draws converted by hand from a fixed-seed engine, so that every standard library gives
// the same numbers (std::uniform_real_distribution is implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  }
  Vec vec(int64_t n, double lo = -1, double hi = 1) {
    Vec v(sz(n));
    for (double& e : v) e = uniform(lo, hi);
    return v;
  }
  // On a grid of 2^-12 of the range: see the gradient checker.
  double coarse(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(engine_() >> 52) * 0x1.0p-12;
  }
  Vec coarse_vec(int64_t n, double lo = -1, double hi = 1) {
    Vec v(sz(n));
    for (double& e : v) e = coarse(lo, hi);
    return v;
  }
  int32_t below(int32_t n) { return static_cast<int32_t>(engine_() % static_cast<uint64_t>(n)); }

 private:
  std::mt19937_64 engine_;
};

// Backward outputs start as NaN, so that an element a backward function fails to write fails
// the check instead of passing with a stale value.
Vec nans(size_t n) { return Vec(n, kNaN); }

std::vector<float> to_float(const Vec& v) { return {v.begin(), v.end()}; }
Vec to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// ---------------------------------------------------------------------------------------------
// The numerical gradient checker.

// Central differences with h = 2^-20 (about 1e-6). Inputs and r are drawn on a grid of 2^-12 of
// their range, so the ops that are linear in each input (conv, linear, max pool, ReLU) compute
// every product and sum of the perturbed inputs exactly in double, and with the loss summed in
// long double their numeric derivatives are exact. Averages and dropout round once per output;
// the smooth ops (LRN, batch norm, softmax) add truncation error h^2 f''' / 6, about 1e-13. Each
// rounding of an O(1) output, ~1e-16, becomes ~1e-10 after dividing by h, so gradients of 1e-4
// (the smallest drawn here) see relative errors up to ~1e-8 (measured: 2.4e-8). 1e-6 leaves a
// margin of 40, while a wrong index, sign or missing term gives errors of 1e-3 to 1.
constexpr double kStep = 0x1.0p-20;
constexpr double kGradTolerance = 1e-6;
// Inputs nearer than this to a kink are redrawn: 1000 steps, so no perturbation crosses one.
constexpr double kKinkMargin = 1e-3;

struct Wrt {
  const char* name;
  Vec* values;  // perturbed in place by the checker, restored afterwards
};

// Checks the analytic gradients of L = sum(y * r), r random, with respect to each input against
// central differences. `forward` computes y from the inputs' current values; `backward` returns
// dL/d(input) for each input, in order, given dy = r.
void check_gradients(const std::function<Vec()>& forward,
                     const std::function<std::vector<Vec>(const Vec& dy)>& backward,
                     const std::vector<Wrt>& inputs, uint64_t seed = 99) {
  Rng rng(seed);
  const Vec r = rng.coarse_vec(static_cast<int64_t>(forward().size()));
  const std::vector<Vec> analytic = backward(r);
  ASSERT_EQ(analytic.size(), inputs.size());
  auto loss = [&] {
    const Vec y = forward();
    long double sum = 0;
    for (size_t i = 0; i < y.size(); ++i) sum += static_cast<long double>(y[i]) * r[i];
    return sum;
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    Vec& v = *inputs[k].values;
    ASSERT_EQ(analytic[k].size(), v.size()) << inputs[k].name;
    double largest = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const double saved = v[i], plus = saved + kStep, minus = saved - kStep;
      v[i] = plus;
      const long double loss_plus = loss();
      v[i] = minus;
      const long double loss_minus = loss();
      v[i] = saved;
      // Divided by the step actually taken, in case rounding made it differ from 2h.
      const auto numeric = static_cast<double>((loss_plus - loss_minus) / (plus - minus));
      const double a = analytic[k][i];
      const double error =
          std::fabs(a - numeric) / std::max(1e-8, std::fabs(a) + std::fabs(numeric));
      ASSERT_LE(error, kGradTolerance)
          << "d/d" << inputs[k].name << "[" << i << "]: analytic " << a << ", numeric " << numeric;
      largest = std::max(largest, std::fabs(a));
    }
    EXPECT_GT(largest, 1e-3) << "d/d" << inputs[k].name << " is all zero: the check is vacuous";
  }
}

void keep_away_from_zero(Vec& v, Rng& rng) {
  for (double& e : v) {
    while (std::fabs(e) < kKinkMargin) e = rng.coarse(-1, 1);
  }
}

// Redraws any element within the margin of another one of its plane, so that no pooling window
// holds a near-tie whose winner a perturbation could change.
void keep_away_from_ties(Vec& v, int64_t plane, Rng& rng) {
  for (size_t start = 0; start < v.size(); start += sz(plane)) {
    for (size_t i = start; i < start + sz(plane); ++i) {
      auto near_an_earlier_one = [&] {
        for (size_t j = start; j < i; ++j) {
          if (std::fabs(v[i] - v[j]) < kKinkMargin) return true;
        }
        return false;
      };
      while (near_an_earlier_one()) v[i] = rng.coarse(-1, 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Gradient checks, op by op.

int64_t x_size(const Conv2dShape& s) { return s.batch * s.in_channels * s.height * s.width; }
int64_t w_size(const Conv2dShape& s) {
  return s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
}
int64_t y_size(const Conv2dShape& s) {
  return s.batch * s.out_channels * s.out_height() * s.out_width();
}

std::string describe(const Conv2dShape& s) {
  return "conv N" + std::to_string(s.batch) + " " + std::to_string(s.in_channels) + "->" +
         std::to_string(s.out_channels) + " " + std::to_string(s.height) + "x" +
         std::to_string(s.width) + " k" + std::to_string(s.kernel_h) + "x" +
         std::to_string(s.kernel_w) + " s" + std::to_string(s.stride_h) + "," +
         std::to_string(s.stride_w) + " p" + std::to_string(s.pad_h) + "," +
         std::to_string(s.pad_w) + " g" + std::to_string(s.groups);
}

// batch, in, out, height, width, kernel h/w, stride h/w, pad h/w, groups.
const Conv2dShape kConvShapes[] = {
    {2, 3, 5, 7, 5, 3, 3, 1, 1, 1, 1, 1},    // odd sizes, "same" padding
    {2, 4, 6, 9, 8, 3, 2, 2, 2, 2, 1, 2},    // non-square kernel, stride 2, groups 2
    {3, 2, 3, 5, 7, 1, 3, 2, 1, 0, 2, 1},    // 1x3 kernel, padding wider than half the kernel
    {2, 3, 4, 12, 11, 5, 5, 4, 4, 2, 2, 1},  // conv1's pattern; stride 4 leaves row 11 unread
    {2, 6, 3, 5, 6, 2, 3, 1, 2, 1, 0, 3},    // groups 3, even kernel height, column 5 unread
};

TEST(GradientCheck, Conv2d) {
  uint64_t seed = 1;
  for (const Conv2dShape& s : kConvShapes) {
    SCOPED_TRACE(describe(s));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(x_size(s)), w = rng.coarse_vec(w_size(s)),
        b = rng.coarse_vec(s.out_channels);
    check_gradients(
        [&] {
          Vec y(sz(y_size(s)));
          conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
          return y;
        },
        [&](const Vec& dy) {
          Vec dx = nans(x.size()), dw = nans(w.size()), db = nans(b.size());
          conv2d_backward_data(s, dy.data(), w.data(), dx.data());
          conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data());
          return std::vector<Vec>{dx, dw, db};
        },
        {{"x", &x}, {"w", &w}, {"b", &b}});
  }
}

TEST(GradientCheck, Relu) {
  const int64_t n = 3 * 5 * 7;
  Rng rng(2);
  Vec x = rng.coarse_vec(n);
  keep_away_from_zero(x, rng);
  auto forward = [&] {
    Vec y(sz(n));
    relu_forward(n, x.data(), y.data());
    return y;
  };
  check_gradients(forward,
                  [&](const Vec& dy) {
                    const Vec y = forward();
                    Vec dx = nans(sz(n));
                    relu_backward(n, y.data(), dy.data(), dx.data());
                    return std::vector<Vec>{dx};
                  },
                  {{"x", &x}});
}

TEST(GradientCheck, MaxPool) {
  // batch, channels, height, width, kernel, stride, pad.
  const Pool2dShape shapes[] = {
      {2, 3, 9, 7, 3, 2, 0},   // AlexNet's overlapping 3x3/2
      {2, 3, 8, 11, 3, 2, 1},  // with padding: edge windows are part padding
      {3, 2, 5, 6, 3, 1, 1},   // stride 1: each input sits in up to nine windows
  };
  uint64_t seed = 3;
  for (const Pool2dShape& s : shapes) {
    SCOPED_TRACE("pool " + std::to_string(s.height) + "x" + std::to_string(s.width) + " k" +
                 std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" +
                 std::to_string(s.pad));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(s.batch * s.channels * s.height * s.width);
    keep_away_from_ties(x, s.height * s.width, rng);
    const size_t out = sz(s.batch * s.channels * s.out_height() * s.out_width());
    std::vector<int32_t> argmax(out);
    auto forward = [&] {
      Vec y(out);
      max_pool_forward(s, x.data(), y.data(), argmax.data());
      return y;
    };
    check_gradients(forward,
                    [&](const Vec& dy) {
                      forward();  // the argmax of the unperturbed input
                      Vec dx = nans(x.size());
                      max_pool_backward(s, dy.data(), argmax.data(), dx.data());
                      return std::vector<Vec>{dx};
                    },
                    {{"x", &x}});
  }
}

TEST(GradientCheck, AdaptiveAvgPool) {
  struct Case {
    int64_t h, w, oh, ow;
  };
  // Non-dividing sizes make overlapping bins; the last case upsamples (bins repeat inputs).
  const Case cases[] = {{7, 5, 3, 2}, {13, 13, 6, 6}, {6, 6, 6, 6}, {3, 2, 5, 3}};
  const int64_t batch = 2, channels = 3;
  uint64_t seed = 4;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.h) + "x" + std::to_string(c.w) + " -> " + std::to_string(c.oh) +
                 "x" + std::to_string(c.ow));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(batch * channels * c.h * c.w);
    check_gradients(
        [&] {
          Vec y(sz(batch * channels * c.oh * c.ow));
          adaptive_avg_pool_forward(batch, channels, c.h, c.w, c.oh, c.ow, x.data(), y.data());
          return y;
        },
        [&](const Vec& dy) {
          Vec dx = nans(x.size());
          adaptive_avg_pool_backward(batch, channels, c.h, c.w, c.oh, c.ow, dy.data(), dx.data());
          return std::vector<Vec>{dx};
        },
        {{"x", &x}});
  }
}

TEST(GradientCheck, Lrn) {
  // A large alpha makes the cross-channel terms as big as the direct one (with the paper's alpha
  // of 1e-4 they are ~1e-4 of it and barely checked); the last case is the paper's.
  const LrnShape shapes[] = {
      {2, 7, 3, 2, 5, 0.6, 0.75, 1.0},
      {2, 7, 3, 2, 3, 0.6, 0.75, 1.0},
      {2, 7, 2, 3, 4, 0.6, 0.75, 1.0},  // even size: the window is lopsided
      {3, 7, 2, 3, 5, 1e-4, 0.75, 2.0},
  };
  uint64_t seed = 5;
  for (const LrnShape& s : shapes) {
    SCOPED_TRACE("lrn size " + std::to_string(s.size) + " alpha " + std::to_string(s.alpha));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(s.batch * s.channels * s.height * s.width, -2, 2);
    check_gradients(
        [&] {
          Vec y(x.size());
          lrn_forward(s, x.data(), y.data());
          return y;
        },
        [&](const Vec& dy) {
          Vec dx = nans(x.size());
          lrn_backward(s, x.data(), dy.data(), dx.data());
          return std::vector<Vec>{dx};
        },
        {{"x", &x}});
  }
}

TEST(GradientCheck, BatchNormTraining) {
  // Batch 5 at spatial 1: with only two values per channel x-hat is +-1 whatever x is, and
  // dL/dx would vanish up to eps.
  const BatchNormShape shapes[] = {{5, 3, 1, 1e-5, 0.1}, {3, 4, 15, 1e-5, 0.1}};
  uint64_t seed = 6;
  for (const BatchNormShape& s : shapes) {
    SCOPED_TRACE("batch norm N" + std::to_string(s.batch) + " spatial " +
                 std::to_string(s.spatial));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(s.batch * s.channels * s.spatial, -2, 2);
    Vec gamma = rng.coarse_vec(s.channels, 0.5, 1.5), beta = rng.coarse_vec(s.channels);
    const size_t C = sz(s.channels);
    Vec mean(C), invstd(C);
    auto forward = [&] {
      Vec y(x.size()), running_mean(C, 0), running_var(C, 1);
      batch_norm_forward_training(s, x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                  invstd.data(), running_mean.data(), running_var.data());
      return y;
    };
    check_gradients(forward,
                    [&](const Vec& dy) {
                      forward();  // the saved statistics of the unperturbed input
                      Vec dx = nans(x.size()), dgamma = nans(C), dbeta = nans(C);
                      batch_norm_backward(s, x.data(), dy.data(), gamma.data(), mean.data(),
                                          invstd.data(), dx.data(), dgamma.data(), dbeta.data());
                      return std::vector<Vec>{dx, dgamma, dbeta};
                    },
                    {{"x", &x}, {"gamma", &gamma}, {"beta", &beta}});
  }
}

TEST(GradientCheck, Linear) {
  struct Case {
    int64_t batch, in, out;
  };
  const Case cases[] = {{3, 7, 5}, {2, 1, 3}, {5, 11, 1}};
  uint64_t seed = 7;
  for (const Case& c : cases) {
    SCOPED_TRACE("linear " + std::to_string(c.batch) + "x" + std::to_string(c.in) + " -> " +
                 std::to_string(c.out));
    Rng rng(seed++);
    Vec x = rng.coarse_vec(c.batch * c.in), w = rng.coarse_vec(c.out * c.in),
        b = rng.coarse_vec(c.out);
    check_gradients(
        [&] {
          Vec y(sz(c.batch * c.out));
          linear_forward(c.batch, c.in, c.out, x.data(), w.data(), b.data(), y.data());
          return y;
        },
        [&](const Vec& dy) {
          Vec dx = nans(x.size()), dw = nans(w.size()), db = nans(b.size());
          linear_backward_data(c.batch, c.in, c.out, dy.data(), w.data(), dx.data());
          linear_backward_weights(c.batch, c.in, c.out, x.data(), dy.data(), dw.data(), db.data());
          return std::vector<Vec>{dx, dw, db};
        },
        {{"x", &x}, {"w", &w}, {"b", &b}});
  }
}

TEST(GradientCheck, Dropout) {
  const int64_t n = 3 * 11;
  const double p = 0.4;
  std::vector<uint8_t> mask(sz(n));
  dropout_mask(n, p, DropoutKey{.seed = 1, .step = 2, .rank = 0, .layer = 1}, mask.data());
  Rng rng(8);
  Vec x = rng.coarse_vec(n);
  check_gradients(
      [&] {
        Vec y(sz(n));
        dropout_forward(n, p, mask.data(), x.data(), y.data());
        return y;
      },
      [&](const Vec& dy) {
        Vec dx = nans(sz(n));
        dropout_backward(n, p, mask.data(), dy.data(), dx.data());
        return std::vector<Vec>{dx};
      },
      {{"x", &x}});
}

TEST(GradientCheck, SoftmaxCrossEntropy) {
  const int64_t batch = 3, classes = 7;
  for (double smoothing : {0.0, 0.1}) {
    SCOPED_TRACE("label smoothing " + std::to_string(smoothing));
    Rng rng(9);
    Vec logits = rng.coarse_vec(batch * classes);  // [-1, 1]: no tiny gradients, see kStep
    std::vector<int32_t> labels(sz(batch));
    for (auto& l : labels) l = rng.below(static_cast<int32_t>(classes));
    Vec dlogits(logits.size());
    check_gradients(
        [&] {
          return Vec{softmax_cross_entropy(batch, classes, logits.data(), labels.data(), smoothing,
                                           dlogits.data())};
        },
        [&](const Vec& dy) {
          Vec d = nans(logits.size());
          softmax_cross_entropy(batch, classes, logits.data(), labels.data(), smoothing, d.data());
          for (double& e : d) e *= dy[0];  // L = loss * r
          return std::vector<Vec>{d};
        },
        {{"logits", &logits}});
  }
}

// ---------------------------------------------------------------------------------------------
// Direct checks.

TEST(Conv2d, HandComputedWithPaddingAndStride) {
  // x[n] is a 3x3 ramp (1..9, then 10..90), w = [[1, 0], [0, -1]] computes x[i][j] - x[i+1][j+1]
  // over windows starting at -1 and 1 (pad 1, stride 2), so the padded corner zeros show.
  const Conv2dShape s{.batch = 2,
                      .height = 3,
                      .width = 3,
                      .kernel_h = 2,
                      .kernel_w = 2,
                      .stride_h = 2,
                      .stride_w = 2,
                      .pad_h = 1,
                      .pad_w = 1};
  const double x[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90};
  const double w[] = {1, 0, 0, -1}, b[] = {0.5};
  double y[8];
  conv2d_forward(s, x, w, b, y);
  // (0,0): 0 - x[0][0]; (0,1): 0 - x[0][2]; (1,0): 0 - x[2][0]; (1,1): x[1][1] - x[2][2].
  const double expected[] = {-0.5, -2.5, -6.5, -3.5, -9.5, -29.5, -69.5, -39.5};
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(y[i], expected[i]) << i;
  double no_bias[8];
  conv2d_forward<double>(s, x, w, nullptr, no_bias);
  for (int i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(no_bias[i], expected[i] - 0.5) << i;
}

TEST(Conv2d, HandComputedGroups) {
  // Two groups of two channels at 1x1: output 0 sees channels 0-1 only, output 1 channels 2-3.
  const Conv2dShape s{.batch = 2, .in_channels = 4, .out_channels = 2, .groups = 2};
  const double x[] = {1, 2, 3, 4, -1, -2, -3, -4};
  const double w[] = {1, 10, 100, 1000}, b[] = {0.25, -0.25};
  double y[4];
  conv2d_forward(s, x, w, b, y);
  EXPECT_DOUBLE_EQ(y[0], 21.25);
  EXPECT_DOUBLE_EQ(y[1], 4299.75);
  EXPECT_DOUBLE_EQ(y[2], -20.75);
  EXPECT_DOUBLE_EQ(y[3], -4300.25);
  // The weight gradient of a group reads only its own channels; db is the batch sum.
  const double dy[] = {1, 2, 3, 4};
  double dw[4], db[2];
  conv2d_backward_weights(s, x, dy, dw, db);
  EXPECT_DOUBLE_EQ(dw[0], 1 * 1 + 3 * -1);
  EXPECT_DOUBLE_EQ(dw[1], 1 * 2 + 3 * -2);
  EXPECT_DOUBLE_EQ(dw[2], 2 * 3 + 4 * -3);
  EXPECT_DOUBLE_EQ(dw[3], 2 * 4 + 4 * -4);
  EXPECT_DOUBLE_EQ(db[0], 4);
  EXPECT_DOUBLE_EQ(db[1], 6);
  double dw_only[4];
  conv2d_backward_weights<double>(s, x, dy, dw_only, nullptr);  // db is optional
  for (int i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(dw_only[i], dw[i]);
}

TEST(MaxPool, FirstMaximumWinsTiesAndPaddingNeverWins) {
  // A constant negative plane: every element ties, and zero padding would beat them all.
  const Pool2dShape s{
      .batch = 2, .channels = 3, .height = 7, .width = 5, .kernel = 3, .stride = 2, .pad = 1};
  const int64_t OH = s.out_height(), OW = s.out_width();
  Vec x(sz(s.batch * s.channels * s.height * s.width), -5.0);
  Vec y(sz(s.batch * s.channels * OH * OW));
  std::vector<int32_t> argmax(y.size());
  max_pool_forward(s, x.data(), y.data(), argmax.data());
  for (int64_t plane = 0; plane < s.batch * s.channels; ++plane) {
    for (int64_t oh = 0; oh < OH; ++oh) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        const size_t i = sz((plane * OH + oh) * OW + ow);
        EXPECT_EQ(y[i], -5.0);
        // The first in-image element of the window in row-major order.
        const int64_t h = std::max<int64_t>(0, oh * 2 - 1), w = std::max<int64_t>(0, ow * 2 - 1);
        EXPECT_EQ(argmax[i], h * s.width + w) << "plane " << plane << " at " << oh << "," << ow;
      }
    }
  }
  // A later tie does not take over from an earlier maximum.
  const Pool2dShape t{.batch = 2, .channels = 1, .height = 3, .width = 3, .kernel = 3};
  const double ties[] = {0, 7, 0, 0, 0, 7, 7, 0, 0, 1, 2, 3, 9, 5, 9, 9, 8, 9};
  double out[2];
  int32_t index[2];
  max_pool_forward(t, ties, out, index);
  EXPECT_EQ(out[0], 7);
  EXPECT_EQ(index[0], 1);
  EXPECT_EQ(out[1], 9);
  EXPECT_EQ(index[1], 3);
  // Overlapping windows that share a maximum both route their gradient to it.
  const Pool2dShape u{.batch = 2, .channels = 1, .height = 3, .width = 5, .kernel = 3};
  const double peak[] = {0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  double pooled[4], dx[30];
  int32_t where[4];
  max_pool_forward(u, peak, pooled, where);
  const double dy[] = {1, 10, 100, 1000};
  max_pool_backward(u, dy, where, dx);
  EXPECT_EQ(dx[2], 11);
  EXPECT_EQ(dx[15], 100);  // sample 1's windows start at columns 0 and 2
  EXPECT_EQ(dx[17], 1000);
  double total = 0;
  for (double d : dx) total += d;
  EXPECT_EQ(total, 1111);
}

TEST(AdaptiveAvgPool, BinsFollowPyTorch) {
  // 5 -> 3: bins [0, 2), [1, 4), [3, 5), overlapping at 1 and 3.
  const double x[] = {1, 2, 3, 4, 5, 10, 20, 30, 40, 50};
  double y[6];
  adaptive_avg_pool_forward(2, 1, 1, 5, 1, 3, x, y);
  const double expected[] = {1.5, 3, 4.5, 15, 30, 45};
  for (int i = 0; i < 6; ++i) EXPECT_DOUBLE_EQ(y[i], expected[i]) << i;
}

TEST(Lrn, WindowRunsFromCMinusHalfSize) {
  // Size 2: window(c) = [c - 1, c], so channel 0 sees only itself. alpha 1, beta 1, k 1.
  const LrnShape s{.batch = 2, .channels = 3, .size = 2, .alpha = 1, .beta = 1, .k = 1};
  const double x[] = {1, 2, 3, -1, 0, 2};
  double y[6];
  lrn_forward(s, x, y);
  EXPECT_DOUBLE_EQ(y[0], 1.0 / (1 + 1));
  EXPECT_DOUBLE_EQ(y[1], 2.0 / (1 + 1 + 4));
  EXPECT_DOUBLE_EQ(y[2], 3.0 / (1 + 4 + 9));
  EXPECT_DOUBLE_EQ(y[3], -1.0 / (1 + 1));
  EXPECT_DOUBLE_EQ(y[4], 0.0);
  EXPECT_DOUBLE_EQ(y[5], 2.0 / (1 + 0 + 4));
}

TEST(BatchNorm, RunningStatsFollowPyTorch) {
  // Channel 0 over the batch: {1, 2, 6}: mean 3, biased variance 14/3, unbiased 7.
  // Channel 1: {-1, -1, 5}: mean 1, biased variance 8, unbiased 12.
  const BatchNormShape s{.batch = 3, .channels = 2, .spatial = 1, .eps = 1e-5, .momentum = 0.1};
  const double x[] = {1, -1, 2, -1, 6, 5};
  const double gamma[] = {2, 1}, beta[] = {0.5, -1};
  double y[6], mean[2], invstd[2];
  double running_mean[] = {0.5, -2}, running_var[] = {2, 3};
  batch_norm_forward_training(s, x, gamma, beta, y, mean, invstd, running_mean, running_var);
  EXPECT_DOUBLE_EQ(mean[0], 3);
  EXPECT_DOUBLE_EQ(mean[1], 1);
  EXPECT_DOUBLE_EQ(invstd[0], 1 / std::sqrt(14.0 / 3 + 1e-5));
  EXPECT_DOUBLE_EQ(invstd[1], 1 / std::sqrt(8.0 + 1e-5));
  EXPECT_DOUBLE_EQ(running_mean[0], 0.9 * 0.5 + 0.1 * 3);
  EXPECT_DOUBLE_EQ(running_mean[1], 0.9 * -2 + 0.1 * 1);
  EXPECT_DOUBLE_EQ(running_var[0], 0.9 * 2 + 0.1 * 7);
  EXPECT_DOUBLE_EQ(running_var[1], 0.9 * 3 + 0.1 * 12);
  EXPECT_DOUBLE_EQ(y[0], (1 - 3) * invstd[0] * 2 + 0.5);
  EXPECT_DOUBLE_EQ(y[5], (5 - 1) * invstd[1] * 1 - 1);
}

TEST(BatchNorm, InferenceWithTheBatchStatisticsMatchesTraining) {
  const BatchNormShape s{.batch = 3, .channels = 5, .spatial = 7};
  Rng rng(10);
  const Vec x = rng.vec(s.batch * s.channels * s.spatial, -3, 3);
  const Vec gamma = rng.vec(s.channels), beta = rng.vec(s.channels);
  const size_t C = sz(s.channels);
  Vec train(x.size()), infer(x.size()), mean(C), invstd(C), running_mean(C), running_var(C);
  batch_norm_forward_training(s, x.data(), gamma.data(), beta.data(), train.data(), mean.data(),
                              invstd.data(), running_mean.data(), running_var.data());
  Vec biased_var(C);
  for (size_t c = 0; c < C; ++c) biased_var[c] = 1 / (invstd[c] * invstd[c]) - s.eps;
  batch_norm_forward_inference(s, x.data(), gamma.data(), beta.data(), mean.data(),
                               biased_var.data(), infer.data());
  // invstd squared and inverted loses a few ulps of the variance; outputs are O(3).
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(infer[i], train[i], 1e-12) << i;
}

TEST(SoftmaxCrossEntropy, ZeroLogitsGiveLogClasses) {
  const int64_t batch = 3, classes = 7;
  const Vec logits(sz(batch * classes), 0.0);
  const std::vector<int32_t> labels = {0, 6, 3};
  for (double smoothing : {0.0, 0.1, 1.0}) {
    Vec d(logits.size());
    const double loss =
        softmax_cross_entropy(batch, classes, logits.data(), labels.data(), smoothing, d.data());
    // The targets sum to 1, so a uniform prediction costs log(classes) whatever the smoothing.
    // log(7) ~ 1.95 has ulps of 2.2e-16; the loss sums 21 rounded products: 1e-14 is ~45 ulps.
    EXPECT_NEAR(loss, std::log(7.0), 1e-14) << smoothing;
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t c = 0; c < classes; ++c) {
        const double target = (c == labels[sz(n)] ? 1 - smoothing : 0) + smoothing / 7;
        // Gradients are at most 0.3 (ulp 5.6e-17) after three roundings: 1e-15 is ample.
        EXPECT_NEAR(d[sz(n * classes + c)], (1.0 / 7 - target) / 3, 1e-15);
      }
    }
  }
}

TEST(SoftmaxCrossEntropy, ShiftInvariantAndFiniteForLargeLogits) {
  const int64_t batch = 2, classes = 5;
  const Vec small = {1, -2, 0.5, 3, 0, -1, 2, 2, 0, 1};
  Vec large(small);
  for (double& z : large) z += 1000;  // exp(1000) overflows unless the maximum is subtracted
  const std::vector<int32_t> labels = {3, 1};
  Vec d_small(small.size()), d_large(large.size());
  const double a =
      softmax_cross_entropy(batch, classes, small.data(), labels.data(), 0.1, d_small.data());
  const double b =
      softmax_cross_entropy(batch, classes, large.data(), labels.data(), 0.1, d_large.data());
  ASSERT_TRUE(std::isfinite(b));
  // The shifted logits are exact, but the log-sum-exp is formed near 1000, whose ulp is 1.1e-13;
  // losses and gradients are O(1).
  EXPECT_NEAR(a, b, 1e-12);
  for (size_t i = 0; i < d_small.size(); ++i) EXPECT_NEAR(d_small[i], d_large[i], 1e-12) << i;
}

TEST(Dropout, MaskIsAPureFunctionOfTheKey) {
  const int64_t n = 1001;
  const double p = 0.5;
  const DropoutKey key{.seed = 7, .step = 3, .rank = 1, .layer = 2};
  std::vector<uint8_t> a(sz(n)), b(sz(n));
  dropout_mask(n, p, key, a.data());
  dropout_mask(n, p, key, b.data());
  EXPECT_EQ(a, b);
  // The documented contract shared with the CUDA kernels.
  const uint64_t stream = dropout_stream(7, 3, 1, 2);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(a[sz(i)], dropout_keep(stream, static_cast<uint64_t>(i), 1u << 23) ? 1 : 0) << i;
  }
  // Changing any part of the key redraws the mask: two independent p = 1/2 masks disagree on
  // about half the elements (sd 16 of 1001).
  DropoutKey keys[4] = {key, key, key, key};
  keys[0].seed = 8;
  keys[1].step = 4;
  keys[2].rank = 2;
  keys[3].layer = 3;
  for (const DropoutKey& other : keys) {
    dropout_mask(n, p, other, b.data());
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += a[sz(i)] != b[sz(i)];
    EXPECT_GT(differ, 400);
    EXPECT_LT(differ, 600);
  }
}

TEST(Dropout, KeepFractionMatchesP) {
  const int64_t n = 100000;
  std::vector<uint8_t> mask(sz(n));
  for (double p : {0.1, 0.37, 0.5, 0.9}) {
    dropout_mask(n, p, DropoutKey{.seed = 11, .step = 5, .rank = 3, .layer = 1}, mask.data());
    int64_t kept = 0;
    for (uint8_t m : mask) kept += m;
    const double expected = static_cast<double>(n) * (1 - p);
    const double sd = std::sqrt(static_cast<double>(n) * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(kept), expected, 5 * sd) << "p " << p;  // 5 sd: ~1 in 1.7e6
  }
  dropout_mask(n, 0.0, DropoutKey{.seed = 11}, mask.data());
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), n) << "p = 0 must keep everything";
  dropout_mask(n, 1.0, DropoutKey{.seed = 11}, mask.data());
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 0), n) << "p = 1 must drop everything";
}

TEST(Dropout, ForwardScalesKeptElementsAndZeroesDropped) {
  const int64_t n = 37;
  const double p = 0.3;
  std::vector<uint8_t> mask(sz(n));
  dropout_mask(n, p, DropoutKey{.seed = 2, .step = 9}, mask.data());
  Rng rng(12);
  const Vec x = rng.vec(n);
  Vec y(sz(n));
  dropout_forward(n, p, mask.data(), x.data(), y.data());
  for (size_t i = 0; i < sz(n); ++i) {
    EXPECT_DOUBLE_EQ(y[i], mask[i] ? x[i] / 0.7 : 0.0) << i;
  }
  dropout_forward(n, 0.0, mask.data(), x.data(), y.data());  // scale 1 at p = 0
  for (size_t i = 0; i < sz(n); ++i) EXPECT_EQ(y[i], mask[i] ? x[i] : 0.0) << i;
}

// ---------------------------------------------------------------------------------------------
// The float instantiation agrees with the double one.

// Both instantiations accumulate sums in double, so float differs by the rounding of its results
// and of a few element-wise steps done in float: a few ulps (1.2e-7 each). 1e-5 relative, with an
// absolute floor at outputs of magnitude 1 for values that cancel to near zero, is ~80 ulps.
void expect_close(const std::vector<float>& f, const Vec& d, const char* what) {
  ASSERT_EQ(f.size(), d.size()) << what;
  for (size_t i = 0; i < d.size(); ++i) {
    ASSERT_NEAR(f[i], d[i], 1e-5 * std::max(1.0, std::fabs(d[i]))) << what << "[" << i << "]";
  }
}

// Inputs drawn in double and rounded to float, so both instantiations see identical values.
Vec float_valued(Rng& rng, int64_t n, double lo = -1, double hi = 1) {
  return to_double(to_float(rng.vec(n, lo, hi)));
}

TEST(FloatMatchesDouble, Conv2dForwardAndBackward) {
  const Conv2dShape& s = kConvShapes[1];
  Rng rng(13);
  const Vec x = float_valued(rng, x_size(s)), w = float_valued(rng, w_size(s));
  const Vec b = float_valued(rng, s.out_channels), dy = float_valued(rng, y_size(s));
  Vec y(sz(y_size(s))), dx(x.size()), dw(w.size()), db(b.size());
  conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
  conv2d_backward_data(s, dy.data(), w.data(), dx.data());
  conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data());
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
  std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size()), dbf(db.size());
  conv2d_forward(s, xf.data(), wf.data(), bf.data(), yf.data());
  conv2d_backward_data(s, dyf.data(), wf.data(), dxf.data());
  conv2d_backward_weights(s, xf.data(), dyf.data(), dwf.data(), dbf.data());
  expect_close(yf, y, "y");
  expect_close(dxf, dx, "dx");
  expect_close(dwf, dw, "dw");
  expect_close(dbf, db, "db");
}

TEST(FloatMatchesDouble, LinearForwardAndBackward) {
  const int64_t batch = 3, in = 13, out = 7;
  Rng rng(14);
  const Vec x = float_valued(rng, batch * in), w = float_valued(rng, out * in);
  const Vec b = float_valued(rng, out), dy = float_valued(rng, batch * out);
  Vec y(sz(batch * out)), dx(x.size()), dw(w.size()), db(b.size());
  linear_forward(batch, in, out, x.data(), w.data(), b.data(), y.data());
  linear_backward_data(batch, in, out, dy.data(), w.data(), dx.data());
  linear_backward_weights(batch, in, out, x.data(), dy.data(), dw.data(), db.data());
  const auto xf = to_float(x), wf = to_float(w), bf = to_float(b), dyf = to_float(dy);
  std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size()), dbf(db.size());
  linear_forward(batch, in, out, xf.data(), wf.data(), bf.data(), yf.data());
  linear_backward_data(batch, in, out, dyf.data(), wf.data(), dxf.data());
  linear_backward_weights(batch, in, out, xf.data(), dyf.data(), dwf.data(), dbf.data());
  expect_close(yf, y, "y");
  expect_close(dxf, dx, "dx");
  expect_close(dwf, dw, "dw");
  expect_close(dbf, db, "db");
}

TEST(FloatMatchesDouble, PoolsLrnBatchNormSoftmax) {
  Rng rng(15);
  const Pool2dShape pool{.batch = 2, .channels = 3, .height = 9, .width = 7};
  const Vec px = float_valued(rng, pool.batch * pool.channels * pool.height * pool.width);
  Vec py(sz(pool.batch * pool.channels * pool.out_height() * pool.out_width()));
  std::vector<float> pyf(py.size());
  std::vector<int32_t> argmax(py.size()), argmax_f(py.size());
  max_pool_forward(pool, px.data(), py.data(), argmax.data());
  max_pool_forward(pool, to_float(px).data(), pyf.data(), argmax_f.data());
  expect_close(pyf, py, "max pool");
  EXPECT_EQ(argmax_f, argmax);

  Vec ay(2 * 3 * 3 * 2);
  std::vector<float> ayf(ay.size());
  adaptive_avg_pool_forward(2, 3, 7, 5, 3, 2, px.data(), ay.data());
  adaptive_avg_pool_forward(2, 3, 7, 5, 3, 2, to_float(px).data(), ayf.data());
  expect_close(ayf, ay, "adaptive avg pool");

  const LrnShape lrn{.batch = 2, .channels = 7, .height = 3, .width = 3, .size = 5, .alpha = 0.5};
  const Vec lx = float_valued(rng, 2 * 7 * 3 * 3, -2, 2), ldy = float_valued(rng, 2 * 7 * 3 * 3);
  Vec ly(lx.size()), ldx(lx.size());
  std::vector<float> lyf(lx.size()), ldxf(lx.size());
  lrn_forward(lrn, lx.data(), ly.data());
  lrn_backward(lrn, lx.data(), ldy.data(), ldx.data());
  lrn_forward(lrn, to_float(lx).data(), lyf.data());
  lrn_backward(lrn, to_float(lx).data(), to_float(ldy).data(), ldxf.data());
  expect_close(lyf, ly, "lrn");
  expect_close(ldxf, ldx, "lrn dx");

  const BatchNormShape bn{.batch = 3, .channels = 4, .spatial = 5};
  const Vec bx = float_valued(rng, 3 * 4 * 5, -2, 2), bdy = float_valued(rng, 3 * 4 * 5);
  const Vec gamma = float_valued(rng, 4), beta = float_valued(rng, 4);
  Vec by(bx.size()), bdx(bx.size()), mean(4), invstd(4), rm(4, 0), rv(4, 1), dg(4), dbeta(4);
  batch_norm_forward_training(bn, bx.data(), gamma.data(), beta.data(), by.data(), mean.data(),
                              invstd.data(), rm.data(), rv.data());
  batch_norm_backward(bn, bx.data(), bdy.data(), gamma.data(), mean.data(), invstd.data(),
                      bdx.data(), dg.data(), dbeta.data());
  const auto bxf = to_float(bx), gf = to_float(gamma), betaf = to_float(beta);
  std::vector<float> byf(by.size()), bdxf(bx.size()), meanf(4), invstdf(4), rmf(4, 0), rvf(4, 1);
  std::vector<float> dgf(4), dbetaf(4);
  batch_norm_forward_training(bn, bxf.data(), gf.data(), betaf.data(), byf.data(), meanf.data(),
                              invstdf.data(), rmf.data(), rvf.data());
  batch_norm_backward(bn, bxf.data(), to_float(bdy).data(), gf.data(), meanf.data(), invstdf.data(),
                      bdxf.data(), dgf.data(), dbetaf.data());
  expect_close(byf, by, "batch norm y");
  expect_close(rvf, rv, "running var");
  expect_close(bdxf, bdx, "batch norm dx");
  expect_close(dgf, dg, "dgamma");

  const Vec logits = float_valued(rng, 3 * 11, -4, 4);
  const std::vector<int32_t> labels = {10, 0, 4};
  Vec d(logits.size());
  std::vector<float> df(logits.size());
  const double loss = softmax_cross_entropy(3, 11, logits.data(), labels.data(), 0.1, d.data());
  const float loss_f =
      softmax_cross_entropy(3, 11, to_float(logits).data(), labels.data(), 0.1, df.data());
  EXPECT_NEAR(loss_f, loss, 1e-5 * std::max(1.0, loss));  // as expect_close
  expect_close(df, d, "dlogits");
}

// ---------------------------------------------------------------------------------------------
// Invalid shapes and NaN.

TEST(InvalidShapes, Throw) {
  // Buffers large enough for every call below, so a missing check fails the test, not memory.
  std::vector<float> buf(4096, 1.0f);
  std::vector<int32_t> idx(4096, 0);
  std::vector<uint8_t> mask(4096, 1);
  float* p = buf.data();
  auto conv = [&](Conv2dShape s) { conv2d_forward<float>(s, p, p, p, p); };
  EXPECT_THROW(conv({.in_channels = 3, .out_channels = 4, .groups = 2}), std::invalid_argument);
  EXPECT_THROW(conv({.in_channels = 4, .out_channels = 3, .groups = 2}), std::invalid_argument);
  EXPECT_THROW(conv({.batch = 0}), std::invalid_argument);
  EXPECT_THROW(conv({.height = 5, .width = 5, .stride_h = 0}), std::invalid_argument);
  EXPECT_THROW(conv({.height = 5, .width = 5, .pad_w = -1}), std::invalid_argument);
  // out_height() says 1 here ((4 - 5) / 2 + 1 truncates to 1); the kernel does not fit.
  EXPECT_THROW(conv({.height = 4, .width = 9, .kernel_h = 5, .kernel_w = 5, .stride_h = 2}),
               std::invalid_argument);
  EXPECT_NO_THROW(conv({.height = 3, .width = 5, .kernel_h = 5, .kernel_w = 5, .pad_h = 1}));
  EXPECT_THROW(conv2d_backward_data<float>({.groups = 0}, p, p, p), std::invalid_argument);
  EXPECT_THROW(conv2d_backward_weights<float>({.kernel_w = 2}, p, p, p, p), std::invalid_argument);

  auto pool = [&](Pool2dShape s) { max_pool_forward<float>(s, p, p, idx.data()); };
  EXPECT_THROW(pool({.height = 7, .width = 7, .kernel = 3, .pad = 2}), std::invalid_argument);
  EXPECT_THROW(pool({.height = 2, .width = 7}), std::invalid_argument);
  EXPECT_THROW(pool({.height = 7, .width = 7, .stride = 0}), std::invalid_argument);
  EXPECT_THROW(max_pool_backward<float>({.height = 2, .width = 2}, p, idx.data(), p),
               std::invalid_argument);
  idx[0] = 9;  // outside a 3x3 plane
  EXPECT_THROW(max_pool_backward<float>({.height = 3, .width = 3}, p, idx.data(), p),
               std::invalid_argument);

  EXPECT_THROW(adaptive_avg_pool_forward<float>(2, 3, 5, 5, 0, 2, p, p), std::invalid_argument);
  EXPECT_THROW(adaptive_avg_pool_backward<float>(2, 3, 5, 0, 2, 2, p, p), std::invalid_argument);
  EXPECT_THROW(lrn_forward<float>({.channels = 3, .size = 0}, p, p), std::invalid_argument);
  EXPECT_THROW(lrn_backward<float>({.channels = -1}, p, p, p), std::invalid_argument);
  // One value per channel has no unbiased variance.
  EXPECT_THROW(
      batch_norm_forward_training<float>({.batch = 1, .channels = 3}, p, p, p, p, p, p, p, p),
      std::invalid_argument);
  EXPECT_THROW(batch_norm_backward<float>({.batch = 3, .channels = 0}, p, p, p, p, p, p, p, p),
               std::invalid_argument);
  EXPECT_THROW(linear_forward<float>(2, 0, 3, p, p, p, p), std::invalid_argument);
  EXPECT_THROW(linear_backward_data<float>(0, 2, 3, p, p, p), std::invalid_argument);
  EXPECT_THROW(linear_backward_weights<float>(2, 3, -1, p, p, p, p), std::invalid_argument);
  EXPECT_THROW(dropout_mask(10, 1.5, {}, mask.data()), std::invalid_argument);
  EXPECT_THROW(dropout_mask(10, kNaN, {}, mask.data()), std::invalid_argument);
  EXPECT_THROW(dropout_forward<float>(10, -0.1, mask.data(), p, p), std::invalid_argument);
  const int32_t labels[] = {0, 5};
  EXPECT_THROW(softmax_cross_entropy<float>(2, 5, p, labels, 0.0, p), std::invalid_argument);
  const int32_t negative[] = {-1, 0};
  EXPECT_THROW(softmax_cross_entropy<float>(2, 5, p, negative, 0.0, p), std::invalid_argument);
  const int32_t fine[] = {0, 4};
  EXPECT_THROW(softmax_cross_entropy<float>(2, 5, p, fine, 1.5, p), std::invalid_argument);
}

TEST(NanPropagation, Conv2d) {
  const Conv2dShape s{.batch = 2,
                      .in_channels = 3,
                      .out_channels = 5,
                      .height = 7,
                      .width = 6,
                      .kernel_h = 3,
                      .kernel_w = 3,
                      .stride_h = 2,
                      .stride_w = 2};
  Rng rng(16);
  Vec x = rng.vec(x_size(s)), w = rng.vec(w_size(s)), b = rng.vec(s.out_channels);
  const int64_t OH = s.out_height(), OW = s.out_width();
  // x[1][2][3][2] is read by the outputs of sample 1 whose 3x3 windows (stride 2) cover it:
  // 2 oh <= 3 < 2 oh + 3 and 2 ow <= 2 < 2 ow + 3.
  x[sz(((1 * 3 + 2) * 7 + 3) * 6 + 2)] = kNaN;
  Vec y(sz(y_size(s)));
  conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
  for (int64_t n = 0; n < s.batch; ++n) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      for (int64_t oh = 0; oh < OH; ++oh) {
        for (int64_t ow = 0; ow < OW; ++ow) {
          const bool reads =
              n == 1 && 2 * oh <= 3 && 3 < 2 * oh + 3 && 2 * ow <= 2 && 2 < 2 * ow + 3;
          EXPECT_EQ(std::isnan(y[sz(((n * s.out_channels + o) * OH + oh) * OW + ow)]), reads)
              << n << " " << o << " " << oh << " " << ow;
        }
      }
    }
  }
  // The weight gradient of every filter reads that input.
  Vec dy(y.size(), 1.0), dw(w.size()), db(b.size());
  conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data());
  for (int64_t o = 0; o < s.out_channels; ++o) {
    bool any = false;
    for (int64_t k = 0; k < w_size(s) / s.out_channels; ++k) {
      any |= std::isnan(dw[sz(o * (w_size(s) / s.out_channels) + k)]);
    }
    EXPECT_TRUE(any) << "filter " << o;
  }
  // A NaN gradient reaches dx.
  Vec dx(x.size());
  dy[0] = kNaN;
  conv2d_backward_data(s, dy.data(), w.data(), dx.data());
  EXPECT_TRUE(std::isnan(dx[0]));
}

TEST(NanPropagation, Linear) {
  const int64_t batch = 3, in = 5, out = 4;
  Rng rng(17);
  Vec x = rng.vec(batch * in), w = rng.vec(out * in), b = rng.vec(out);
  x[sz(1 * in + 2)] = kNaN;  // sample 1
  w[sz(3 * in + 0)] = kNaN;  // output 3
  Vec y(sz(batch * out));
  linear_forward(batch, in, out, x.data(), w.data(), b.data(), y.data());
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      EXPECT_EQ(std::isnan(y[sz(n * out + o)]), n == 1 || o == 3) << n << " " << o;
    }
  }
  Vec dy(y.size(), 1.0), dx(x.size()), dw(w.size()), db(b.size());
  linear_backward_data(batch, in, out, dy.data(), w.data(), dx.data());
  for (int64_t n = 0; n < batch; ++n) EXPECT_TRUE(std::isnan(dx[sz(n * in)])) << n;
  linear_backward_weights(batch, in, out, x.data(), dy.data(), dw.data(), db.data());
  for (int64_t o = 0; o < out; ++o) EXPECT_TRUE(std::isnan(dw[sz(o * in + 2)])) << o;
}

TEST(NanPropagation, SoftmaxCrossEntropy) {
  const int64_t batch = 3, classes = 5;
  const std::vector<int32_t> labels = {0, 4, 2};
  // A NaN first in its row (where it would be the running maximum) and last (where a max() that
  // skips NaN leaves it out of the maximum): both must reach the loss and the row's gradients.
  for (int64_t position : {int64_t{0}, classes - 1}) {
    Vec logits = Rng(18).vec(batch * classes);
    logits[sz(1 * classes + position)] = kNaN;
    Vec d(logits.size());
    const double loss =
        softmax_cross_entropy(batch, classes, logits.data(), labels.data(), 0.0, d.data());
    EXPECT_TRUE(std::isnan(loss)) << position;
    for (int64_t c = 0; c < classes; ++c) {
      EXPECT_TRUE(std::isnan(d[sz(1 * classes + c)])) << position << " " << c;
      EXPECT_FALSE(std::isnan(d[sz(0 * classes + c)])) << position << " " << c;
    }
    const std::vector<float> logits_f = to_float(logits);
    std::vector<float> d_f(logits.size());
    EXPECT_TRUE(std::isnan(
        softmax_cross_entropy(batch, classes, logits_f.data(), labels.data(), 0.1, d_f.data())));
  }
}

TEST(NanPropagation, ReluMaxPoolAndDropoutFollowPyTorch) {
  const double x[] = {kNaN, -1, 2};
  double y[3], dx[3];
  relu_forward(3, x, y);
  EXPECT_TRUE(std::isnan(y[0]));
  const double dy[] = {5, 6, 7};
  relu_backward(3, y, dy, dx);
  EXPECT_EQ(dx[0], 5);  // threshold_backward: NaN is not <= 0
  EXPECT_EQ(dx[1], 0);
  const Pool2dShape s{.batch = 2, .channels = 1, .height = 3, .width = 3};
  const double plane[] = {1, 2, 3, 4, kNaN, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  double pooled[2];
  int32_t argmax[2];
  max_pool_forward(s, plane, pooled, argmax);
  EXPECT_TRUE(std::isnan(pooled[0]));
  EXPECT_EQ(argmax[0], 4);
  EXPECT_EQ(pooled[1], 9);
  const uint8_t dropped[] = {0, 1, 0};
  dropout_forward(3, 0.5, dropped, x, y);
  EXPECT_TRUE(std::isnan(y[0]));  // a multiply, as PyTorch: a dropped NaN is not hidden
}

}  // namespace
}  // namespace alexnet::trainer::reference
