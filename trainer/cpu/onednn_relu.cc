// ReLU for the oneDNN CPU backend: its own loops (why: below), the reference's arithmetic.
#include <stdexcept>

#include "trainer/cpu/onednn_ops.h"
#include "trainer/relu_math.h"

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
    for (int64_t i = 0; i < n_; ++i) y[i] = relu_output(x[i]);
  }
  void backward(const float* y, const float* dy, float* dx) override {
    // dy is loaded unconditionally (relu_input_grad takes it by value): a load under the
    // condition would keep the loop scalar.
    for (int64_t i = 0; i < n_; ++i) dx[i] = relu_input_grad(y[i], dy[i]);
  }

 private:
  int64_t n_;
};

}  // namespace

std::unique_ptr<ReluOp> make_relu(int64_t elements) {
  return std::make_unique<OneDnnRelu>(elements);
}

}  // namespace alexnet::trainer::onednn
