// The oneDNN backend's conv, linear, ReLU, flatten and softmax cross-entropy against the
// reference backend on the same random data: every output and gradient, NaN propagation, reuse.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// oneDNN sums in float (in its own blocked order, with FMAs); the reference sums in double and
// rounds once. A float sum of K terms of random sign drifts by about sqrt(K) * 2^-24 times the
// terms' size, while a tensor's largest output is a few times sqrt(K) times the terms' size, so
// relative_error() (the error over the tensor's largest value) stays near 1e-7 for the K of a few
// hundred in these shapes (measured: at most 6.9e-7, conv; 2.9e-7, linear). 1e-5 leaves a margin
// of over 10, while a wrong index, a missing term or a stale output is off by 1e-2 or more.
constexpr double kTolerance = 1e-5;

size_t sz(int64_t n) { return static_cast<size_t>(n); }

// A vector of n floats in a backend's memory.
class Buffer {
 public:
  Buffer(Backend& backend, size_t n)
      : backend_(&backend), n_(n), memory_(backend.allocate(n * sizeof(float))) {}
  Buffer(Backend& backend, const std::vector<float>& values) : Buffer(backend, values.size()) {
    backend_->copy_to_device(memory_.get(), values.data(), n_ * sizeof(float));
  }
  float* get() { return static_cast<float*>(memory_.get()); }
  std::vector<float> read() {
    backend_->synchronize();
    std::vector<float> v(n_);
    backend_->copy_to_host(v.data(), memory_.get(), n_ * sizeof(float));
    return v;
  }

 private:
  Backend* backend_;
  size_t n_;
  Backend::Memory memory_;
};

// Outputs start as NaN, so an element an op fails to write fails the comparison.
Buffer nan_buffer(Backend& backend, size_t n) {
  return Buffer(backend, std::vector<float>(n, kNaN));
}

// NaN at the same places, and the rest within the tolerance.
void expect_close_with_nans(const std::vector<float>& got, const std::vector<float>& want,
                            const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::vector<float> got_finite = got, want_finite = want;
  int64_t nans = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(std::isnan(got[i]), std::isnan(want[i])) << what << " element " << i;
    if (std::isnan(want[i])) {
      got_finite[i] = want_finite[i] = 0;
      ++nans;
    }
  }
  EXPECT_GT(nans, 0) << what << ": expected some NaN";
  EXPECT_LT(relative_error(got_finite, want_finite), kTolerance) << what;
}

class OneDnnVsReference : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> onednn_ = make_onednn_backend();
  std::unique_ptr<Backend> reference_ = make_reference_backend();
};

// ---------------------------------------------------------------------------------------------
// Convolution.

struct ConvData {
  std::vector<float> x, w, b, dy;  // NCHW activations, OIHW weights
};

struct ConvResult {
  std::vector<float> y, dx, dw, db;  // NCHW activations, OIHW weights
};

ConvData random_conv_data(const Conv2dShape& s, uint32_t seed) {
  const int64_t oh = s.out_height(), ow = s.out_width();
  return {random_floats(sz(s.batch * s.in_channels * s.height * s.width), seed),
          random_floats(sz(s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w),
                        seed + 1),
          random_floats(sz(s.out_channels), seed + 2),
          random_floats(sz(s.batch * s.out_channels * oh * ow), seed + 3)};
}

// Forward, backward data and backward weights of one op on one backend.
ConvResult run_conv(Backend& backend, Conv2dOp& op, const Conv2dShape& s, bool bias,
                    const ConvData& d) {
  const int64_t n = s.batch, ic = s.in_channels, oc = s.out_channels;
  const int64_t oh = s.out_height(), ow = s.out_width();
  Buffer x(backend, to_backend(backend, d.x, n, ic, s.height, s.width));
  Buffer w(backend, d.w), b(backend, d.b);
  Buffer dy(backend, to_backend(backend, d.dy, n, oc, oh, ow));
  Buffer y = nan_buffer(backend, sz(n * oc * oh * ow));
  Buffer dx = nan_buffer(backend, d.x.size());
  Buffer dw = nan_buffer(backend, d.w.size()), db = nan_buffer(backend, d.b.size());
  op.forward(x.get(), w.get(), bias ? b.get() : nullptr, y.get());
  op.backward_data(dy.get(), w.get(), dx.get());
  op.backward_weights(x.get(), dy.get(), dw.get(), bias ? db.get() : nullptr);
  return {from_backend(backend, y.read(), n, oc, oh, ow),
          from_backend(backend, dx.read(), n, ic, s.height, s.width), dw.read(),
          bias ? db.read() : std::vector<float>{}};
}

struct ConvCase {
  const char* name;
  Conv2dShape shape;
  bool bias;
};

// Conv2dShape fields: batch, in, out, height, width, kernel h/w, stride h/w, pad h/w, groups.
const ConvCase kConvCases[] = {
    {"alexnet_conv1_small", {2, 3, 64, 35, 35, 11, 11, 4, 4, 2, 2, 1}, true},
    {"k5_pad2_groups2", {2, 10, 14, 11, 11, 5, 5, 1, 1, 2, 2, 2}, true},
    {"k3_pad1_groups2_no_bias", {2, 18, 22, 13, 13, 3, 3, 1, 1, 1, 1, 2}, false},
    {"odd_channels_stride2_batch3", {3, 5, 7, 15, 17, 3, 3, 2, 2, 1, 1, 1}, true},
    {"blocked_channels_k3", {2, 32, 48, 13, 13, 3, 3, 1, 1, 1, 1, 1}, true},
    {"non_square_kernel_no_pad", {3, 6, 9, 10, 12, 3, 5, 2, 1, 0, 2, 3}, true},
};

class ConvVsReference : public OneDnnVsReference, public ::testing::WithParamInterface<ConvCase> {};

// Every output and gradient, twice on the same op objects with different data (ops are made once
// per layer and reused every step).
TEST_P(ConvVsReference, MatchesReferenceAndIsReusable) {
  const ConvCase& c = GetParam();
  auto fast = onednn_->make_conv2d(c.shape, c.bias);
  auto ref = reference_->make_conv2d(c.shape, c.bias);
  for (uint32_t seed : {10u, 20u}) {
    const ConvData d = random_conv_data(c.shape, seed);
    const ConvResult got = run_conv(*onednn_, *fast, c.shape, c.bias, d);
    const ConvResult want = run_conv(*reference_, *ref, c.shape, c.bias, d);
    EXPECT_LT(relative_error(got.y, want.y), kTolerance) << "y, seed " << seed;
    EXPECT_LT(relative_error(got.dx, want.dx), kTolerance) << "dx, seed " << seed;
    EXPECT_LT(relative_error(got.dw, want.dw), kTolerance) << "dw, seed " << seed;
    EXPECT_LT(relative_error(got.db, want.db), kTolerance) << "db, seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvVsReference, ::testing::ValuesIn(kConvCases),
                         [](const auto& test) { return std::string(test.param.name); });

// A NaN in x reaches exactly the outputs whose windows hold it, and the weight gradients it
// multiplies; a NaN in dy reaches the inputs under its window.
TEST_F(OneDnnVsReference, ConvPropagatesNaN) {
  const Conv2dShape s{2, 5, 7, 9, 9, 3, 3, 2, 2, 1, 1, 1};
  auto fast = onednn_->make_conv2d(s, true);
  auto ref = reference_->make_conv2d(s, true);
  ConvData d = random_conv_data(s, 30);
  d.x[d.x.size() / 3] = kNaN;
  d.dy[d.dy.size() / 2] = kNaN;
  const ConvResult got = run_conv(*onednn_, *fast, s, true, d);
  const ConvResult want = run_conv(*reference_, *ref, s, true, d);
  expect_close_with_nans(got.y, want.y, "y");
  expect_close_with_nans(got.dx, want.dx, "dx");
  expect_close_with_nans(got.dw, want.dw, "dw");
  expect_close_with_nans(got.db, want.db, "db");
}

TEST_F(OneDnnVsReference, ConvRejectsAMissingOrUnexpectedBias) {
  const Conv2dShape s{1, 2, 3, 5, 5, 3, 3, 1, 1, 0, 0, 1};
  auto with_bias = onednn_->make_conv2d(s, true);
  auto without_bias = onednn_->make_conv2d(s, false);
  std::vector<float> x(2 * 25), w(3 * 2 * 9), b(3), y(3 * 9);
  EXPECT_THROW(with_bias->forward(x.data(), w.data(), nullptr, y.data()), std::invalid_argument);
  EXPECT_THROW(without_bias->forward(x.data(), w.data(), b.data(), y.data()),
               std::invalid_argument);
}

TEST_F(OneDnnVsReference, ConvRejectsBadShapes) {
  EXPECT_THROW(onednn_->make_conv2d({1, 3, 4, 5, 5, 3, 3, 1, 1, 0, 0, 2}, true),
               std::invalid_argument);  // groups do not divide the channels
  EXPECT_THROW(onednn_->make_conv2d({1, 3, 4, 5, 5, 7, 7, 1, 1, 0, 0, 1}, true),
               std::invalid_argument);  // kernel larger than the input
}

// ---------------------------------------------------------------------------------------------
// Linear.

struct LinearCase {
  const char* name;
  int64_t batch, in, out;
  bool bias;
};

const LinearCase kLinearCases[] = {
    {"odd_with_bias", 3, 37, 19, true},
    {"odd_no_bias", 5, 129, 7, false},
    {"single_output", 4, 65, 1, true},
    {"wider", 7, 300, 65, true},
};

class LinearVsReference : public OneDnnVsReference,
                          public ::testing::WithParamInterface<LinearCase> {};

TEST_P(LinearVsReference, MatchesReferenceAndIsReusable) {
  const LinearCase& c = GetParam();
  auto fast = onednn_->make_linear(c.batch, c.in, c.out, c.bias);
  auto ref = reference_->make_linear(c.batch, c.in, c.out, c.bias);
  for (uint32_t seed : {40u, 50u}) {
    const std::vector<float> x = random_floats(sz(c.batch * c.in), seed);
    const std::vector<float> w = random_floats(sz(c.out * c.in), seed + 1);
    const std::vector<float> b = random_floats(sz(c.out), seed + 2);
    const std::vector<float> dy = random_floats(sz(c.batch * c.out), seed + 3);
    std::vector<float> results[2][4];  // [backend][y, dx, dw, db]
    for (int k = 0; k < 2; ++k) {
      Backend& backend = k == 0 ? *onednn_ : *reference_;
      LinearOp& op = k == 0 ? *fast : *ref;
      Buffer xb(backend, x), wb(backend, w), bb(backend, b), dyb(backend, dy);
      Buffer y = nan_buffer(backend, sz(c.batch * c.out)), dx = nan_buffer(backend, x.size());
      Buffer dw = nan_buffer(backend, w.size()), db = nan_buffer(backend, b.size());
      op.forward(xb.get(), wb.get(), c.bias ? bb.get() : nullptr, y.get());
      op.backward_data(dyb.get(), wb.get(), dx.get());
      op.backward_weights(xb.get(), dyb.get(), dw.get(), c.bias ? db.get() : nullptr);
      results[k][0] = y.read();
      results[k][1] = dx.read();
      results[k][2] = dw.read();
      if (c.bias) results[k][3] = db.read();
    }
    const char* names[] = {"y", "dx", "dw", "db"};
    for (int i = 0; i < 4; ++i) {
      EXPECT_LT(relative_error(results[0][i], results[1][i]), kTolerance)
          << names[i] << ", seed " << seed;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearVsReference, ::testing::ValuesIn(kLinearCases),
                         [](const auto& test) { return std::string(test.param.name); });

TEST_F(OneDnnVsReference, LinearPropagatesNaN) {
  const int64_t batch = 3, in = 11, out = 5;
  auto op = onednn_->make_linear(batch, in, out, true);
  std::vector<float> x = random_floats(sz(batch * in), 60);
  x[sz(in + 4)] = kNaN;  // sample 1
  const std::vector<float> w = random_floats(sz(out * in), 61), b(sz(out), 0.5f);
  Buffer xb(*onednn_, x), wb(*onednn_, w), bb(*onednn_, b), y(*onednn_, sz(batch * out));
  op->forward(xb.get(), wb.get(), bb.get(), y.get());
  const std::vector<float> got = y.read();
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out; ++o) {
      EXPECT_EQ(std::isnan(got[sz(n * out + o)]), n == 1) << "sample " << n << " output " << o;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ReLU.

// Exact: ReLU only selects values. Zeros, NaN and an odd length (a vector loop's tail).
TEST_F(OneDnnVsReference, ReluMatchesReferenceExactlyWithNaN) {
  const int64_t n = 1037;
  std::vector<float> x = random_floats(sz(n), 70), dy = random_floats(sz(n), 71);
  x[3] = kNaN;
  x[1036] = kNaN;
  x[10] = 0.0f;
  x[11] = -0.0f;
  dy[5] = kNaN;
  auto fast = onednn_->make_relu(n);
  auto ref = reference_->make_relu(n);
  std::vector<float> y[2], dx[2];
  for (int k = 0; k < 2; ++k) {
    Backend& backend = k == 0 ? *onednn_ : *reference_;
    ReluOp& op = k == 0 ? *fast : *ref;
    Buffer xb(backend, x), dyb(backend, dy);
    Buffer yb = nan_buffer(backend, sz(n)), dxb = nan_buffer(backend, sz(n));
    op.forward(xb.get(), yb.get());
    op.backward(yb.get(), dyb.get(), dxb.get());
    y[k] = yb.read();
    dx[k] = dxb.read();
  }
  EXPECT_TRUE(std::isnan(y[0][3]) && std::isnan(y[0][1036])) << "NaN passes ReLU";
  for (int64_t i = 0; i < n; ++i) {
    const size_t j = sz(i);
    // Bitwise, NaN included (memcmp), so -0 and +0 count as different too.
    EXPECT_EQ(std::memcmp(&y[0][j], &y[1][j], sizeof(float)), 0) << "y " << i;
    EXPECT_EQ(std::memcmp(&dx[0][j], &dx[1][j], sizeof(float)), 0) << "dx " << i;
  }
}

TEST_F(OneDnnVsReference, ReluInPlace) {
  const int64_t n = 77;
  const std::vector<float> x = random_floats(sz(n), 80), dy = random_floats(sz(n), 81);
  auto op = onednn_->make_relu(n);
  Buffer yb(*onednn_, x), dyb(*onednn_, dy);
  op->forward(yb.get(), yb.get());
  op->backward(yb.get(), dyb.get(), dyb.get());
  const std::vector<float> y = yb.read(), dx = dyb.read();
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 0.0f) << i;
    EXPECT_EQ(dx[i], x[i] > 0 ? dy[i] : 0.0f) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Flatten.

// The oneDNN backend's flatten of NHWC data is PyTorch's (C, H, W) order, i.e. the NCHW data
// itself, exactly as the reference backend's; backward restores NHWC exactly.
TEST_F(OneDnnVsReference, FlattenIsNchwOrderAndRoundTrips) {
  const int64_t n = 3, c = 5, h = 4, w = 7;
  auto fast = onednn_->make_flatten(n, c, h, w);
  auto ref = reference_->make_flatten(n, c, h, w);
  for (uint32_t seed : {90u, 91u}) {
    std::vector<float> nchw = random_floats(sz(n * c * h * w), seed);
    nchw[17] = kNaN;
    const std::vector<float> nhwc = to_backend(*onednn_, nchw, n, c, h, w);
    Buffer x(*onednn_, nhwc), y = nan_buffer(*onednn_, nchw.size());
    Buffer dx = nan_buffer(*onednn_, nchw.size());
    fast->forward(x.get(), y.get());
    fast->backward(y.get(), dx.get());
    Buffer ref_x(*reference_, nchw), ref_y = nan_buffer(*reference_, nchw.size());
    ref->forward(ref_x.get(), ref_y.get());
    const std::vector<float> got = y.read(), want = ref_y.read(), back = dx.read();
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(got.data(), nchw.data(), got.size() * sizeof(float)), 0);
    EXPECT_EQ(std::memcmp(back.data(), nhwc.data(), back.size() * sizeof(float)), 0);
  }
}

TEST_F(OneDnnVsReference, FlattenRejectsInPlace) {
  auto op = onednn_->make_flatten(2, 3, 2, 2);
  std::vector<float> x(24);
  EXPECT_THROW(op->forward(x.data(), x.data()), std::invalid_argument);
  EXPECT_THROW(op->backward(x.data(), x.data()), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy.

struct LossRun {
  LossResult result;
  std::vector<float> dlogits;
};

LossRun run_loss(Backend& backend, SoftmaxCrossEntropyOp& op, const std::vector<float>& logits,
                 const std::vector<int32_t>& labels, bool with_gradient) {
  Buffer lb(backend, logits), dl = nan_buffer(backend, logits.size());
  Backend::Memory label_memory = backend.allocate(labels.size() * sizeof(int32_t));
  backend.copy_to_device(label_memory.get(), labels.data(), labels.size() * sizeof(int32_t));
  LossRun r;
  r.result = op.forward_backward(lb.get(), static_cast<const int32_t*>(label_memory.get()),
                                 with_gradient ? dl.get() : nullptr, 1.0f);
  if (with_gradient) r.dlogits = dl.read();
  return r;
}

std::vector<int32_t> random_labels(int64_t n, int64_t classes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> labels(sz(n));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<uint32_t>(classes));
  return labels;
}

class SoftmaxVsReference : public OneDnnVsReference,
                           public ::testing::WithParamInterface<double> {};

// Random logits for the loss and gradient; integer logits in a small range for top-1/top-5, so
// that ties with the label's logit (which count for the label) are common.
TEST_P(SoftmaxVsReference, MatchesReference) {
  const double smoothing = GetParam();
  const int64_t batch = 9, classes = 13;
  auto fast = onednn_->make_softmax_cross_entropy(batch, classes, smoothing);
  auto ref = reference_->make_softmax_cross_entropy(batch, classes, smoothing);
  for (uint32_t seed : {100u, 101u}) {
    std::vector<float> logits = random_floats(sz(batch * classes), seed, -4, 4);
    const std::vector<int32_t> labels = random_labels(batch, classes, seed + 1);
    const LossRun got = run_loss(*onednn_, *fast, logits, labels, true);
    const LossRun want = run_loss(*reference_, *ref, logits, labels, true);
    EXPECT_LT(std::abs(got.result.loss - want.result.loss) / std::abs(want.result.loss),
              kTolerance);
    EXPECT_LT(relative_error(got.dlogits, want.dlogits), kTolerance);
    EXPECT_EQ(got.result.top1, want.result.top1);
    EXPECT_EQ(got.result.top5, want.result.top5);

    // Evaluation (no gradient) gives the same result.
    const LossRun eval = run_loss(*onednn_, *fast, logits, labels, false);
    EXPECT_EQ(eval.result.loss, got.result.loss);
    EXPECT_EQ(eval.result.top1, got.result.top1);
    EXPECT_EQ(eval.result.top5, got.result.top5);

    for (float& z : logits) z = std::round(z / 2);  // -2..2: many ties
    const LossRun tied = run_loss(*onednn_, *fast, logits, labels, false);
    const LossRun tied_want = run_loss(*reference_, *ref, logits, labels, false);
    EXPECT_EQ(tied.result.top1, tied_want.result.top1);
    EXPECT_EQ(tied.result.top5, tied_want.result.top5);
  }
}

INSTANTIATE_TEST_SUITE_P(Smoothing, SoftmaxVsReference, ::testing::Values(0.0, 0.1, 1.0));

// Hand-made ranks: label ranked first (tied), fifth (four above), sixth (five above).
TEST_F(OneDnnVsReference, SoftmaxTopKCountsTiesForTheLabel) {
  const int64_t classes = 7;
  auto op = onednn_->make_softmax_cross_entropy(3, classes, 0.0);
  const std::vector<float> logits = {
      1, 1, 1, 1, 1, 1, 1,  // all tied: top-1
      5, 4, 3, 2, 1, 0, 1,  // label 4 (value 1, tied with class 6): four above, top-5
      6, 5, 4, 3, 2, 1, 0,  // label 5: five above, neither
  };
  const LossRun r = run_loss(*onednn_, *op, logits, {3, 4, 5}, false);
  EXPECT_EQ(r.result.top1, 1);
  EXPECT_EQ(r.result.top5, 2);
}

// A NaN logit makes the loss NaN and its own row's gradient NaN; the other rows are unaffected.
TEST_F(OneDnnVsReference, SoftmaxPropagatesNaN) {
  const int64_t batch = 4, classes = 6;
  auto fast = onednn_->make_softmax_cross_entropy(batch, classes, 0.1);
  auto ref = reference_->make_softmax_cross_entropy(batch, classes, 0.1);
  std::vector<float> logits = random_floats(sz(batch * classes), 110, -3, 3);
  logits[sz(2 * classes + 4)] = kNaN;
  const std::vector<int32_t> labels = {0, 5, 1, 3};
  const LossRun got = run_loss(*onednn_, *fast, logits, labels, true);
  const LossRun want = run_loss(*reference_, *ref, logits, labels, true);
  EXPECT_TRUE(std::isnan(got.result.loss));
  for (int64_t i = 0; i < batch * classes; ++i) {
    EXPECT_EQ(std::isnan(got.dlogits[sz(i)]), i / classes == 2) << i;
  }
  expect_close_with_nans(got.dlogits, want.dlogits, "dlogits");
}

TEST_F(OneDnnVsReference, SoftmaxRejectsBadLabels) {
  auto op = onednn_->make_softmax_cross_entropy(2, 5, 0.0);
  const std::vector<float> logits(10, 0.0f);
  EXPECT_THROW(run_loss(*onednn_, *op, logits, {0, 5}, true), std::invalid_argument);
  EXPECT_THROW(run_loss(*onednn_, *op, logits, {-1, 0}, true), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// The backend itself.

TEST(OneDnnBackend, DescribesItselfAndAllocatesAligned) {
  auto backend = make_onednn_backend();
  EXPECT_EQ(backend->name(), "onednn");
  EXPECT_EQ(backend->activation_layout(), ActivationLayout::kNHWC);
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}}) {
    Backend::Memory m = backend->allocate(bytes);
    ASSERT_NE(m.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.get()) % 64, 0u) << bytes << " bytes";
  }
  EXPECT_EQ(&onednn::engine(), &onednn::engine());  // one engine and stream per process
  EXPECT_EQ(&onednn::stream(), &onednn::stream());
}

}  // namespace
}  // namespace alexnet::trainer::testing
