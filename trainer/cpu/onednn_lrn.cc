// Local response normalization across channels over NHWC activations, in the paper's form
// (trainer/op_shapes.h), matching reference::lrn_forward / lrn_backward: the CPU backend's own
// vectorized loops, not oneDNN's lrn primitive, over the window, denominator and gradient of
// trainer/lrn_math.h (shared with the reference and the CUDA kernels).
//
// Why not oneDNN: oneDNN 2.6.3's JIT LRN for nhwc on AVX-512 (`lrn_jit:avx512_core`, what it
// dispatches on an AVX-512 CPU) crashes with SIGSEGV inside the primitive for some shapes (7
// channels on 5x3, size 5, batch 2, every run; the same shapes pass under ONEDNN_VERBOSE=1 and
// on the AVX2 path, and AlexNet's own 96 and 256 channels happened to work): a library bug that
// depends on the shape, the ISA and the timing cannot be fenced off by a list of shapes. Its
// window for even sizes also differs from ours (size - 1 channels). These loops are as fast on
// AlexNet's shapes (bench/RESULTS.md, "LRN") and need no workspace: backward recomputes the
// denominators from x, which saves batch x 55 x 55 x 96 floats (37 MB at batch 32) per layer.
//
// y[c] = x[c] * d[c]^-beta,  d[c] = k + alpha * sum_{c2 in window(c)} x[c2]^2,
// window(c) = [c - size/2, c + (size-1)/2] clipped to [0, C).
// dx[c] = dy[c] d[c]^-beta - 2 alpha beta x[c] sum_{c' : c in window(c')} dy[c'] x[c']
// d[c']^-beta-1 where c in window(c') means c' in [c - (size-1)/2, c + size/2].
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "trainer/cpu/onednn_ops.h"
#include "trainer/lrn_math.h"
#include "trainer/op_shapes.h"

namespace alexnet::trainer::onednn {
namespace {

class OneDnnLrn final : public LrnOp {
 public:
  explicit OneDnnLrn(const LrnShape& s)
      : s_(s),
        alpha_(static_cast<float>(s.alpha)),
        beta_(static_cast<float>(s.beta)),
        k_(static_cast<float>(s.k)),
        beta_is_three_quarters_(s.beta == 0.75) {
    validate(s);  // the reference's rules
  }

  void forward(const float* x, float* y, bool /*training: no workspace to keep*/) override {
    if (x == y) throw std::invalid_argument("lrn forward: x and y must not be one buffer");
    beta_is_three_quarters_ ? forward_pixels<true>(x, y) : forward_pixels<false>(x, y);
  }

  void backward(const float* x, const float* dy, float* dx) override {
    if (x == dx || dy == dx) {
      throw std::invalid_argument("lrn backward: dx must not share a buffer with x or dy");
    }
    beta_is_three_quarters_ ? backward_pixels<true>(x, dy, dx) : backward_pixels<false>(x, dy, dx);
  }

 private:
  template <bool kThreeQuarters>
  void forward_pixels(const float* x, float* y) const {
    const int64_t C = s_.channels, pixels = s_.batch * s_.height * s_.width;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < pixels; ++p) {
      const float* __restrict xp = x + p * C;
      float* __restrict yp = y + p * C;
      window_sum(xp, yp, lrn_below(s_.size), lrn_above(s_.size), true);
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        yp[c] = xp[c] * power<kThreeQuarters>(lrn_denominator_of(yp[c], k_, alpha_));
      }
    }
  }

  template <bool kThreeQuarters>
  void backward_pixels(const float* x, const float* dy, float* dx) const {
    const int64_t C = s_.channels, pixels = s_.batch * s_.height * s_.width;
    const float two_alpha_beta = 2 * alpha_ * beta_;
#pragma omp parallel
    {
      // Per thread, grown once (the first step): a pixel's denominators, then the sums of t.
      thread_local std::vector<float> sums, t;
      if (sums.size() < static_cast<size_t>(C)) {
        sums.resize(static_cast<size_t>(C));
        t.resize(static_cast<size_t>(C));
      }
      float* __restrict dp_sums = sums.data();
      float* __restrict tp = t.data();
#pragma omp for schedule(static)
      for (int64_t p = 0; p < pixels; ++p) {
        const float* __restrict xp = x + p * C;
        const float* __restrict gp = dy + p * C;
        float* __restrict dp = dx + p * C;
        window_sum(xp, dp_sums, lrn_below(s_.size), lrn_above(s_.size), true);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float den = lrn_denominator_of(dp_sums[c], k_, alpha_);
          float inverse;                                          // 1 / d
          const float inv = power<kThreeQuarters>(den, inverse);  // d^-beta
          dp[c] = gp[c] * inv;
          tp[c] = gp[c] * xp[c] * inv * inverse;  // dy x d^(-beta-1)
        }
        // The mirrored window gathers, for each c, the t of every c' whose window holds c.
        window_sum(tp, dp_sums, lrn_above(s_.size), lrn_below(s_.size), false);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          dp[c] = lrn_input_grad(dp[c], two_alpha_beta, xp[c], dp_sums[c]);
        }
      }
    }
  }

  // out[c] = sum over c2 in [c - below, c + above] ∩ [0, C) of v[c2] (squared if `square`), one
  // pass per offset so that each pass vectorizes; the order of the sum is fixed.
  void window_sum(const float* v, float* out, int64_t below, int64_t above, bool square) const {
    const int64_t C = s_.channels;
    std::fill(out, out + C, 0.0f);
    for (int64_t d = -below; d <= above; ++d) {
      const int64_t begin = std::max<int64_t>(0, -d), end = std::min<int64_t>(C, C - d);
      const float* src = v + d;
      if (square) {
#pragma omp simd
        for (int64_t c = begin; c < end; ++c) out[c] += src[c] * src[c];
      } else {
#pragma omp simd
        for (int64_t c = begin; c < end; ++c) out[c] += src[c];
      }
    }
  }

  // den^-beta. The paper's (and every variant's) beta = 0.75 as two square roots, which
  // vectorize; pow for other betas.
  template <bool kThreeQuarters>
  float power(float den) const {
    float unused;
    return power<kThreeQuarters>(den, unused);
  }
  // The same, and 1 / den (backward needs both).
  template <bool kThreeQuarters>
  float power(float den, float& inverse) const {
    if constexpr (kThreeQuarters) {
      const float r = 1.0f / std::sqrt(den);
      inverse = r * r;
      return r * std::sqrt(r);
    } else {
      inverse = 1.0f / den;
      return std::pow(den, -beta_);
    }
  }

  LrnShape s_;
  float alpha_, beta_, k_;
  bool beta_is_three_quarters_;
};

}  // namespace

std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) {
  return std::make_unique<OneDnnLrn>(shape);
}

}  // namespace alexnet::trainer::onednn
