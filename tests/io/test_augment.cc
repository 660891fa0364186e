// Augmentation: the fast path against the reference, crops, flips, ranges, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "io/augment.h"
#include "io/error.h"
#include "io/random.h"

namespace alexnet::io {
namespace {

std::vector<uint8_t> random_image(int64_t h, int64_t w, int64_t c, uint64_t seed) {
  CounterRng rng(seed, RngPurpose::kImport, 99);
  std::vector<uint8_t> img(static_cast<size_t>(h * w * c));
  for (auto& p : img) p = static_cast<uint8_t>(rng.next_u32());
  return img;
}

struct Shape {
  int64_t h, w, c, crop_h, crop_w, pad;
};

class AugmentVsReference
    : public ::testing::TestWithParam<std::tuple<Shape, Layout, bool /*train*/>> {};

TEST_P(AugmentVsReference, FastPathMatchesReference) {
  auto [s, layout, train] = GetParam();
  AugmentConfig config;
  config.crop_height = s.crop_h;
  config.crop_width = s.crop_w;
  config.pad = s.pad;
  config.random_crop = train;
  config.flip = train;
  config.lighting_std = train ? 0.1f : 0.0f;
  config.layout = layout;
  for (int64_t k = 0; k < s.c; ++k) {
    config.mean.push_back(100.0f + 10.0f * static_cast<float>(k));
    config.std.push_back(50.0f + 5.0f * static_cast<float>(k));
  }
  validate(config, s.h, s.w, s.c);
  auto img = random_image(s.h, s.w, s.c, 7);
  const auto n = static_cast<size_t>(s.crop_h * s.crop_w * s.c);
  std::vector<float> fast(n, NAN), ref(n, NAN);
  for (int64_t index = 0; index < 20; ++index) {
    AugmentDraw d = draw_augmentation(config, s.h, s.w, s.c, 5, 2, index);
    augment_image(img.data(), s.h, s.w, s.c, config, d, fast.data());
    augment_image_reference(img.data(), s.h, s.w, s.c, config, d, ref.data());
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(fast[i]));
      // The fast path folds (x + light - mean) / std into one float multiply-add; the reference
      // computes in double. Values are O(3), float epsilon 1.2e-7: 1e-5 is ~25 ulps of headroom.
      ASSERT_NEAR(fast[i], ref[i], 1e-5 * std::max(1.0f, std::fabs(ref[i]))) << "element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AugmentVsReference,
    ::testing::Combine(::testing::Values(Shape{13, 11, 3, 9, 7, 0}, Shape{28, 28, 1, 28, 28, 2},
                                         Shape{17, 23, 4, 17, 5, 1}, Shape{32, 32, 3, 32, 32, 4}),
                       ::testing::Values(Layout::kNCHW, Layout::kNHWC),
                       ::testing::Values(false, true)),
    [](const auto& p) {
      const Shape& s = std::get<0>(p.param);
      return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c) + "_crop" +
             std::to_string(s.crop_h) + "x" + std::to_string(s.crop_w) + "_pad" +
             std::to_string(s.pad) + (std::get<1>(p.param) == Layout::kNCHW ? "_nchw" : "_nhwc") +
             (std::get<2>(p.param) ? "_train" : "_eval");
    });

TEST(Augment, CenterCropIsExactAndNormalized) {
  const int64_t h = 10, w = 12, c = 3;
  auto img = random_image(h, w, c, 1);
  AugmentConfig config{.crop_height = 6, .crop_width = 8, .mean = {10, 20, 30}, .std = {2, 4, 8}};
  AugmentDraw d = draw_augmentation(config, h, w, c, 0, 0, 0);
  EXPECT_EQ(d.top, 2);
  EXPECT_EQ(d.left, 2);
  EXPECT_FALSE(d.flip);
  std::vector<float> out(6 * 8 * 3);
  augment_image(img.data(), h, w, c, config, d, out.data());
  for (int64_t k = 0; k < c; ++k)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 8; ++x) {
        float pixel = img[static_cast<size_t>(((y + 2) * w + (x + 2)) * c + k)];
        float expected =
            (pixel - config.mean[static_cast<size_t>(k)]) / config.std[static_cast<size_t>(k)];
        EXPECT_FLOAT_EQ(out[static_cast<size_t>((k * 6 + y) * 8 + x)], expected);
      }
}

TEST(Augment, FlipMirrorsTheCrop) {
  const int64_t h = 5, w = 9, c = 1;
  auto img = random_image(h, w, c, 2);
  AugmentConfig config{.crop_height = 5, .crop_width = 6};
  AugmentDraw d{.top = 0, .left = 2, .flip = true};
  std::vector<float> out(5 * 6);
  augment_image(img.data(), h, w, c, config, d, out.data());
  for (int64_t y = 0; y < 5; ++y)
    for (int64_t x = 0; x < 6; ++x)
      EXPECT_EQ(out[static_cast<size_t>(y * 6 + x)], img[static_cast<size_t>(y * w + 2 + 5 - x)]);
}

TEST(Augment, DrawsAreDeterministicInBoundsAndVaried) {
  AugmentConfig config{.crop_height = 24,
                       .crop_width = 24,
                       .random_crop = true,
                       .flip = true,
                       .pad = 2,
                       .lighting_std = 0.1f};
  std::set<std::pair<int64_t, int64_t>> origins;
  int flips = 0;
  for (int64_t i = 0; i < 2000; ++i) {
    AugmentDraw a = draw_augmentation(config, 28, 28, 3, 11, 4, i);
    AugmentDraw b = draw_augmentation(config, 28, 28, 3, 11, 4, i);
    EXPECT_EQ(a.top, b.top);
    EXPECT_EQ(a.left, b.left);
    EXPECT_EQ(a.flip, b.flip);
    EXPECT_EQ(a.lighting[1], b.lighting[1]);
    ASSERT_GE(a.top, 0);
    ASSERT_LE(a.top, 28 + 4 - 24);
    ASSERT_GE(a.left, 0);
    ASSERT_LE(a.left, 28 + 4 - 24);
    origins.insert({a.top, a.left});
    flips += a.flip;
  }
  EXPECT_EQ(origins.size(), 81u);  // every one of the 9 x 9 origins is drawn
  EXPECT_GT(flips, 850);           // about 1000 of 2000: binomial sd is 22
  EXPECT_LT(flips, 1150);
  // Another epoch draws differently.
  int same = 0;
  for (int64_t i = 0; i < 100; ++i) {
    AugmentDraw a = draw_augmentation(config, 28, 28, 3, 11, 4, i);
    AugmentDraw b = draw_augmentation(config, 28, 28, 3, 11, 5, i);
    same += a.top == b.top && a.left == b.left && a.flip == b.flip;
  }
  EXPECT_LT(same, 20);
}

TEST(Augment, OutputsStayInTheNormalizedPixelRange) {
  const int64_t h = 40, w = 40, c = 3;
  auto img = random_image(h, w, c, 3);
  AugmentConfig config{.crop_height = 32,
                       .crop_width = 32,
                       .random_crop = true,
                       .flip = true,
                       .pad = 0,
                       .lighting_std = 0.1f,
                       .mean = {120, 115, 100},
                       .std = {60, 58, 57}};
  std::vector<float> out(32 * 32 * 3);
  for (int64_t i = 0; i < 50; ++i) {
    AugmentDraw d = draw_augmentation(config, h, w, c, 1, 0, i);
    augment_image(img.data(), h, w, c, config, d, out.data());
    for (size_t k = 0; k < out.size(); ++k) {
      size_t ch = k / (32 * 32);
      float lo = (0.0f + d.lighting[ch] - config.mean[ch]) / config.std[ch];
      float hi = (255.0f + d.lighting[ch] - config.mean[ch]) / config.std[ch];
      ASSERT_GE(out[k], lo - 1e-5f);
      ASSERT_LE(out[k], hi + 1e-5f);
    }
  }
}

TEST(Augment, LightingOnlyForThreeChannelsAndScaledByStd) {
  AugmentConfig config{
      .crop_height = 4, .crop_width = 4, .random_crop = true, .lighting_std = 0.1f};
  double sum_sq = 0;
  for (int64_t i = 0; i < 500; ++i) {
    AugmentDraw gray = draw_augmentation(config, 4, 4, 1, 0, 0, i);
    EXPECT_EQ(gray.lighting[0], 0.0f);
    AugmentDraw rgb = draw_augmentation(config, 4, 4, 3, 0, 0, i);
    sum_sq += rgb.lighting[0] * rgb.lighting[0];
  }
  // Red's shift has sd 255 * 0.1 * |(eigvec . eigval)| ~ 255 * 0.1 * 0.124 = 3.2 pixel units.
  double sd = std::sqrt(sum_sq / 500);
  EXPECT_GT(sd, 2.5);
  EXPECT_LT(sd, 4.0);
}

TEST(Augment, ValidateRejectsImpossibleConfigs) {
  AugmentConfig too_big{.crop_height = 30, .crop_width = 30};
  EXPECT_THROW(validate(too_big, 28, 28, 1), DataError);
  too_big.pad = 1;
  EXPECT_NO_THROW(validate(too_big, 28, 28, 1));
  AugmentConfig wrong_mean{.crop_height = 8, .crop_width = 8, .mean = {1, 2}};
  EXPECT_THROW(validate(wrong_mean, 8, 8, 3), DataError);
  AugmentConfig zero_std{.crop_height = 8, .crop_width = 8, .std = {0}};
  EXPECT_THROW(validate(zero_std, 8, 8, 1), DataError);
}

}  // namespace
}  // namespace alexnet::io
