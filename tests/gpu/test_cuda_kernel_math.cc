// CPU tests of the CUDA kernels' per-element arithmetic (the ALEXNET_HOST_DEVICE headers of
// trainer/cuda/), against the reference ops and io's augmentation: what the kernels compute is
// checked here, on any machine; tests/gpu/ then checks the kernels around it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "io/augment.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/adaptive_avg_pool_math.h"
#include "trainer/cpu/reference_ops.h"
#include "trainer/cuda/augment_math.h"
#include "trainer/flatten_math.h"
#include "trainer/softmax_cross_entropy_math.h"

namespace alexnet::trainer::cuda {
namespace {

using testing::nchw_to_nhwc;
using testing::nhwc_to_nchw;
using testing::random_floats;
using testing::relative_error;

struct Dims4 {
  int64_t n, c, h, w;
};

// --- flatten ---------------------------------------------------------------------------------

TEST(FlattenMath, NhwcToTorchOrderAndBack) {
  for (const Dims4& d : {Dims4{2, 3, 4, 5}, Dims4{3, 256, 6, 6}, Dims4{1, 1, 7, 3},
                         Dims4{4, 5, 1, 1}, Dims4{2, 7, 3, 1}}) {
    const int64_t total = d.n * d.c * d.h * d.w;
    // Flattening NCHW data is the identity: flat[i] is NCHW element i.
    const std::vector<float> nchw = random_floats(static_cast<size_t>(total), 7);
    const std::vector<float> nhwc = nchw_to_nhwc(nchw, d.n, d.c, d.h, d.w);
    const FlattenDims dims{d.c, d.h, d.w};
    std::vector<float> flat(nchw.size()), back(nchw.size());
    for (int64_t i = 0; i < total; ++i) flat[i] = nhwc[flatten_source(i, dims)];
    EXPECT_EQ(flat, nchw) << d.n << "x" << d.c << "x" << d.h << "x" << d.w;
    for (int64_t j = 0; j < total; ++j) back[j] = flat[flatten_target(j, dims)];
    EXPECT_EQ(back, nhwc);
    for (int64_t i = 0; i < total; ++i) {
      ASSERT_EQ(flatten_target(flatten_source(i, dims), dims), i);
    }
  }
}

// --- adaptive average pooling -----------------------------------------------------------------

TEST(AdaptivePoolMath, BinsContainingAnElementAreExactlyFirstToLast) {
  for (int64_t in = 1; in <= 20; ++in) {
    for (int64_t out = 1; out <= 20; ++out) {
      for (int64_t k = 0; k < in; ++k) {
        int64_t first = -1, last = -1;
        for (int64_t i = 0; i < out; ++i) {
          if (adaptive_bin_start(i, in, out) <= k && k < adaptive_bin_end(i, in, out)) {
            if (first < 0) first = i;
            last = i;
          }
        }
        ASSERT_GE(first, 0) << "element " << k << " in no bin, in " << in << " out " << out;
        EXPECT_EQ(adaptive_first_bin(k, in, out), first) << k << " " << in << " " << out;
        EXPECT_EQ(adaptive_last_bin(k, in, out), last) << k << " " << in << " " << out;
        // Bins containing k are contiguous.
        for (int64_t i = first; i <= last; ++i) {
          EXPECT_LE(adaptive_bin_start(i, in, out), k);
          EXPECT_GT(adaptive_bin_end(i, in, out), k);
        }
      }
    }
  }
}

struct PoolCase {
  int64_t n, c, h, w, oh, ow;
};

TEST(AdaptivePoolMath, MatchesReferenceForwardAndBackward) {
  for (const PoolCase& p :
       {PoolCase{2, 3, 6, 6, 6, 6}, PoolCase{2, 5, 13, 13, 6, 6}, PoolCase{3, 2, 7, 5, 4, 3},
        PoolCase{1, 4, 3, 4, 5, 6}, PoolCase{2, 3, 1, 1, 6, 6}}) {
    const size_t in_size = static_cast<size_t>(p.n * p.c * p.h * p.w);
    const size_t out_size = static_cast<size_t>(p.n * p.c * p.oh * p.ow);
    const std::vector<float> x = random_floats(in_size, 3), dy = random_floats(out_size, 4);
    std::vector<float> y_ref(out_size), dx_ref(in_size);
    reference::adaptive_avg_pool_forward(p.n, p.c, p.h, p.w, p.oh, p.ow, x.data(), y_ref.data());
    reference::adaptive_avg_pool_backward(p.n, p.c, p.h, p.w, p.oh, p.ow, dy.data(), dx_ref.data());
    const AdaptivePoolDims d{p.c, p.h, p.w, p.oh, p.ow};
    const std::vector<float> x_nhwc = nchw_to_nhwc(x, p.n, p.c, p.h, p.w);
    const std::vector<float> dy_nhwc = nchw_to_nhwc(dy, p.n, p.c, p.oh, p.ow);
    std::vector<float> y(out_size), dx(in_size);
    for (size_t o = 0; o < out_size; ++o) {
      y[o] = adaptive_avg_pool_output(x_nhwc.data(), static_cast<int64_t>(o), d);
    }
    for (size_t i = 0; i < in_size; ++i) {
      dx[i] = adaptive_avg_pool_input_grad(dy_nhwc.data(), static_cast<int64_t>(i), d);
    }
    // Float sums of at most a few dozen terms against the reference's double: a few ulps.
    EXPECT_LT(relative_error(nhwc_to_nchw(y, p.n, p.c, p.oh, p.ow), y_ref), 1e-6)
        << p.h << "x" << p.w << " -> " << p.oh << "x" << p.ow;
    EXPECT_LT(relative_error(nhwc_to_nchw(dx, p.n, p.c, p.h, p.w), dx_ref), 1e-6)
        << p.h << "x" << p.w << " -> " << p.oh << "x" << p.ow;
  }
}

// --- softmax cross-entropy -------------------------------------------------------------------

// The log-softmax of a row in float, as cuDNN's CUDNN_SOFTMAX_LOG computes it.
std::vector<float> log_softmax_rows(const std::vector<float>& z, int64_t batch, int64_t classes) {
  std::vector<float> lp(z.size());
  for (int64_t n = 0; n < batch; ++n) {
    const float* row = z.data() + n * classes;
    const float largest = *std::max_element(row, row + classes);
    float sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - largest);
    for (int64_t c = 0; c < classes; ++c) lp[n * classes + c] = row[c] - largest - std::log(sum);
  }
  return lp;
}

struct LossCase {
  int64_t batch, classes;
  double smoothing;
  float scale;
};

TEST(LossMath, MatchesReferenceLossAndGradient) {
  for (const LossCase& t : {LossCase{4, 10, 0.0, 1.0f}, LossCase{7, 1000, 0.1, 1.0f},
                            LossCase{3, 5, 0.2, 1024.0f}, LossCase{1, 1, 0.0, 1.0f}}) {
    const std::vector<float> z = random_floats(static_cast<size_t>(t.batch * t.classes), 11, -4, 4);
    std::vector<int32_t> labels(static_cast<size_t>(t.batch));
    for (int64_t n = 0; n < t.batch; ++n) labels[n] = static_cast<int32_t>((n * 7 + 3) % t.classes);
    std::vector<float> dz_ref(z.size());
    const double loss_ref = reference::softmax_cross_entropy(
        t.batch, t.classes, z.data(), labels.data(), t.smoothing, dz_ref.data());
    for (float& g : dz_ref) g *= t.scale;

    const std::vector<float> lp = log_softmax_rows(z, t.batch, t.classes);
    const double uniform = t.smoothing / static_cast<double>(t.classes);
    double total = 0;
    std::vector<float> dz(z.size());
    for (int64_t n = 0; n < t.batch; ++n) {
      ASSERT_TRUE(label_in_range(labels[n], t.classes));
      for (int64_t c = 0; c < t.classes; ++c) {
        const double target = smoothed_target(c, labels[n], t.smoothing, uniform);
        const size_t i = static_cast<size_t>(n * t.classes + c);
        total += loss_term(target, lp[i]);
        dz[i] = loss_gradient(lp[i], target, t.batch, t.scale);
      }
    }
    // Float log-probabilities (as cuDNN's) against the reference's double: ~1e-7 relative each.
    EXPECT_NEAR(total / static_cast<double>(t.batch), loss_ref, 1e-5 * std::max(1.0, loss_ref))
        << t.batch << "x" << t.classes;
    EXPECT_LT(relative_error(dz, dz_ref), 1e-5) << t.batch << "x" << t.classes;
  }
}

TEST(LossMath, LabelRangeAndTopK) {
  EXPECT_TRUE(label_in_range(0, 3));
  EXPECT_TRUE(label_in_range(2, 3));
  EXPECT_FALSE(label_in_range(3, 3));
  EXPECT_FALSE(label_in_range(-1, 3));
  EXPECT_TRUE(ranks_within(0, 1));
  EXPECT_FALSE(ranks_within(1, 1));
  EXPECT_TRUE(ranks_within(4, 5));
  EXPECT_FALSE(ranks_within(5, 5));
  // A zero target never turns -inf into NaN.
  EXPECT_EQ(loss_term(0.0, -INFINITY), 0.0);
}

// --- augmentation ----------------------------------------------------------------------------

struct AugmentCase {
  int64_t height, width, channels, crop_h, crop_w, pad;
  bool flip;
  int64_t top, left;
  bool lighting;
};

TEST(AugmentMath, ReproducesIoAugmentationBitForBit) {
  for (const AugmentCase& t : {
           AugmentCase{9, 11, 3, 7, 8, 0, false, 1, 2, false},
           AugmentCase{9, 11, 3, 7, 8, 0, true, 2, 3, true},
           AugmentCase{8, 8, 3, 8, 8, 4, true, 0, 7, false},  // CIFAR-style padding, both sides
           AugmentCase{8, 8, 3, 8, 8, 4, false, 8, 1, true},
           AugmentCase{5, 6, 1, 3, 4, 0, true, 1, 1, false},
           AugmentCase{6, 5, 5, 4, 3, 2, true, 3, 0, false},  // a generic channel count
       }) {
    const int64_t batch = 3;
    std::mt19937 rng(5);
    std::vector<uint8_t> src(static_cast<size_t>(batch * t.height * t.width * t.channels));
    for (auto& v : src) v = static_cast<uint8_t>(rng() & 0xFF);
    io::AugmentConfig config;
    config.crop_height = t.crop_h;
    config.crop_width = t.crop_w;
    config.pad = t.pad;
    config.layout = io::Layout::kNHWC;
    for (int64_t c = 0; c < t.channels; ++c) {
      config.mean.push_back(100.0f + 13.7f * static_cast<float>(c));
      config.std.push_back(50.0f + 7.3f * static_cast<float>(c));
    }
    io::validate(config, t.height, t.width, t.channels);

    std::vector<AugmentImage> images;
    std::vector<float> expected;
    const int64_t image_size = t.height * t.width * t.channels;
    const int64_t out_size = t.crop_h * t.crop_w * t.channels;
    for (int64_t n = 0; n < batch; ++n) {
      io::AugmentDraw draw;
      draw.top = (t.top + n) % (t.height + 2 * t.pad - t.crop_h + 1);
      draw.left = (t.left + 2 * n) % (t.width + 2 * t.pad - t.crop_w + 1);
      draw.flip = t.flip != (n == 1);
      if (t.lighting) {
        draw.lighting[0] = 3.25f * static_cast<float>(n + 1);
        draw.lighting[1] = -1.5f;
        draw.lighting[2] = 0.7f;
      }
      images.push_back(make_augment_image(config, draw, t.channels));
      std::vector<float> one(static_cast<size_t>(out_size));
      io::augment_image(src.data() + n * image_size, t.height, t.width, t.channels, config, draw,
                        one.data());
      expected.insert(expected.end(), one.begin(), one.end());
    }
    const AugmentGeometry g{t.height, t.width, t.channels, t.crop_h, t.crop_w, t.pad};
    std::vector<float> got(expected.size());
    for (size_t o = 0; o < got.size(); ++o) {
      got[o] = augment_output(src.data(), images.data(), static_cast<int64_t>(o), g);
    }
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)))
        << t.height << "x" << t.width << "x" << t.channels << " crop " << t.crop_h << "x"
        << t.crop_w << " pad " << t.pad;
  }
}

}  // namespace
}  // namespace alexnet::trainer::cuda
