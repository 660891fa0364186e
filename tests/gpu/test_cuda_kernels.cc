// The CUDA backend's own kernels and cuBLAS linear layer against the reference ops: linear (fp32
// and bf16), dropout, loss, flatten, adaptive average pooling, the optimizer update, sum of
// squares and scale, the 16-bit casts and the data augmentation kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/augment.h"
#include "tests/gpu/gpu_test.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/cpu/reference_ops.h"
#include "trainer/optimizer.h"

#if defined(ALEXNET_TEST_CUDA_KERNELS)
#include "io/cuda/cast_kernels.h"
#include "trainer/cuda/augment_kernels.h"
#include "trainer/cuda/cuda_backend.h"
#endif

namespace alexnet::trainer {
namespace {

using testing::DeviceArray;
using testing::from_backend;
using testing::nchw_to_nhwc;
using testing::random_floats;
using testing::relative_error;
using testing::to_backend;

// fp32 with TF32 off: cuBLAS and our kernels against double-accumulating loops; differences are
// float rounding over at most a few thousand terms.
constexpr double kFp32Tolerance = 1e-4;
// bf16 inputs carry 8 significant bits (relative rounding 2^-9 each); products accumulate in fp32.
constexpr double kBf16Tolerance = 1e-2;

std::unique_ptr<Backend> cuda_backend(Precision precision = Precision::kFloat32) {
  BackendOptions options;
  options.precision = precision;
  options.allow_tf32 = false;
  return make_backend("cuda", options);
}

// --- linear ----------------------------------------------------------------------------------

struct LinearCase {
  int64_t batch, in, out;
  bool bias;
};

void check_linear(Precision precision, double tolerance) {
  auto gpu = cuda_backend(precision);
  for (const LinearCase& t :
       {LinearCase{3, 37, 11, true}, LinearCase{8, 256, 100, true}, LinearCase{5, 1000, 3, false},
        LinearCase{1, 1, 1, true}, LinearCase{17, 129, 65, true}}) {
    SCOPED_TRACE(std::to_string(t.batch) + "x" + std::to_string(t.in) + " -> " +
                 std::to_string(t.out) + (t.bias ? " with bias" : ""));
    const auto n_x = static_cast<size_t>(t.batch * t.in), n_w = static_cast<size_t>(t.out * t.in);
    const auto n_y = static_cast<size_t>(t.batch * t.out);
    const auto x = random_floats(n_x, 1), w = random_floats(n_w, 2), dy = random_floats(n_y, 3);
    const auto b = random_floats(static_cast<size_t>(t.out), 4);
    std::vector<float> y(n_y), dx(n_x), dw(n_w), db(static_cast<size_t>(t.out));
    reference::linear_forward(t.batch, t.in, t.out, x.data(), w.data(), t.bias ? b.data() : nullptr,
                              y.data());
    reference::linear_backward_data(t.batch, t.in, t.out, dy.data(), w.data(), dx.data());
    reference::linear_backward_weights(t.batch, t.in, t.out, x.data(), dy.data(), dw.data(),
                                       t.bias ? db.data() : nullptr);

    auto op = gpu->make_linear(t.batch, t.in, t.out, t.bias);
    DeviceArray<float> gx(*gpu, x), gw(*gpu, w), gb(*gpu, b), gdy(*gpu, dy);
    DeviceArray<float> gy(*gpu, n_y, NAN), gdx(*gpu, n_x, NAN), gdw(*gpu, n_w, NAN);
    DeviceArray<float> gdb(*gpu, static_cast<size_t>(t.out), NAN);
    op->forward(gx.get(), gw.get(), t.bias ? gb.get() : nullptr, gy.get());
    op->backward_data(gdy.get(), gw.get(), gdx.get());
    op->backward_weights(gx.get(), gdy.get(), gdw.get(), t.bias ? gdb.get() : nullptr);
    EXPECT_LT(relative_error(gy.read(), y), tolerance);
    EXPECT_LT(relative_error(gdx.read(), dx), tolerance);
    EXPECT_LT(relative_error(gdw.read(), dw), tolerance);
    if (t.bias) {
      EXPECT_LT(relative_error(gdb.read(), db), tolerance);
    }
  }
}

TEST(CudaKernels, LinearFp32) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  check_linear(Precision::kFloat32, kFp32Tolerance);
}

TEST(CudaKernels, LinearBf16) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  check_linear(Precision::kBFloat16, kBf16Tolerance);
}

TEST(CudaKernels, LinearFp16) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  // fp16 has 11 significant bits: tighter than bf16; the inputs are in [-1, 1], far from overflow.
  check_linear(Precision::kFloat16, kBf16Tolerance);
}

// --- dropout ---------------------------------------------------------------------------------

TEST(CudaKernels, DropoutMatchesReferenceMaskBitForBit) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  const int64_t n = 4099;
  const auto x = random_floats(static_cast<size_t>(n), 5), dy = random_floats(n, 6);
  for (double p : {0.5, 0.1, 0.0, 1.0, 0.3333}) {
    SCOPED_TRACE("p = " + std::to_string(p));
    const DropoutKey key{.seed = 42, .step = 7, .rank = 3, .layer = 2};
    std::vector<uint8_t> mask(static_cast<size_t>(n));
    reference::dropout_mask(n, p, key, mask.data());
    std::vector<float> y(x.size()), dx(x.size());
    reference::dropout_forward(n, p, mask.data(), x.data(), y.data());
    reference::dropout_backward(n, p, mask.data(), dy.data(), dx.data());

    auto op = gpu->make_dropout(n, p);
    DeviceArray<float> gx(*gpu, x), gdy(*gpu, dy), gy(*gpu, x.size(), NAN),
        gdx(*gpu, x.size(), NAN);
    op->forward(key, gx.get(), gy.get());
    op->backward(gdy.get(), gdx.get());
    const auto got_y = gy.read(), got_dx = gdx.read();
    EXPECT_EQ(0, std::memcmp(got_y.data(), y.data(), y.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(got_dx.data(), dx.data(), dx.size() * sizeof(float)));
  }
}

// --- softmax cross-entropy -------------------------------------------------------------------

struct LossCase {
  int64_t batch, classes;
  double smoothing;
  float scale;
  bool gradient;
};

TEST(CudaKernels, SoftmaxCrossEntropyMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  auto ref = make_backend("reference");
  for (const LossCase& t : {LossCase{4, 10, 0.0, 1.0f, true}, LossCase{37, 1000, 0.1, 1.0f, true},
                            LossCase{5, 7, 0.0, 512.0f, true}, LossCase{300, 100, 0.2, 1.0f, false},
                            LossCase{2, 3, 0.0, 1.0f, true}}) {
    SCOPED_TRACE(std::to_string(t.batch) + "x" + std::to_string(t.classes) + " smoothing " +
                 std::to_string(t.smoothing));
    const auto z = random_floats(static_cast<size_t>(t.batch * t.classes), 8, -5, 5);
    std::vector<int32_t> labels(static_cast<size_t>(t.batch));
    std::mt19937 rng(9);
    for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<uint32_t>(t.classes));
    std::vector<float> dz(z.size());
    auto ref_op = ref->make_softmax_cross_entropy(t.batch, t.classes, t.smoothing);
    const LossResult want = ref_op->forward_backward(z.data(), labels.data(),
                                                     t.gradient ? dz.data() : nullptr, t.scale);

    auto op = gpu->make_softmax_cross_entropy(t.batch, t.classes, t.smoothing);
    DeviceArray<float> gz(*gpu, z), gdz(*gpu, z.size(), NAN);
    DeviceArray<int32_t> glabels(*gpu, labels);
    const LossResult got =
        op->forward_backward(gz.get(), glabels.get(), t.gradient ? gdz.get() : nullptr, t.scale);
    // cuDNN's float log-softmax against the reference's double: ~1e-7 relative per term.
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, std::abs(want.loss)));
    EXPECT_EQ(got.top1, want.top1);
    EXPECT_EQ(got.top5, want.top5);
    if (t.gradient) {
      EXPECT_LT(relative_error(gdz.read(), dz), kFp32Tolerance);
    }
  }
}

TEST(CudaKernels, SoftmaxCrossEntropyRejectsBadLabels) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  const int64_t batch = 5, classes = 10;
  auto op = gpu->make_softmax_cross_entropy(batch, classes, 0.0);
  DeviceArray<float> gz(*gpu, random_floats(batch * classes, 10));
  for (int32_t bad : {10, -1}) {
    DeviceArray<int32_t> glabels(*gpu, std::vector<int32_t>{1, 2, bad, 3, bad});
    try {
      op->forward_backward(gz.get(), glabels.get(), nullptr, 1.0f);
      ADD_FAILURE() << "label " << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("label " + std::to_string(bad) + " of sample 2"),
                std::string::npos)
          << e.what();
    }
  }
}

// --- flatten and adaptive average pooling ----------------------------------------------------

TEST(CudaKernels, FlattenGivesTorchOrder) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  struct Dims {
    int64_t n, c, h, w;
  };
  for (const Dims& d : {Dims{2, 256, 6, 6}, Dims{3, 5, 7, 3}, Dims{4, 9, 1, 1}, Dims{2, 1, 4, 5}}) {
    const auto total = static_cast<size_t>(d.n * d.c * d.h * d.w);
    const auto x = random_floats(total, 11), dy = random_floats(total, 12);
    auto op = gpu->make_flatten(d.n, d.c, d.h, d.w);
    DeviceArray<float> gx(*gpu, to_backend(*gpu, x, d.n, d.c, d.h, d.w)), gdy(*gpu, dy);
    DeviceArray<float> gy(*gpu, total, NAN), gdx(*gpu, total, NAN);
    op->forward(gx.get(), gy.get());
    op->backward(gdy.get(), gdx.get());
    EXPECT_EQ(gy.read(), x);  // flattening NCHW data is the identity: a pure permutation
    EXPECT_EQ(from_backend(*gpu, gdx.read(), d.n, d.c, d.h, d.w), dy);
  }
}

TEST(CudaKernels, AdaptiveAvgPoolMatchesReference) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  struct Case {
    int64_t n, c, h, w, oh, ow;
  };
  for (const Case& p : {Case{2, 256, 6, 6, 6, 6}, Case{3, 5, 13, 13, 6, 6}, Case{2, 3, 7, 5, 4, 3},
                        Case{2, 4, 3, 4, 5, 6}, Case{4, 3, 1, 1, 6, 6}}) {
    const auto n_in = static_cast<size_t>(p.n * p.c * p.h * p.w);
    const auto n_out = static_cast<size_t>(p.n * p.c * p.oh * p.ow);
    const auto x = random_floats(n_in, 13), dy = random_floats(n_out, 14);
    std::vector<float> y(n_out), dx(n_in);
    reference::adaptive_avg_pool_forward(p.n, p.c, p.h, p.w, p.oh, p.ow, x.data(), y.data());
    reference::adaptive_avg_pool_backward(p.n, p.c, p.h, p.w, p.oh, p.ow, dy.data(), dx.data());
    auto op = gpu->make_adaptive_avg_pool(p.n, p.c, p.h, p.w, p.oh, p.ow);
    DeviceArray<float> gx(*gpu, to_backend(*gpu, x, p.n, p.c, p.h, p.w));
    DeviceArray<float> gdy(*gpu, to_backend(*gpu, dy, p.n, p.c, p.oh, p.ow));
    DeviceArray<float> gy(*gpu, n_out, NAN), gdx(*gpu, n_in, NAN);
    op->forward(gx.get(), gy.get());
    op->backward(gdy.get(), gdx.get());
    EXPECT_LT(relative_error(from_backend(*gpu, gy.read(), p.n, p.c, p.oh, p.ow), y),
              kFp32Tolerance);
    EXPECT_LT(relative_error(from_backend(*gpu, gdx.read(), p.n, p.c, p.h, p.w), dx),
              kFp32Tolerance);
  }
}

// --- optimizer update ------------------------------------------------------------------------

struct OptimizerCase {
  const char* name;
  OptimizerConfig config;
};

TEST(CudaKernels, OptimizerUpdateEqualsHostBitForBit) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  auto sgd = [](const char* rule, bool nesterov, double momentum) {
    OptimizerConfig c;
    c.name = "sgd";
    c.momentum_rule = rule;
    c.nesterov = nesterov;
    c.momentum = momentum;
    c.weight_decay = 5e-4;
    return c;
  };
  auto adam = [](const char* name, bool decoupled) {
    OptimizerConfig c;
    c.name = name;
    c.weight_decay = 1e-2;
    c.decoupled_weight_decay = decoupled;
    return c;
  };
  const std::vector<OptimizerCase> cases = {
      {"sgd plain", sgd("pytorch", false, 0.0)},       {"sgd momentum", sgd("pytorch", false, 0.9)},
      {"sgd nesterov", sgd("pytorch", true, 0.9)},     {"sgd paper", sgd("paper", false, 0.9)},
      {"sgd paper nesterov", sgd("paper", true, 0.9)}, {"adam", adam("adam", false)},
      {"adam decoupled", adam("adam", true)},          {"adamw", adam("adamw", true)},
  };
  const size_t size = 10007;
  // Decay on the first part, off on the rest (biases): both kernels' decay variants run.
  const std::vector<DecayRange> ranges = {{0, 6000, true}, {6000, size - 6000, false}};
  for (const OptimizerCase& t : cases) {
    SCOPED_TRACE(t.name);
    Optimizer host(t.config, size, ranges);
    Optimizer device(t.config, size, ranges, gpu.get());
    std::vector<float> params = random_floats(size, 15);
    DeviceArray<float> gparams(*gpu, params);
    for (int step = 0; step < 3; ++step) {
      const auto grads = random_floats(size, 16 + static_cast<uint32_t>(step));
      DeviceArray<float> ggrads(*gpu, grads);
      const double lr = 0.01 * (step + 1);  // a changing lr exercises the paper rule's units
      host.step(params, grads, lr);
      device.step(std::span<float>(gparams.get(), size), std::span<const float>(ggrads.get(), size),
                  lr);
    }
    const auto got = gparams.read();
    EXPECT_EQ(0, std::memcmp(got.data(), params.data(), size * sizeof(float)));
    const auto host_state = host.state(), device_state = device.state();
    ASSERT_EQ(host_state.size(), device_state.size());
    for (size_t i = 0; i < host_state.size(); ++i) {
      EXPECT_EQ(host_state[i].name, device_state[i].name);
      EXPECT_EQ(0, std::memcmp(host_state[i].values.data(), device_state[i].values.data(),
                               size * sizeof(float)))
          << host_state[i].name;
    }
  }
}

// --- sum of squares and scale ----------------------------------------------------------------

TEST(CudaKernels, SumOfSquaresAndScale) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  for (size_t n : {size_t{0}, size_t{1}, size_t{255}, size_t{1000003}, size_t{5000000}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const auto x = random_floats(n, 17, -3, 3);
    double want = 0;
    for (float v : x) want += static_cast<double>(v) * v;
    DeviceArray<float> gx(*gpu, x);
    const double got = gpu->sum_of_squares(gx.get(), n);
    // Double sums of float squares (exact) in another order: at most n * 2^-53 relative apart,
    // far less in practice.
    EXPECT_NEAR(got, want, 1e-10 * std::max(1.0, want));
    EXPECT_EQ(got, gpu->sum_of_squares(gx.get(), n)) << "not deterministic";
    gpu->scale(gx.get(), n, 0.37f);
    auto scaled = x;
    for (float& v : scaled) v *= 0.37f;
    const auto got_scaled = gx.read();
    EXPECT_EQ(0, std::memcmp(got_scaled.data(), scaled.data(), n * sizeof(float)));
  }
  std::vector<float> x(1000, 1.0f);
  x[517] = std::numeric_limits<float>::infinity();
  DeviceArray<float> ginf(*gpu, x);
  EXPECT_TRUE(std::isinf(gpu->sum_of_squares(ginf.get(), x.size())));
  x[517] = std::numeric_limits<float>::quiet_NaN();
  DeviceArray<float> gnan(*gpu, x);
  EXPECT_TRUE(std::isnan(gpu->sum_of_squares(gnan.get(), x.size())));
}

#if defined(ALEXNET_TEST_CUDA_KERNELS)

// --- casts -----------------------------------------------------------------------------------

// fp32 -> bf16 -> fp32 on the host: round to nearest even on the top 16 bits, NaN kept NaN.
float bf16_round_trip(float x) {
  if (std::isnan(x)) return x;
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  float y;
  std::memcpy(&y, &bits, 4);
  return y;
}

std::vector<float> cast_inputs() {
  auto x = random_floats(100003, 18, -1000, 1000);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {0.0f,
                                      -0.0f,
                                      1.0f,
                                      -1.0f,
                                      inf,
                                      -inf,
                                      NAN,
                                      1e-40f,
                                      3e38f,
                                      65504.0f,
                                      1.0f + 1.0f / 256,
                                      1.00390625f,
                                      1.01171875f};
  x.insert(x.end(), special.begin(), special.end());
  return x;
}

std::vector<float> round_trip(Backend& gpu, const std::vector<float>& x, Precision precision) {
  const cudaStream_t stream = cuda::backend_stream(gpu);
  DeviceArray<float> gx(gpu, x), gy(gpu, x.size(), NAN);
  auto half = gpu.allocate(x.size() * 2);
  alexnet::cuda::cast_from_float(gx.get(), half.get(), x.size(), precision, stream);
  alexnet::cuda::cast_to_float(half.get(), gy.get(), x.size(), precision, stream);
  return gy.read();
}

TEST(CudaKernels, Bf16CastRoundsToNearestEven) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  const auto x = cast_inputs();
  const auto got = round_trip(*gpu, x, Precision::kBFloat16);
  for (size_t i = 0; i < x.size(); ++i) {
    const float want = bf16_round_trip(x[i]);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got[i])) << i;
    } else {
      ASSERT_EQ(std::memcmp(&got[i], &want, 4), 0) << x[i] << " -> " << got[i] << ", not " << want;
    }
  }
}

TEST(CudaKernels, Fp16CastRoundTrip) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  const auto x = cast_inputs();
  const auto got = round_trip(*gpu, x, Precision::kFloat16);
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = x[i], g = got[i];
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(g));
    } else if (std::abs(v) >= 65520.0f) {  // rounds past fp16's largest finite value
      EXPECT_TRUE(std::isinf(g) && std::signbit(g) == std::signbit(v)) << v << " -> " << g;
    } else if (std::abs(v) >= 6.103515625e-05f) {  // normal fp16: half an ulp of 2^-10
      ASSERT_LE(std::abs(g - v), std::abs(v) * (1.0f / 2048)) << v << " -> " << g;
    } else {
      ASSERT_LE(std::abs(g - v), 2.98023224e-08f) << v << " -> " << g;  // half a subnormal step
    }
  }
  // Exactly representable values come back exactly; ties go to even (1 + 2^-11 -> 1).
  const auto exact =
      round_trip(*gpu, {1.0f, -2.5f, 1024.0f, 1.0f + 1.0f / 2048}, Precision::kFloat16);
  EXPECT_EQ(exact, (std::vector<float>{1.0f, -2.5f, 1024.0f, 1.0f}));
}

// --- augmentation ----------------------------------------------------------------------------

TEST(CudaKernels, AugmentationEqualsIoAugmentation) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
  auto gpu = cuda_backend();
  const int64_t batch = 5, height = 37, width = 41, channels = 3;
  io::AugmentConfig config;
  config.crop_height = 32;
  config.crop_width = 33;
  config.random_crop = true;
  config.flip = true;
  config.pad = 3;
  config.lighting_std = 0.1f;
  config.mean = {123.675f, 116.28f, 103.53f};
  config.std = {58.395f, 57.12f, 57.375f};
  config.layout = io::Layout::kNHWC;
  io::validate(config, height, width, channels);
  std::mt19937 rng(19);
  const int64_t image_size = height * width * channels;
  const int64_t out_size = config.crop_height * config.crop_width * channels;
  std::vector<uint8_t> src(static_cast<size_t>(batch * image_size));
  for (auto& v : src) v = static_cast<uint8_t>(rng() & 0xFF);
  std::vector<cuda::AugmentImage> images;
  std::vector<float> want(static_cast<size_t>(batch * out_size));
  for (int64_t n = 0; n < batch; ++n) {
    const io::AugmentDraw draw = io::draw_augmentation(config, height, width, channels, 1234, 2, n);
    images.push_back(cuda::make_augment_image(config, draw, channels));
    io::augment_image(src.data() + n * image_size, height, width, channels, config, draw,
                      want.data() + n * out_size);
  }
  DeviceArray<uint8_t> gsrc(*gpu, src);
  DeviceArray<cuda::AugmentImage> gimages(*gpu, images);
  DeviceArray<float> gout(*gpu, want.size(), NAN);
  const cuda::AugmentGeometry g{height,    width, channels, config.crop_height, config.crop_width,
                                config.pad};
  cuda::augment_batch(gsrc.get(), gimages.get(), batch, g, gout.get(), cuda::backend_stream(*gpu));
  const auto got = gout.read();
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
}

#endif  // ALEXNET_TEST_CUDA_KERNELS

}  // namespace
}  // namespace alexnet::trainer
