// Flatten for the oneDNN CPU backend: NHWC to PyTorch's (C, H, W) order, a oneDNN reorder.
#include <stdexcept>
#include <string>

#include "trainer/cpu/onednn_ops.h"

namespace alexnet::trainer::onednn {
namespace {

using dnnl::memory;

// NHWC [N, H, W, C] to [N, C * H * W] in (C, H, W) order is a reorder from an `nhwc` memory
// descriptor to an `nchw` one over the same logical [N, C, H, W] tensor; backward is the reverse
// reorder. A transpose cannot run in place, so x and y (dy and dx) must not be the same buffer.
class OneDnnFlatten final : public FlattenOp {
 public:
  OneDnnFlatten(int64_t batch, int64_t channels, int64_t height, int64_t width) {
    const std::string shape = std::to_string(batch) + "x" + std::to_string(height) + "x" +
                              std::to_string(width) + "x" + std::to_string(channels);
    if (batch <= 0 || channels <= 0 || height <= 0 || width <= 0) {
      throw std::invalid_argument("flatten: sizes must be positive, got " + shape);
    }
    const memory::dims dims{batch, channels, height, width};
    const auto f32 = memory::data_type::f32;
    dnnl::engine& eng = engine();
    std::string what = "creating the memory objects of flatten " + shape;
    // Memory objects without buffers, pointed at the caller's arrays on each call.
    nhwc_ = ALEXNET_DNNL_CHECK(memory({dims, f32, memory::format_tag::nhwc}, eng, DNNL_MEMORY_NONE),
                               what);
    nchw_ = ALEXNET_DNNL_CHECK(memory({dims, f32, memory::format_tag::nchw}, eng, DNNL_MEMORY_NONE),
                               what);
    what = "creating the forward reorder of flatten " + shape;
    forward_ = make_reorder(nhwc_, nchw_, forward_args_, what);
    what = "creating the backward reorder of flatten " + shape;
    backward_ = make_reorder(nchw_, nhwc_, backward_args_, what);
  }

  void forward(const float* x, float* y) override {
    if (x == y) throw std::invalid_argument("flatten forward: x and y must not be one buffer");
    point(nhwc_, x);
    point(nchw_, y);
    run(forward_, forward_args_, "running flatten forward");
  }
  void backward(const float* dy, float* dx) override {
    if (dy == dx) throw std::invalid_argument("flatten backward: dy and dx must not be one buffer");
    point(nchw_, dy);
    point(nhwc_, dx);
    run(backward_, backward_args_, "running flatten backward");
  }

 private:
  // oneDNN takes void*; the op only reads what the caller passes as const.

  memory nhwc_, nchw_;
  dnnl::reorder forward_, backward_;
  Args forward_args_, backward_args_;
};

}  // namespace

std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                        int64_t width) {
  return std::make_unique<OneDnnFlatten>(batch, channels, height, width);
}

}  // namespace alexnet::trainer::onednn
