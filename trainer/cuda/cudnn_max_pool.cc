// Max pooling with cuDNN over NHWC activations, matching reference::max_pool_forward/backward.
//
// cuDNN's pooling backward recomputes where each maximum was from x and y, rather than keeping an
// argmax. The op therefore keeps the pointers to the last training forward's x and y and assumes
// both still hold those values at backward: true in the model, where a layer's input and output
// buffers are not rewritten before its backward (the ReLU before a pool runs in place on the
// pool's input, but in its own forward, before the pool's).
#include <memory>
#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaMaxPool final : public MaxPoolOp {
 public:
  CudaMaxPool(CudaContext& ctx, const Pool2dShape& s)
      : ctx_(ctx),
        // The deterministic variant: gradients reproduce run to run (ties and overlapping
        // windows accumulate in a fixed order).
        pool_(plan::pool_geometry(s), CUDNN_POOLING_MAX_DETERMINISTIC),
        x_desc_(plan::pool_input(s), CUDNN_DATA_FLOAT),
        y_desc_(plan::pool_output(s), CUDNN_DATA_FLOAT),
        what_("running " + plan::describe(s)) {
    int n = 0, c = 0, h = 0, w = 0;
    ALEXNET_CUDNN_CHECK(
        cudnnGetPooling2dForwardOutputDim(pool_.get(), x_desc_.get(), &n, &c, &h, &w),
        "creating " + plan::describe(s));
    if (h != s.out_height() || w != s.out_width()) {
      throw std::logic_error("max_pool: cuDNN's output " + std::to_string(h) + "x" +
                             std::to_string(w) + " differs from the reference's " +
                             std::to_string(s.out_height()) + "x" + std::to_string(s.out_width()));
    }
  }

  void forward(const float* x, float* y, bool training) override {
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(cudnnPoolingForward(ctx_.cudnn(), pool_.get(), &one, x_desc_.get(), x,
                                            &zero, y_desc_.get(), y),
                        what_);
    if (training) {
      last_x_ = x;
      last_y_ = y;
    }
  }

  void backward(const float* dy, float* dx) override {
    if (!last_x_) throw std::logic_error("max_pool: backward before a training forward");
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(
        cudnnPoolingBackward(ctx_.cudnn(), pool_.get(), &one, y_desc_.get(), last_y_, y_desc_.get(),
                             dy, x_desc_.get(), last_x_, &zero, x_desc_.get(), dx),
        what_ + " backward");
  }

 private:
  CudaContext& ctx_;
  PoolingDescriptor pool_;
  TensorDescriptor x_desc_, y_desc_;
  std::string what_;
  const float* last_x_ = nullptr;  // the last training forward's input and output
  const float* last_y_ = nullptr;
};

}  // namespace

std::unique_ptr<MaxPoolOp> make_max_pool(CudaContext& ctx, const Pool2dShape& shape) {
  return std::make_unique<CudaMaxPool>(ctx, shape);
}

}  // namespace alexnet::trainer::cuda
