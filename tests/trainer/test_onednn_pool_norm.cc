// The oneDNN backend's pooling, LRN, batch-norm and dropout ops against the reference backend
// (the specification): same data, every output, gradient and running statistic compared.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"

namespace alexnet::trainer {
namespace {

using testing::from_backend;
using testing::random_floats;
using testing::relative_error;
using testing::to_backend;

// Both sides compute in float from the same inputs; they differ only in summation order and in
// the reference accumulating in double before its final rounding, a few float ulps (~1e-7)
// relative to the tensor's largest value for the short sums here (at most a few hundred terms;
// the largest seen is 2.2e-7). The mapping errors this test exists for (LRN alpha not scaled by
// the size, oneDNN's window for even sizes, a biased running variance, wrong adaptive bins) move
// results by 2% or more.
constexpr double kTolerance = 1e-5;

// Outputs start as NaN so that an element the op never writes fails the comparison.
std::vector<float> nans(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
}

class OnednnPoolNormTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> ref_ = make_reference_backend();
  std::unique_ptr<Backend> dnn_ = make_onednn_backend();
};

// ---------------------------------------------------------------------------------------------
// Max pooling.

struct MaxPoolCase {
  Pool2dShape shape;
  float lo, hi;  // input range
};

TEST_F(OnednnPoolNormTest, MaxPoolMatchesReference) {
  const MaxPoolCase cases[] = {
      {{.batch = 2, .channels = 5, .height = 13, .width = 13}, -1, 1},  // AlexNet's 3x3/2, pool 5
      {{.batch = 3, .channels = 7, .height = 27, .width = 27}, -1, 1},  // pools 1 and 2
      // All-negative inputs with padding: a zero-valued padding would win at the borders; the
      // reference's padding is -inf and never wins.
      {{.batch = 2, .channels = 5, .height = 13, .width = 13, .pad = 1}, -2, -1},
      {{.batch = 2, .channels = 7, .height = 12, .width = 11, .pad = 1}, -2, -1},
      {{.batch = 2, .channels = 3, .height = 9, .width = 10, .kernel = 2, .stride = 2}, -1, 1},
  };
  for (const MaxPoolCase& c : cases) {
    const Pool2dShape& s = c.shape;
    SCOPED_TRACE("max pool " + std::to_string(s.kernel) + "/" + std::to_string(s.stride) + " pad " +
                 std::to_string(s.pad) + " on " + std::to_string(s.height) + "x" +
                 std::to_string(s.width) + "x" + std::to_string(s.channels));
    const int64_t OH = s.out_height(), OW = s.out_width();
    const int64_t in = s.batch * s.channels * s.height * s.width;
    const int64_t out = s.batch * s.channels * OH * OW;
    auto ref = ref_->make_max_pool(s);
    auto dnn = dnn_->make_max_pool(s);
    for (uint32_t round = 0; round < 2; ++round) {  // twice: the op is reused with new data
      SCOPED_TRACE("round " + std::to_string(round));
      const auto x = random_floats(static_cast<size_t>(in), 100 + round, c.lo, c.hi);
      const auto dy = random_floats(static_cast<size_t>(out), 200 + round);
      const auto x_dnn = to_backend(*dnn_, x, s.batch, s.channels, s.height, s.width);
      const auto dy_dnn = to_backend(*dnn_, dy, s.batch, s.channels, OH, OW);

      for (bool training : {false, true}) {  // training last: backward needs its workspace
        auto y_ref = nans(out), y_dnn = nans(out);
        ref->forward(x.data(), y_ref.data(), training);
        dnn->forward(x_dnn.data(), y_dnn.data(), training);
        const auto y = from_backend(*dnn_, y_dnn, s.batch, s.channels, OH, OW);
        EXPECT_LT(relative_error(y, y_ref), kTolerance) << "y, training " << training;
        if (c.hi < 0) {
          for (float v : y) ASSERT_LT(v, 0.0f) << "padding won a window";
        }
      }
      auto dx_ref = nans(in), dx_dnn = nans(in);
      ref->backward(dy.data(), dx_ref.data());
      dnn->backward(dy_dnn.data(), dx_dnn.data());
      EXPECT_LT(relative_error(from_backend(*dnn_, dx_dnn, s.batch, s.channels, s.height, s.width),
                               dx_ref),
                kTolerance)
          << "dx";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Adaptive average pooling.

struct AdaptiveCase {
  int64_t batch, channels, height, width, out_h, out_w;
};

TEST_F(OnednnPoolNormTest, AdaptiveAvgPoolMatchesReference) {
  const AdaptiveCase cases[] = {
      {2, 5, 13, 13, 6, 6},  // overlapping bins: the loops
      {2, 7, 6, 6, 6, 6},    // torchvision AlexNet at 224x224: a copy
      {3, 5, 12, 12, 6, 6},  // uniform 2x2 bins: oneDNN average pooling
      {2, 7, 12, 13, 6, 6},  // uniform rows, overlapping columns: the loops
      {2, 3, 18, 10, 6, 5},  // uniform 3x2 bins
      {2, 5, 3, 4, 6, 6},    // more bins than inputs (each input in several bins): the loops
  };
  for (const AdaptiveCase& c : cases) {
    SCOPED_TRACE("adaptive " + std::to_string(c.height) + "x" + std::to_string(c.width) + " -> " +
                 std::to_string(c.out_h) + "x" + std::to_string(c.out_w));
    const int64_t in = c.batch * c.channels * c.height * c.width;
    const int64_t out = c.batch * c.channels * c.out_h * c.out_w;
    auto ref =
        ref_->make_adaptive_avg_pool(c.batch, c.channels, c.height, c.width, c.out_h, c.out_w);
    auto dnn =
        dnn_->make_adaptive_avg_pool(c.batch, c.channels, c.height, c.width, c.out_h, c.out_w);
    for (uint32_t round = 0; round < 2; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      const auto x = random_floats(static_cast<size_t>(in), 300 + round);
      const auto dy = random_floats(static_cast<size_t>(out), 400 + round);
      const auto x_dnn = to_backend(*dnn_, x, c.batch, c.channels, c.height, c.width);
      const auto dy_dnn = to_backend(*dnn_, dy, c.batch, c.channels, c.out_h, c.out_w);
      auto y_ref = nans(out), y_dnn = nans(out), dx_ref = nans(in), dx_dnn = nans(in);
      ref->forward(x.data(), y_ref.data());
      dnn->forward(x_dnn.data(), y_dnn.data());
      ref->backward(dy.data(), dx_ref.data());
      dnn->backward(dy_dnn.data(), dx_dnn.data());
      EXPECT_LT(
          relative_error(from_backend(*dnn_, y_dnn, c.batch, c.channels, c.out_h, c.out_w), y_ref),
          kTolerance)
          << "y";
      EXPECT_LT(relative_error(from_backend(*dnn_, dx_dnn, c.batch, c.channels, c.height, c.width),
                               dx_ref),
                kTolerance)
          << "dx";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Local response normalization.

TEST_F(OnednnPoolNormTest, LrnMatchesReference) {
  // The paper's k = 2, alpha = 1e-4, beta = 0.75 (the LrnShape defaults). Inputs of magnitude up
  // to 60 make alpha * sum(x^2) comparable to k (5 channels of 35^2 give 0.6), so a window or
  // alpha-scaling error shows: dividing alpha by the size once more, or summing one channel
  // more or less, moves outputs by several percent.
  const LrnShape cases[] = {
      {.batch = 2, .channels = 7, .height = 5, .width = 3, .size = 5},
      {.batch = 3, .channels = 5, .height = 4, .width = 7, .size = 3},
      {.batch = 2, .channels = 96, .height = 13, .width = 13, .size = 5},  // AlexNet's channels
      {.batch = 2, .channels = 7, .height = 3, .width = 5, .size = 4},     // even: the loops
      {.batch = 2, .channels = 5, .height = 3, .width = 3, .size = 1},
  };
  for (const LrnShape& s : cases) {
    SCOPED_TRACE("lrn size " + std::to_string(s.size) + " on " + std::to_string(s.height) + "x" +
                 std::to_string(s.width) + "x" + std::to_string(s.channels));
    const int64_t n = s.batch * s.channels * s.height * s.width;
    auto ref = ref_->make_lrn(s);
    auto dnn = dnn_->make_lrn(s);
    for (uint32_t round = 0; round < 2; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      const auto x = random_floats(static_cast<size_t>(n), 500 + round, -60, 60);
      const auto dy = random_floats(static_cast<size_t>(n), 600 + round);
      const auto x_dnn = to_backend(*dnn_, x, s.batch, s.channels, s.height, s.width);
      const auto dy_dnn = to_backend(*dnn_, dy, s.batch, s.channels, s.height, s.width);
      for (bool training : {false, true}) {  // training last: backward needs its workspace
        auto y_ref = nans(n), y_dnn = nans(n);
        ref->forward(x.data(), y_ref.data(), training);
        dnn->forward(x_dnn.data(), y_dnn.data(), training);
        EXPECT_LT(relative_error(from_backend(*dnn_, y_dnn, s.batch, s.channels, s.height, s.width),
                                 y_ref),
                  kTolerance)
            << "y, training " << training;
      }
      auto dx_ref = nans(n), dx_dnn = nans(n);
      ref->backward(x.data(), dy.data(), dx_ref.data());
      dnn->backward(x_dnn.data(), dy_dnn.data(), dx_dnn.data());
      EXPECT_LT(relative_error(from_backend(*dnn_, dx_dnn, s.batch, s.channels, s.height, s.width),
                               dx_ref),
                kTolerance)
          << "dx";
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Batch normalization.

TEST_F(OnednnPoolNormTest, BatchNormMatchesReference) {
  const BatchNormShape cases[] = {
      {.batch = 4, .channels = 5, .spatial = 1},   // after a linear layer: [N, C]
      {.batch = 3, .channels = 7, .spatial = 15},  // [N, C, 3x5]
      {.batch = 2, .channels = 16, .spatial = 15, .eps = 1e-3, .momentum = 0.3},
  };
  for (const BatchNormShape& s : cases) {
    SCOPED_TRACE("batch norm " + std::to_string(s.batch) + "x" + std::to_string(s.channels) + "x" +
                 std::to_string(s.spatial));
    const int64_t n = s.batch * s.channels * s.spatial;
    const auto C = static_cast<size_t>(s.channels);
    // [N, C, spatial] is [N, C, H = spatial, W = 1] for the layout conversion.
    auto to_dnn = [&](const std::vector<float>& v) {
      return to_backend(*dnn_, v, s.batch, s.channels, s.spatial, 1);
    };
    auto from_dnn = [&](const std::vector<float>& v) {
      return from_backend(*dnn_, v, s.batch, s.channels, s.spatial, 1);
    };
    auto ref = ref_->make_batch_norm(s);
    auto dnn = dnn_->make_batch_norm(s);
    // Running statistics evolve over both rounds on both sides, from the same start.
    auto mean_ref = random_floats(C, 700, -0.5, 0.5), var_ref = random_floats(C, 701, 0.5, 2);
    auto mean_dnn = mean_ref, var_dnn = var_ref;
    for (uint32_t round = 0; round < 2; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      // Off-centre inputs, so that subtracting the mean matters.
      const auto x = random_floats(static_cast<size_t>(n), 710 + round, -1, 3);
      const auto dy = random_floats(static_cast<size_t>(n), 720 + round);
      const auto gamma = random_floats(C, 730 + round, 0.5, 1.5);
      const auto beta = random_floats(C, 740 + round, -0.5, 0.5);
      const auto x_dnn = to_dnn(x), dy_dnn = to_dnn(dy);

      auto y_ref = nans(n), y_dnn = nans(n);
      ref->forward_training(x.data(), gamma.data(), beta.data(), y_ref.data(), mean_ref.data(),
                            var_ref.data());
      dnn->forward_training(x_dnn.data(), gamma.data(), beta.data(), y_dnn.data(), mean_dnn.data(),
                            var_dnn.data());
      EXPECT_LT(relative_error(from_dnn(y_dnn), y_ref), kTolerance) << "training y";
      EXPECT_LT(relative_error(mean_dnn, mean_ref), kTolerance) << "running mean";
      EXPECT_LT(relative_error(var_dnn, var_ref), kTolerance) << "running var";

      auto dx_ref = nans(n), dx_dnn = nans(n);
      auto dgamma_ref = nans(s.channels), dgamma_dnn = nans(s.channels);
      auto dbeta_ref = nans(s.channels), dbeta_dnn = nans(s.channels);
      ref->backward(x.data(), dy.data(), gamma.data(), dx_ref.data(), dgamma_ref.data(),
                    dbeta_ref.data());
      dnn->backward(x_dnn.data(), dy_dnn.data(), gamma.data(), dx_dnn.data(), dgamma_dnn.data(),
                    dbeta_dnn.data());
      EXPECT_LT(relative_error(from_dnn(dx_dnn), dx_ref), kTolerance) << "dx";
      EXPECT_LT(relative_error(dgamma_dnn, dgamma_ref), kTolerance) << "dgamma";
      EXPECT_LT(relative_error(dbeta_dnn, dbeta_ref), kTolerance) << "dbeta";

      // Inference with the updated running statistics (identical on both sides up to rounding;
      // each side uses its own, as a model would).
      const auto x2 = random_floats(static_cast<size_t>(n), 750 + round, -1, 3);
      auto z_ref = nans(n), z_dnn = nans(n);
      ref->forward_inference(x2.data(), gamma.data(), beta.data(), mean_ref.data(), var_ref.data(),
                             z_ref.data());
      dnn->forward_inference(to_dnn(x2).data(), gamma.data(), beta.data(), mean_dnn.data(),
                             var_dnn.data(), z_dnn.data());
      EXPECT_LT(relative_error(from_dnn(z_dnn), z_ref), kTolerance) << "inference y";
    }
  }
}

TEST_F(OnednnPoolNormTest, BatchNormInferenceWithOneSample) {
  // Inference needs no batch statistics, so a single sample is fine (training would throw).
  const BatchNormShape s{.batch = 1, .channels = 7, .spatial = 1};
  const auto C = static_cast<size_t>(s.channels);
  const auto x = random_floats(C, 800), gamma = random_floats(C, 801, 0.5, 1.5);
  const auto beta = random_floats(C, 802), mean = random_floats(C, 803);
  const auto var = random_floats(C, 804, 0.5, 2);
  auto y_ref = nans(s.channels), y_dnn = nans(s.channels);
  ref_->make_batch_norm(s)->forward_inference(x.data(), gamma.data(), beta.data(), mean.data(),
                                              var.data(), y_ref.data());
  auto dnn = dnn_->make_batch_norm(s);
  dnn->forward_inference(x.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                         y_dnn.data());
  EXPECT_LT(relative_error(y_dnn, y_ref), kTolerance);
  auto rm = mean, rv = var;
  EXPECT_THROW(dnn->forward_training(x.data(), gamma.data(), beta.data(), y_dnn.data(), rm.data(),
                                     rv.data()),
               std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Dropout: same mask and same float arithmetic, so bit for bit.

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_F(OnednnPoolNormTest, DropoutMatchesReferenceBitForBit) {
  const int64_t n = 3 * 4099;  // odd, not a multiple of any vector width
  for (double p : {0.5, 0.1, 0.0, 1.0, 1.0 / 3}) {
    SCOPED_TRACE("p " + std::to_string(p));
    auto ref = ref_->make_dropout(n, p);
    auto dnn = dnn_->make_dropout(n, p);
    std::vector<bool> previous_kept;
    for (uint32_t round = 0; round < 2; ++round) {
      SCOPED_TRACE("round " + std::to_string(round));
      auto x = random_floats(static_cast<size_t>(n), 900 + round);
      // Non-finite inputs: a dropped NaN or inf must stay NaN (multiplied by 0), not become 0.
      x[7] = std::numeric_limits<float>::quiet_NaN();
      x[8] = std::numeric_limits<float>::infinity();
      x[9] = -std::numeric_limits<float>::infinity();
      const auto dy = random_floats(static_cast<size_t>(n), 910 + round);
      const DropoutKey key{.seed = 1234, .step = round, .rank = 1, .layer = 2};
      auto y_ref = nans(n), y_dnn = nans(n), dx_ref = nans(n), dx_dnn = nans(n);
      ref->forward(key, x.data(), y_ref.data());
      dnn->forward(key, x.data(), y_dnn.data());
      ref->backward(dy.data(), dx_ref.data());
      dnn->backward(dy.data(), dx_dnn.data());
      EXPECT_TRUE(same_bits(y_dnn, y_ref)) << "y";
      EXPECT_TRUE(same_bits(dx_dnn, dx_ref)) << "dx";
      // dy has no zeros, so dx's zeros are the dropped elements.
      std::vector<bool> kept(static_cast<size_t>(n));
      for (size_t i = 0; i < kept.size(); ++i) kept[i] = dx_dnn[i] != 0;
      const double fraction =
          static_cast<double>(std::count(kept.begin(), kept.end(), true)) / static_cast<double>(n);
      // 5 standard deviations of a binomial fraction over n draws (at most 0.5 / sqrt(n) each).
      EXPECT_NEAR(fraction, 1 - p, 5 * 0.5 / std::sqrt(static_cast<double>(n)));
      // A new step draws a new mask.
      if (p > 0 && p < 1 && round == 1) {
        EXPECT_NE(kept, previous_kept);
      }
      previous_kept = kept;
    }
  }
}

TEST_F(OnednnPoolNormTest, RejectsWhatTheReferenceRejects) {
  EXPECT_THROW(dnn_->make_dropout(10, 1.5), std::invalid_argument);
  EXPECT_THROW(dnn_->make_max_pool({.height = 13, .width = 13, .kernel = 3, .pad = 2}),
               std::invalid_argument);
  EXPECT_THROW(dnn_->make_lrn({.size = 0}), std::invalid_argument);
}

}  // namespace
}  // namespace alexnet::trainer
