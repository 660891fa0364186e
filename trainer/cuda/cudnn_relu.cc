// ReLU with cuDNN over n contiguous floats (any layout: element-wise).
#include <memory>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaRelu final : public ReluOp {
 public:
  CudaRelu(CudaContext& ctx, int64_t elements)
      : ctx_(ctx),
        tensor_(plan::flat_tensor(elements, "relu"), CUDNN_DATA_FLOAT),
        relu_(CUDNN_ACTIVATION_RELU),
        what_("running ReLU over " + std::to_string(elements) + " elements") {}

  // cuDNN allows y == x (in place).
  void forward(const float* x, float* y) override {
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(cudnnActivationForward(ctx_.cudnn(), relu_.get(), &one, tensor_.get(), x,
                                               &zero, tensor_.get(), y),
                        what_);
  }

  // cuDNN's backward wants x as well; ReLU's derivative is 1 exactly where x > 0, which is where
  // y > 0, so y serves as x (and the op needs nothing but y, as backend.h promises).
  void backward(const float* y, const float* dy, float* dx) override {
    const float one = 1, zero = 0;
    ALEXNET_CUDNN_CHECK(
        cudnnActivationBackward(ctx_.cudnn(), relu_.get(), &one, tensor_.get(), y, tensor_.get(),
                                dy, tensor_.get(), y, &zero, tensor_.get(), dx),
        what_);
  }

 private:
  CudaContext& ctx_;
  TensorDescriptor tensor_;
  ActivationDescriptor relu_;
  std::string what_;
};

}  // namespace

std::unique_ptr<ReluOp> make_relu(CudaContext& ctx, int64_t elements) {
  return std::make_unique<CudaRelu>(ctx, elements);
}

}  // namespace alexnet::trainer::cuda
