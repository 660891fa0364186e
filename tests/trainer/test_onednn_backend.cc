// The oneDNN backend's own contract, apart from its arithmetic (which tests/trainer/
// test_backend_ops.cc compares with the reference): what it rejects, how it describes itself,
// its memory's alignment, and one engine and stream per process.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::testing {
namespace {

class OneDnnBackend : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> onednn_ = make_onednn_backend();
};

TEST_F(OneDnnBackend, DescribesItselfAndAllocatesAligned) {
  EXPECT_EQ(onednn_->name(), "onednn");
  EXPECT_EQ(onednn_->activation_layout(), ActivationLayout::kNHWC);
  EXPECT_TRUE(onednn_->host_memory());
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{4096}}) {
    Backend::Memory m = onednn_->allocate(bytes);
    ASSERT_NE(m.get(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m.get()) % 64, 0u) << bytes << " bytes";
  }
  EXPECT_EQ(&onednn::engine(), &onednn::engine());  // one engine and stream per process
  EXPECT_EQ(&onednn::stream(), &onednn::stream());
}

TEST_F(OneDnnBackend, ConvRejectsAMissingOrUnexpectedBias) {
  const Conv2dShape s{1, 2, 3, 5, 5, 3, 3, 1, 1, 0, 0, 1};
  auto with_bias = onednn_->make_conv2d(s, true);
  auto without_bias = onednn_->make_conv2d(s, false);
  std::vector<float> x(2 * 25), w(3 * 2 * 9), b(3), y(3 * 9);
  EXPECT_THROW(with_bias->forward(x.data(), w.data(), nullptr, y.data()), std::invalid_argument);
  EXPECT_THROW(without_bias->forward(x.data(), w.data(), b.data(), y.data()),
               std::invalid_argument);
}

TEST_F(OneDnnBackend, ConvRejectsBadShapes) {
  EXPECT_THROW(onednn_->make_conv2d({1, 3, 4, 5, 5, 3, 3, 1, 1, 0, 0, 2}, true),
               std::invalid_argument);  // groups do not divide the channels
  EXPECT_THROW(onednn_->make_conv2d({1, 3, 4, 5, 5, 7, 7, 1, 1, 0, 0, 1}, true),
               std::invalid_argument);  // kernel larger than the input
}

TEST_F(OneDnnBackend, FlattenRejectsInPlace) {
  auto op = onednn_->make_flatten(2, 3, 2, 2);
  std::vector<float> x(24);
  EXPECT_THROW(op->forward(x.data(), x.data()), std::invalid_argument);
  EXPECT_THROW(op->backward(x.data(), x.data()), std::invalid_argument);
}

TEST_F(OneDnnBackend, SoftmaxRejectsBadLabels) {
  auto op = onednn_->make_softmax_cross_entropy(2, 5, 0.0);
  DeviceArray<float> logits(*onednn_, 10, 0.0f), dlogits(*onednn_, 10, 0.0f);
  for (const std::vector<int32_t>& labels : {std::vector<int32_t>{0, 5}, {-1, 0}}) {
    DeviceArray<int32_t> l(*onednn_, labels);
    EXPECT_THROW(op->forward_backward(logits.get(), l.get(), dlogits.get(), 1.0f),
                 std::invalid_argument)
        << labels[0] << ", " << labels[1];
  }
}

// Training needs batch statistics, so one sample is refused (inference with one is compared with
// the reference in test_backend_ops.cc).
TEST_F(OneDnnBackend, BatchNormTrainingRejectsOneSample) {
  const BatchNormShape s{.batch = 1, .channels = 7, .spatial = 1};
  auto op = onednn_->make_batch_norm(s);
  std::vector<float> x(7), gamma(7, 1.0f), beta(7), y(7), mean(7), var(7, 1.0f);
  EXPECT_THROW(
      op->forward_training(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), var.data()),
      std::invalid_argument);
}

TEST_F(OneDnnBackend, RejectsWhatTheReferenceRejects) {
  EXPECT_THROW(onednn_->make_dropout(10, 1.5), std::invalid_argument);
  EXPECT_THROW(onednn_->make_max_pool({.height = 13, .width = 13, .kernel = 3, .pad = 2}),
               std::invalid_argument);
  EXPECT_THROW(onednn_->make_lrn({.size = 0}), std::invalid_argument);
}

}  // namespace
}  // namespace alexnet::trainer::testing
