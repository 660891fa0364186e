// What is the CUDA backend's own, beyond its ops' arithmetic (which tests/trainer/
// test_backend_ops.cc compares with the reference on every precision): the loss's check of the
// labels in device memory, the 16-bit casts and the data augmentation kernel.
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

#include "io/augment.h"
#include "tests/gpu/gpu_test.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"

#if defined(ALEXNET_TEST_CUDA_KERNELS)
#include "io/cuda/cast_kernels.h"
#include "trainer/cuda/augment_kernels.h"
#include "trainer/cuda/cuda_backend.h"
#endif

namespace alexnet::trainer {
namespace {

using testing::DeviceArray;
using testing::random_floats;

std::unique_ptr<Backend> cuda_backend(Precision precision = Precision::kFloat32) {
  BackendOptions options;
  options.precision = precision;
  options.allow_tf32 = false;
  return make_backend("cuda", options);
}

// --- softmax cross-entropy -------------------------------------------------------------------

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
