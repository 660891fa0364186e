// ReLU for the oneDNN CPU backend: its own loops (why: below), the reference's arithmetic.
#include <cmath>
#include <stdexcept>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

// ReLU as plain loops, not oneDNN's eltwise_relu: oneDNN 2.6's JIT ReLU computes max(x, 0),
// which turns a NaN into 0, and its use-dst backward gives 0 where the output is NaN. The
// reference (and PyTorch) let a NaN through both ways, so that a diverging run shows up in the
// loss instead of being silently zeroed. The loops are memory-bound either way and vectorize at
// -O3 (compare and blend); every element is read before it is written, so y may alias x and dx
// may alias y or dy.
class OneDnnRelu final : public ReluOp {
 public:
  explicit OneDnnRelu(int64_t n) : n_(n) {
    if (n < 0) throw std::invalid_argument("relu: n must not be negative");
  }
  void forward(const float* x, float* y) override {
    for (int64_t i = 0; i < n_; ++i) y[i] = (x[i] > 0 || std::isnan(x[i])) ? x[i] : 0.0f;
  }
  void backward(const float* y, const float* dy, float* dx) override {
    // As PyTorch's threshold_backward: zero where y <= 0, so a NaN output passes dy on.
    // dy is loaded unconditionally: a load under the condition would keep the loop scalar.
    for (int64_t i = 0; i < n_; ++i) {
      const float g = dy[i];
      dx[i] = y[i] <= 0 ? 0.0f : g;
    }
  }

 private:
  int64_t n_;
};

}  // namespace

std::unique_ptr<ReluOp> make_relu(int64_t elements) {
  return std::make_unique<OneDnnRelu>(elements);
}

}  // namespace alexnet::trainer::onednn
