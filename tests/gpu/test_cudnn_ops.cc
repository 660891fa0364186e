// The CUDA backend's cuDNN ops (conv, ReLU, max pool, LRN, batch norm) against the reference
// backend (the specification), forward and backward, at small AlexNet-like and odd shapes.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "tests/gpu/gpu_test.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"

namespace alexnet::trainer {
namespace {

using testing::DeviceArray;
using testing::from_backend;
using testing::random_floats;
using testing::relative_error;
using testing::to_backend;

// fp32 without TF32: both sides are fp32 arithmetic in different summation orders (cuDNN's
// algorithms, FFT / Winograd included, the reference's double accumulation): ~1e-6 relative to a
// tensor's largest value for these sums of up to ~1200 terms; a wrong layout, window or
// convention is off by far more.
constexpr double kFp32Tolerance = 1e-4;
// bf16 inputs carry 8-bit mantissas (relative rounding 2^-9 ~ 0.2%); with fp32 accumulation the
// errors of a sum partly cancel, and dw is rounded to bf16 once more: well under 1%.
constexpr double kBf16Tolerance = 1e-2;

std::vector<float> nans(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

std::unique_ptr<Backend> cuda_backend(Precision precision) {
  BackendOptions options;
  options.precision = precision;
  options.allow_tf32 = false;
  return make_backend("cuda", options);
}

// ---------------------------------------------------------------------------------------------
// Convolution.

struct ConvCase {
  const char* name;
  Conv2dShape shape;
};

const ConvCase kConvCases[] = {
    {"conv1-like 11x11/4 pad 2",
     {.batch = 2,
      .in_channels = 3,
      .out_channels = 16,
      .height = 63,
      .width = 63,
      .kernel_h = 11,
      .kernel_w = 11,
      .stride_h = 4,
      .stride_w = 4,
      .pad_h = 2,
      .pad_w = 2}},
    {"conv2-like 5x5 pad 2 groups 2",
     {.batch = 2,
      .in_channels = 16,
      .out_channels = 24,
      .height = 13,
      .width = 13,
      .kernel_h = 5,
      .kernel_w = 5,
      .pad_h = 2,
      .pad_w = 2,
      .groups = 2}},
    {"3x3 pad 1",
     {.batch = 3,
      .in_channels = 24,
      .out_channels = 32,
      .height = 7,
      .width = 7,
      .kernel_h = 3,
      .kernel_w = 3,
      .pad_h = 1,
      .pad_w = 1}},
    {"odd 3x2/2x3",
     {.batch = 2,
      .in_channels = 5,
      .out_channels = 6,
      .height = 11,
      .width = 10,
      .kernel_h = 3,
      .kernel_w = 2,
      .stride_h = 2,
      .stride_w = 3,
      .pad_h = 1,
      .pad_w = 0}},
};

void check_conv(Precision precision, double tolerance) {
  auto ref = make_reference_backend();
  auto gpu = cuda_backend(precision);
  for (const ConvCase& c : kConvCases) {
    for (bool bias : {true, false}) {
      const Conv2dShape& s = c.shape;
      SCOPED_TRACE(std::string(c.name) + (bias ? " with bias" : " without bias") + " in " +
                   precision_name(precision));
      const int64_t OH = s.out_height(), OW = s.out_width();
      const auto nx = static_cast<size_t>(s.batch * s.in_channels * s.height * s.width);
      const auto ny = static_cast<size_t>(s.batch * s.out_channels * OH * OW);
      const auto nw =
          static_cast<size_t>(s.out_channels * s.in_channels / s.groups * s.kernel_h * s.kernel_w);
      const auto x = random_floats(nx, 1);
      const auto w = random_floats(nw, 2);
      const auto b = random_floats(static_cast<size_t>(s.out_channels), 3);
      const auto dy = random_floats(ny, 4);

      auto ref_op = ref->make_conv2d(s, bias);
      std::vector<float> y_ref(ny), dx_ref(nx), dw_ref(nw),
          db_ref(static_cast<size_t>(s.out_channels));
      ref_op->forward(x.data(), w.data(), bias ? b.data() : nullptr, y_ref.data());
      ref_op->backward_data(dy.data(), w.data(), dx_ref.data());
      ref_op->backward_weights(x.data(), dy.data(), dw_ref.data(), bias ? db_ref.data() : nullptr);

      auto op = gpu->make_conv2d(s, bias);
      DeviceArray<> gx(*gpu, to_backend(*gpu, x, s.batch, s.in_channels, s.height, s.width));
      DeviceArray<> gw(*gpu, w), gb(*gpu, b);
      DeviceArray<> gdy(*gpu, to_backend(*gpu, dy, s.batch, s.out_channels, OH, OW));
      DeviceArray<> gy(*gpu, nans(ny)), gdx(*gpu, nans(nx)), gdw(*gpu, nans(nw));
      DeviceArray<> gdb(*gpu, nans(static_cast<size_t>(s.out_channels)));
      for (int round = 0; round < 2; ++round) {  // twice: the op is reused
        op->forward(gx.get(), gw.get(), bias ? gb.get() : nullptr, gy.get());
        op->backward_data(gdy.get(), gw.get(), gdx.get());
        op->backward_weights(gx.get(), gdy.get(), gdw.get(), bias ? gdb.get() : nullptr);
      }
      EXPECT_LT(
          relative_error(from_backend(*gpu, gy.read(), s.batch, s.out_channels, OH, OW), y_ref),
          tolerance);
      EXPECT_LT(
          relative_error(from_backend(*gpu, gdx.read(), s.batch, s.in_channels, s.height, s.width),
                         dx_ref),
          tolerance);
      EXPECT_LT(relative_error(gdw.read(), dw_ref), tolerance);
      if (bias) {
        EXPECT_LT(relative_error(gdb.read(), db_ref), tolerance);
      }
    }
  }
}

TEST(CudnnOps, ConvFp32MatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  check_conv(Precision::kFloat32, kFp32Tolerance);
}

TEST(CudnnOps, ConvBf16MatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  check_conv(Precision::kBFloat16, kBf16Tolerance);
}

// ---------------------------------------------------------------------------------------------
// ReLU.

TEST(CudnnOps, ReluMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto ref = make_reference_backend();
  auto gpu = cuda_backend(Precision::kFloat32);
  const int64_t n = 3 * 7 * 11 * 5;
  const auto x = random_floats(static_cast<size_t>(n), 11);
  const auto dy = random_floats(static_cast<size_t>(n), 12);
  std::vector<float> y_ref(x.size()), dx_ref(x.size());
  auto ref_op = ref->make_relu(n);
  ref_op->forward(x.data(), y_ref.data());
  ref_op->backward(y_ref.data(), dy.data(), dx_ref.data());

  auto op = gpu->make_relu(n);
  DeviceArray<> gx(*gpu, x), gdy(*gpu, dy), gdx(*gpu, nans(x.size()));
  op->forward(gx.get(), gx.get());  // in place, as the model runs it
  op->backward(gx.get(), gdy.get(), gdx.get());
  EXPECT_EQ(relative_error(gx.read(), y_ref), 0);  // exact: max(x, 0)
  EXPECT_EQ(relative_error(gdx.read(), dx_ref), 0);
}

// ---------------------------------------------------------------------------------------------
// Max pooling.

struct PoolCase {
  Pool2dShape shape;
  float lo, hi;  // input range
};

TEST(CudnnOps, MaxPoolMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto ref = make_reference_backend();
  auto gpu = cuda_backend(Precision::kFloat32);
  const PoolCase cases[] = {
      {{.batch = 2, .channels = 5, .height = 13, .width = 13}, -1, 1},  // AlexNet's 3x3/2
      {{.batch = 3, .channels = 7, .height = 27, .width = 27}, -1, 1},
      // All negative with padding: a zero padding would win at the borders; it must not.
      {{.batch = 2, .channels = 5, .height = 13, .width = 13, .pad = 1}, -2, -1},
      {{.batch = 2, .channels = 7, .height = 12, .width = 11, .pad = 1}, -2, -1},
      {{.batch = 2, .channels = 3, .height = 9, .width = 10, .kernel = 2, .stride = 2}, -1, 1},
  };
  for (const PoolCase& c : cases) {
    const Pool2dShape& s = c.shape;
    SCOPED_TRACE("pool " + std::to_string(s.kernel) + "/" + std::to_string(s.stride) + " pad " +
                 std::to_string(s.pad) + " on " + std::to_string(s.height) + "x" +
                 std::to_string(s.width));
    const int64_t OH = s.out_height(), OW = s.out_width();
    const auto nx = static_cast<size_t>(s.batch * s.channels * s.height * s.width);
    const auto ny = static_cast<size_t>(s.batch * s.channels * OH * OW);
    const auto x = random_floats(nx, 21, c.lo, c.hi);
    const auto dy = random_floats(ny, 22);
    auto ref_op = ref->make_max_pool(s);
    std::vector<float> y_ref(ny), dx_ref(nx);
    ref_op->forward(x.data(), y_ref.data(), true);
    ref_op->backward(dy.data(), dx_ref.data());

    auto op = gpu->make_max_pool(s);
    DeviceArray<> gx(*gpu, to_backend(*gpu, x, s.batch, s.channels, s.height, s.width));
    DeviceArray<> gdy(*gpu, to_backend(*gpu, dy, s.batch, s.channels, OH, OW));
    DeviceArray<> gy(*gpu, nans(ny)), gy_infer(*gpu, nans(ny)), gdx(*gpu, nans(nx));
    op->forward(gx.get(), gy_infer.get(), false);
    op->forward(gx.get(), gy.get(), true);
    op->backward(gdy.get(), gdx.get());
    // Selection is exact; gradients sum at most a few overlapping windows' dy.
    EXPECT_EQ(relative_error(from_backend(*gpu, gy.read(), s.batch, s.channels, OH, OW), y_ref), 0);
    EXPECT_EQ(
        relative_error(from_backend(*gpu, gy_infer.read(), s.batch, s.channels, OH, OW), y_ref), 0);
    EXPECT_LT(relative_error(from_backend(*gpu, gdx.read(), s.batch, s.channels, s.height, s.width),
                             dx_ref),
              kFp32Tolerance);
  }
}

// ---------------------------------------------------------------------------------------------
// LRN.

TEST(CudnnOps, LrnMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto ref = make_reference_backend();
  auto gpu = cuda_backend(Precision::kFloat32);
  const LrnShape shapes[] = {
      {.batch = 2, .channels = 16, .height = 13, .width = 13, .size = 5},  // the paper's
      {.batch = 2, .channels = 9, .height = 5, .width = 7, .size = 4},     // even window
      {.batch = 3,
       .channels = 3,
       .height = 4,
       .width = 5,
       .size = 7,
       .alpha = 0.01,
       .beta = 0.5,
       .k = 1},  // window wider than the channels
  };
  for (const LrnShape& s : shapes) {
    SCOPED_TRACE("LRN size " + std::to_string(s.size) + " over " + std::to_string(s.channels));
    const auto n = static_cast<size_t>(s.batch * s.channels * s.height * s.width);
    // Inputs of tens so that alpha * sum(x^2) is comparable with k and the convention matters.
    const auto x = random_floats(n, 31, -40, 40);
    const auto dy = random_floats(n, 32);
    auto ref_op = ref->make_lrn(s);
    std::vector<float> y_ref(n), dx_ref(n);
    ref_op->forward(x.data(), y_ref.data(), true);
    ref_op->backward(x.data(), dy.data(), dx_ref.data());

    auto op = gpu->make_lrn(s);
    DeviceArray<> gx(*gpu, to_backend(*gpu, x, s.batch, s.channels, s.height, s.width));
    DeviceArray<> gdy(*gpu, to_backend(*gpu, dy, s.batch, s.channels, s.height, s.width));
    DeviceArray<> gy(*gpu, nans(n)), gdx(*gpu, nans(n));
    op->forward(gx.get(), gy.get(), true);
    op->backward(gx.get(), gdy.get(), gdx.get());
    EXPECT_LT(relative_error(from_backend(*gpu, gy.read(), s.batch, s.channels, s.height, s.width),
                             y_ref),
              kFp32Tolerance);
    EXPECT_LT(relative_error(from_backend(*gpu, gdx.read(), s.batch, s.channels, s.height, s.width),
                             dx_ref),
              kFp32Tolerance);
  }
}

// ---------------------------------------------------------------------------------------------
// Batch normalization.

TEST(CudnnOps, BatchNormMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto ref = make_reference_backend();
  auto gpu = cuda_backend(Precision::kFloat32);
  const BatchNormShape shapes[] = {
      {.batch = 4, .channels = 6, .spatial = 5 * 7},  // after a conv, NHWC [N, 5, 7, 6]
      {.batch = 5, .channels = 11, .spatial = 1},     // after an FC layer, [N, C]
      {.batch = 2, .channels = 3, .spatial = 13 * 13, .eps = 1e-3, .momentum = 0.3},
  };
  for (const BatchNormShape& s : shapes) {
    SCOPED_TRACE("batch norm " + std::to_string(s.channels) + " x " + std::to_string(s.spatial) +
                 " (batch " + std::to_string(s.batch) + ")");
    const auto n = static_cast<size_t>(s.batch * s.channels * s.spatial);
    const auto C = static_cast<size_t>(s.channels);
    // An offset and scale per tensor so that the mean and variance are not trivially 0 and 1.
    const auto x = random_floats(n, 41, 1, 4);
    const auto dy = random_floats(n, 42);
    const auto gamma = random_floats(C, 43, 0.5f, 1.5f);
    const auto beta = random_floats(C, 44);
    const auto mean0 = random_floats(C, 45), var0 = random_floats(C, 46, 0.5f, 2);

    auto ref_op = ref->make_batch_norm(s);
    std::vector<float> y_ref(n), yi_ref(n), dx_ref(n), dg_ref(C), db_ref(C);
    std::vector<float> rm_ref = mean0, rv_ref = var0;
    ref_op->forward_training(x.data(), gamma.data(), beta.data(), y_ref.data(), rm_ref.data(),
                             rv_ref.data());
    ref_op->backward(x.data(), dy.data(), gamma.data(), dx_ref.data(), dg_ref.data(),
                     db_ref.data());
    ref_op->forward_inference(x.data(), gamma.data(), beta.data(), rm_ref.data(), rv_ref.data(),
                              yi_ref.data());

    auto op = gpu->make_batch_norm(s);
    // [N, C, spatial] as the backend lays it out: spatial plays H * W (H = 1).
    DeviceArray<> gx(*gpu, to_backend(*gpu, x, s.batch, s.channels, 1, s.spatial));
    DeviceArray<> gdy(*gpu, to_backend(*gpu, dy, s.batch, s.channels, 1, s.spatial));
    DeviceArray<> gg(*gpu, gamma), gb(*gpu, beta), grm(*gpu, mean0), grv(*gpu, var0);
    DeviceArray<> gy(*gpu, nans(n)), gyi(*gpu, nans(n)), gdx(*gpu, nans(n));
    DeviceArray<> gdg(*gpu, nans(C)), gdb(*gpu, nans(C));
    op->forward_training(gx.get(), gg.get(), gb.get(), gy.get(), grm.get(), grv.get());
    op->backward(gx.get(), gdy.get(), gg.get(), gdx.get(), gdg.get(), gdb.get());
    op->forward_inference(gx.get(), gg.get(), gb.get(), grm.get(), grv.get(), gyi.get());

    const auto back = [&](DeviceArray<>& a) {
      return from_backend(*gpu, a.read(), s.batch, s.channels, 1, s.spatial);
    };
    EXPECT_LT(relative_error(back(gy), y_ref), kFp32Tolerance);
    // Running statistics: momentum as PyTorch's, the variance unbiased (a biased one is off by
    // m / (m - 1), 25% at m = 5).
    EXPECT_LT(relative_error(grm.read(), rm_ref), kFp32Tolerance);
    EXPECT_LT(relative_error(grv.read(), rv_ref), kFp32Tolerance);
    EXPECT_LT(relative_error(back(gdx), dx_ref), kFp32Tolerance);
    EXPECT_LT(relative_error(gdg.read(), dg_ref), kFp32Tolerance);
    EXPECT_LT(relative_error(gdb.read(), db_ref), kFp32Tolerance);
    EXPECT_LT(relative_error(back(gyi), yi_ref), kFp32Tolerance);
  }
}

}  // namespace
}  // namespace alexnet::trainer
