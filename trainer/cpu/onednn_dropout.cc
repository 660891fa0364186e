// Inverted dropout for the oneDNN CPU backend: the mask of trainer/dropout_math.h, bit for bit
// the reference's (reference::dropout_mask / dropout_forward / dropout_backward). oneDNN has no
// dropout primitive in 2.x; plain loops that the compiler vectorizes suffice (elementwise, memory
// bound).
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/cpu/onednn_ops.h"
#include "trainer/dropout_math.h"

namespace alexnet::trainer::onednn {
namespace {

class OneDnnDropout final : public DropoutOp {
 public:
  OneDnnDropout(int64_t n, double p) : n_(n) {
    if (n < 0) throw std::invalid_argument("dropout: n must not be negative");
    if (!(p >= 0 && p <= 1)) {
      throw std::invalid_argument("dropout: p must be in [0, 1], got " + std::to_string(p));
    }
    threshold_ = dropout_threshold(p);
    // Rounded from double to float once, as the reference does: kept values match bit for bit.
    scale_ = static_cast<float>(dropout_scale(p));
    mask_.resize(static_cast<size_t>(n));
  }

  void forward(const DropoutKey& key, const float* x, float* y) override {
    const uint64_t stream = dropout_stream(key.seed, key.step, key.rank, key.layer);
    const uint32_t threshold = threshold_;
    const float scale = scale_;
    uint8_t* mask = mask_.data();
    for (int64_t i = 0; i < n_; ++i) {
      const bool keep = dropout_keep(stream, static_cast<uint64_t>(i), threshold);
      mask[i] = keep ? 1 : 0;
      y[i] = dropout_apply(x[i], keep, scale);
    }
  }

  void backward(const float* dy, float* dx) override {
    const float scale = scale_;
    const uint8_t* mask = mask_.data();
    for (int64_t i = 0; i < n_; ++i) dx[i] = dropout_apply(dy[i], mask[i] != 0, scale);
  }

 private:
  int64_t n_;
  uint32_t threshold_ = 0;
  float scale_ = 0;
  std::vector<uint8_t> mask_;  // [n] 1 where the last forward kept the element
};

}  // namespace

std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p) {
  return std::make_unique<OneDnnDropout>(elements, p);
}

}  // namespace alexnet::trainer::onednn
