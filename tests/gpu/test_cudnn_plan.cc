// The CUDA backend's plain planning functions (trainer/cuda/cudnn_plan.h) and its LRN arithmetic
// (trainer/lrn_math.h, shared with the kernels), on the CPU: tensor strides, shapes against
// Conv2dShape / Pool2dShape, the math mode per precision, the algorithm choice, and LRN forward
// and backward against the reference.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/trainer/backend_test_util.h"
#include "trainer/cpu/reference_ops.h"
#include "trainer/cuda/cudnn_plan.h"
#include "trainer/lrn_math.h"

namespace alexnet::trainer::cuda {
namespace {

using plan::AlgoCandidate;

TEST(CudnnPlan, NhwcStridesAddressChannelsLast) {
  const plan::TensorDims d = plan::nhwc_tensor(2, 3, 5, 7);
  EXPECT_EQ(d.n, 2);
  EXPECT_EQ(d.c, 3);
  EXPECT_EQ(d.h, 5);
  EXPECT_EQ(d.w, 7);
  EXPECT_EQ(d.stride_c, 1);
  EXPECT_EQ(d.stride_w, 3);
  EXPECT_EQ(d.stride_h, 21);
  EXPECT_EQ(d.stride_n, 105);
  // Element (n, c, h, w) of the NHWC test helper's layout sits where the strides say.
  std::vector<float> nchw(2 * 3 * 5 * 7);
  for (size_t i = 0; i < nchw.size(); ++i) nchw[i] = static_cast<float>(i);
  const auto nhwc = testing::nchw_to_nhwc(nchw, 2, 3, 5, 7);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 5; ++h)
        for (int w = 0; w < 7; ++w) {
          const size_t at = static_cast<size_t>(n * d.stride_n + c * d.stride_c + h * d.stride_h +
                                                w * d.stride_w);
          ASSERT_EQ(nhwc[at], nchw[static_cast<size_t>(((n * 3 + c) * 5 + h) * 7 + w)]);
        }
}

TEST(CudnnPlan, NchwAndFlatStrides) {
  const plan::TensorDims d = plan::nchw_tensor(2, 3, 5, 7);
  EXPECT_EQ(d.stride_w, 1);
  EXPECT_EQ(d.stride_h, 7);
  EXPECT_EQ(d.stride_c, 35);
  EXPECT_EQ(d.stride_n, 105);
  const plan::TensorDims v = plan::channel_vector(64);
  EXPECT_EQ(v.n, 1);
  EXPECT_EQ(v.c, 64);
  EXPECT_EQ(v.h, 1);
  EXPECT_EQ(v.w, 1);
  const plan::TensorDims f = plan::flat_tensor(1000, "relu");
  EXPECT_EQ(f.w, 1000);
  EXPECT_EQ(f.n * f.c * f.h, 1);
  EXPECT_THROW(plan::flat_tensor(0, "relu"), std::invalid_argument);
}

TEST(CudnnPlan, DimsBeyondIntAreRejected) {
  EXPECT_THROW(plan::nhwc_tensor(1, 1, 1, int64_t{1} << 31), std::invalid_argument);
  // Every dim fits, the sample stride does not.
  EXPECT_THROW(plan::nhwc_tensor(2, 4096, 4096, 256), std::invalid_argument);
  EXPECT_NO_THROW(plan::nhwc_tensor(128, 3, 224, 224));
}

TEST(CudnnPlan, BatchNormTensorIsNByCBy1BySpatial) {
  const plan::TensorDims d = plan::batch_norm_tensor({.batch = 4, .channels = 6, .spatial = 9});
  EXPECT_EQ(d.n, 4);
  EXPECT_EQ(d.c, 6);
  EXPECT_EQ(d.h, 1);
  EXPECT_EQ(d.w, 9);
  EXPECT_EQ(d.stride_c, 1);  // [N, spatial, C] in memory
  EXPECT_EQ(d.stride_w, 6);
  EXPECT_EQ(d.stride_n, 54);
  const plan::TensorDims fc = plan::batch_norm_tensor({.batch = 4, .channels = 6, .spatial = 1});
  EXPECT_EQ(fc.stride_n, 6);  // [N, C]
}

// AlexNet's convolutions (conv1 stride 4 pad 2; the paper's grouped conv2), and odd ones.
std::vector<Conv2dShape> conv_shapes() {
  return {
      {.batch = 3,
       .in_channels = 3,
       .out_channels = 64,
       .height = 224,
       .width = 224,
       .kernel_h = 11,
       .kernel_w = 11,
       .stride_h = 4,
       .stride_w = 4,
       .pad_h = 2,
       .pad_w = 2},
      {.batch = 2,
       .in_channels = 96,
       .out_channels = 256,
       .height = 27,
       .width = 27,
       .kernel_h = 5,
       .kernel_w = 5,
       .pad_h = 2,
       .pad_w = 2,
       .groups = 2},
      {.batch = 2,
       .in_channels = 6,
       .out_channels = 4,
       .height = 13,
       .width = 11,
       .kernel_h = 3,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 3,
       .pad_h = 1,
       .pad_w = 0},
      {.batch = 1,
       .in_channels = 5,
       .out_channels = 7,
       .height = 9,
       .width = 10,
       .kernel_h = 4,
       .kernel_w = 4,
       .stride_h = 3,
       .stride_w = 3,
       .pad_h = 1,
       .pad_w = 1},
  };
}

TEST(CudnnPlan, ConvShapesMatchConv2dShape) {
  for (const Conv2dShape& s : conv_shapes()) {
    SCOPED_TRACE(plan::describe(s));
    ASSERT_NO_THROW(validate(s));
    EXPECT_EQ(plan::conv_output_size(s.height, s.pad_h, s.kernel_h, s.stride_h), s.out_height());
    EXPECT_EQ(plan::conv_output_size(s.width, s.pad_w, s.kernel_w, s.stride_w), s.out_width());
    const plan::TensorDims x = plan::conv_input(s), y = plan::conv_output(s);
    EXPECT_EQ(x.c, s.in_channels);
    EXPECT_EQ(x.stride_n, s.height * s.width * s.in_channels);
    EXPECT_EQ(y.n, s.batch);
    EXPECT_EQ(y.c, s.out_channels);
    EXPECT_EQ(y.h, s.out_height());
    EXPECT_EQ(y.w, s.out_width());
    EXPECT_EQ(y.stride_w, s.out_channels);
    const plan::FilterDims f = plan::conv_filter(s);
    EXPECT_EQ(f.out, s.out_channels);
    EXPECT_EQ(f.in_per_group, s.in_channels / s.groups);
    EXPECT_EQ(f.kh, s.kernel_h);
    EXPECT_EQ(f.kw, s.kernel_w);
    EXPECT_EQ(plan::filter_elements(s),
              s.out_channels * s.in_channels / s.groups * s.kernel_h * s.kernel_w);
    const plan::ConvGeometry g = plan::conv_geometry(s);
    EXPECT_EQ(g.groups, s.groups);
    EXPECT_EQ(g.pad_h, s.pad_h);
    EXPECT_EQ(g.pad_w, s.pad_w);
    EXPECT_EQ(g.stride_h, s.stride_h);
    EXPECT_EQ(g.stride_w, s.stride_w);
    EXPECT_EQ(g.dilation_h, 1);
    EXPECT_EQ(g.dilation_w, 1);
  }
  EXPECT_EQ(plan::conv_output_size(224, 2, 11, 4), 55);  // AlexNet's conv1
  EXPECT_EQ(plan::conv_output_size(3, 0, 5, 1), 0);
}

TEST(CudnnPlan, BadConvShapesAreRejected) {
  Conv2dShape s = conv_shapes()[1];
  s.in_channels = 95;  // not divisible by 2 groups
  EXPECT_THROW(validate(s), std::invalid_argument);
  s = conv_shapes()[2];
  s.kernel_h = 20;  // larger than the padded input
  EXPECT_THROW(validate(s), std::invalid_argument);
  s = conv_shapes()[2];
  s.pad_w = -1;
  EXPECT_THROW(validate(s), std::invalid_argument);
}

TEST(CudnnPlan, PoolShapesMatchPool2dShape) {
  const Pool2dShape shapes[] = {
      {.batch = 2, .channels = 64, .height = 55, .width = 55},  // AlexNet's pool1
      {.batch = 2, .channels = 5, .height = 13, .width = 13, .pad = 1},
      {.batch = 2, .channels = 7, .height = 12, .width = 11, .pad = 1},
      {.batch = 2, .channels = 3, .height = 9, .width = 10, .kernel = 2, .stride = 2},
  };
  for (const Pool2dShape& s : shapes) {
    SCOPED_TRACE(plan::describe(s));
    const plan::PoolGeometry g = plan::pool_geometry(s);
    EXPECT_EQ(g.window, s.kernel);
    EXPECT_EQ(g.pad, s.pad);
    EXPECT_EQ(g.stride, s.stride);
    const plan::TensorDims y = plan::pool_output(s);
    EXPECT_EQ(y.h, s.out_height());
    EXPECT_EQ(y.w, s.out_width());
    EXPECT_EQ(y.c, s.channels);
    EXPECT_EQ(plan::pool_input(s).stride_h, s.width * s.channels);
  }
  EXPECT_EQ(plan::pool_output_size(55, 0, 3, 2), 27);
  Pool2dShape bad{.batch = 1, .channels = 1, .height = 5, .width = 5, .kernel = 3, .pad = 2};
  EXPECT_THROW(plan::pool_geometry(bad), std::invalid_argument);  // pad > kernel / 2
  bad = {.batch = 1, .channels = 1, .height = 2, .width = 5, .kernel = 3};
  EXPECT_THROW(plan::pool_geometry(bad), std::invalid_argument);  // kernel > input
}

TEST(CudnnPlan, ConvMathPerPrecision) {
  EXPECT_EQ(plan::conv_math(Precision::kFloat32, false), plan::ConvMath::kFma);
  EXPECT_EQ(plan::conv_math(Precision::kFloat32, true), plan::ConvMath::kDefault);
  EXPECT_EQ(plan::conv_math(Precision::kBFloat16, false), plan::ConvMath::kTensorOp);
  EXPECT_EQ(plan::conv_math(Precision::kFloat16, true), plan::ConvMath::kTensorOp);
}

AlgoCandidate algo(int id, bool ok, float ms, size_t workspace, bool deterministic = true) {
  AlgoCandidate c;
  c.algo = id;
  c.ok = ok;
  c.status = ok ? "" : "CUDNN_STATUS_NOT_SUPPORTED";
  c.time_ms = ms;
  c.workspace = workspace;
  c.deterministic = deterministic;
  return c;
}

TEST(CudnnPlan, ChoosesFastestThatFits) {
  const std::vector<AlgoCandidate> c = {algo(0, true, 3.0f, 0), algo(1, true, 1.0f, 1000),
                                        algo(2, true, 2.0f, 100), algo(3, false, 0.5f, 0)};
  EXPECT_EQ(plan::choose_algorithm(c, 1000, false, "t").algo, 1);
  EXPECT_EQ(plan::choose_algorithm(c, 999, false, "t").algo, 2);  // 1 needs too much
  EXPECT_EQ(plan::choose_algorithm(c, 0, false, "t").algo, 0);
}

TEST(CudnnPlan, NoneFitsTakesLeastWorkspace) {
  const std::vector<AlgoCandidate> c = {algo(0, true, 1.0f, 5000), algo(1, true, 2.0f, 300),
                                        algo(2, false, 0.1f, 10)};
  EXPECT_EQ(plan::choose_algorithm(c, 100, false, "t").algo, 1);
}

TEST(CudnnPlan, DeterminismWhenRequired) {
  const std::vector<AlgoCandidate> c = {algo(0, true, 1.0f, 0, false), algo(1, true, 2.0f, 0)};
  EXPECT_EQ(plan::choose_algorithm(c, 0, false, "t").algo, 0);
  EXPECT_EQ(plan::choose_algorithm(c, 0, true, "t").algo, 1);
}

TEST(CudnnPlan, UnmeasuredCandidatesKeepTheirOrderAfterMeasuredOnes) {
  const std::vector<AlgoCandidate> heuristic = {algo(4, true, -1, 0), algo(2, true, -1, 0)};
  EXPECT_EQ(plan::choose_algorithm(heuristic, 0, false, "t").algo, 4);
  const std::vector<AlgoCandidate> mixed = {algo(4, true, -1, 0), algo(2, true, 9.0f, 0)};
  EXPECT_EQ(plan::choose_algorithm(mixed, 0, false, "t").algo, 2);
}

TEST(CudnnPlan, AllFailedNamesEveryStatus) {
  const std::vector<AlgoCandidate> c = {algo(0, false, -1, 0), algo(5, false, -1, 0)};
  try {
    plan::choose_algorithm(c, 1 << 20, false, "forward conv 3x3");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    const std::string text = e.what();
    EXPECT_NE(text.find("forward conv 3x3"), std::string::npos) << text;
    EXPECT_NE(text.find("algo 0: CUDNN_STATUS_NOT_SUPPORTED"), std::string::npos) << text;
    EXPECT_NE(text.find("algo 5: CUDNN_STATUS_NOT_SUPPORTED"), std::string::npos) << text;
  }
  EXPECT_THROW(plan::choose_algorithm({}, 0, false, "t"), std::runtime_error);
}

// The LRN kernels' per-element arithmetic against the reference (double, NCHW), odd and even
// sizes (the window reaches size/2 down and (size-1)/2 up), windows wider than the channels.
TEST(LrnMath, MatchesReference) {
  const LrnShape shapes[] = {
      {.batch = 2, .channels = 13, .height = 3, .width = 2, .size = 5},
      {.batch = 2, .channels = 13, .height = 3, .width = 2, .size = 4},
      {.batch = 1,
       .channels = 3,
       .height = 2,
       .width = 3,
       .size = 6,
       .alpha = 0.3,
       .beta = 0.6,
       .k = 1.5},
      {.batch = 1, .channels = 9, .height = 1, .width = 4, .size = 1, .alpha = 0.5},
  };
  for (const LrnShape& s : shapes) {
    SCOPED_TRACE("LRN size " + std::to_string(s.size) + " over " + std::to_string(s.channels));
    const auto n = static_cast<size_t>(s.batch * s.channels * s.height * s.width);
    // Inputs of a few units so that the alpha term matters (alpha * sum ~ k at these alphas).
    const auto x = testing::random_floats(n, 7, -30, 30);
    const auto dy = testing::random_floats(n, 8);
    std::vector<float> y_ref(n), dx_ref(n);
    reference::lrn_forward(s, x.data(), y_ref.data());
    reference::lrn_backward(s, x.data(), dy.data(), dx_ref.data());

    LrnParams p;
    p.channels = static_cast<int>(s.channels);
    p.size = static_cast<int>(s.size);
    p.alpha = static_cast<float>(s.alpha);
    p.beta = static_cast<float>(s.beta);
    p.k = static_cast<float>(s.k);
    const auto xh = testing::nchw_to_nhwc(x, s.batch, s.channels, s.height, s.width);
    const auto gh = testing::nchw_to_nhwc(dy, s.batch, s.channels, s.height, s.width);
    std::vector<float> y(n), dx(n);
    for (size_t i = 0; i < n; ++i) {
      const int c = static_cast<int>(i % static_cast<size_t>(s.channels));
      y[i] = lrn_forward_at(p, xh.data() + (i - static_cast<size_t>(c)), c);
      dx[i] = lrn_backward_at(p, xh.data() + (i - static_cast<size_t>(c)),
                              gh.data() + (i - static_cast<size_t>(c)), c);
    }
    // Float arithmetic over at most a few dozen terms against the reference's double: a few
    // float ulps; a wrong window or alpha convention is off by percents.
    EXPECT_LT(testing::relative_error(
                  testing::nhwc_to_nchw(y, s.batch, s.channels, s.height, s.width), y_ref),
              1e-5);
    EXPECT_LT(testing::relative_error(
                  testing::nhwc_to_nchw(dx, s.batch, s.channels, s.height, s.width), dx_ref),
              1e-5);
  }
}

}  // namespace
}  // namespace alexnet::trainer::cuda
