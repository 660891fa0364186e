// The CUDA backend: memory, copies and op factories over one CudaContext.
//
// Copies between the host and the device are synchronous for the caller (the interface promises
// that the host buffer may be reused at once, and results are on the host when copy_to_host
// returns); everything else is queued on the context's stream.
#include "trainer/cuda/cuda_backend.h"

#include <stdexcept>
#include <string>

#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_context.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/reduction.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& options)
      : context_(options.device, options), sum_of_squares_(context_) {}

  std::string name() const override { return "cuda"; }
  ActivationLayout activation_layout() const override { return ActivationLayout::kNHWC; }
  CudaContext& context() { return context_; }

  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    ALEXNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, context_.stream()),
                       "copying " + std::to_string(bytes) + " bytes to the device");
    ALEXNET_CUDA_CHECK(cudaStreamSynchronize(context_.stream()),
                       "waiting for a copy to the device");
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    ALEXNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, context_.stream()),
                       "copying " + std::to_string(bytes) + " bytes to the host");
    ALEXNET_CUDA_CHECK(cudaStreamSynchronize(context_.stream()), "waiting for a copy to the host");
  }
  void fill_zero(void* dst, size_t bytes) override {
    ALEXNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, context_.stream()), "zeroing device memory");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    ALEXNET_CUDA_CHECK(
        cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context_.stream()),
        "copying " + std::to_string(bytes) + " bytes on the device");
  }
  void synchronize() override {
    ALEXNET_CUDA_CHECK(cudaStreamSynchronize(context_.stream()), "waiting for the compute stream");
  }
  void make_current() override {
    ALEXNET_CUDA_CHECK(
        cudaSetDevice(context_.device()),
        "making CUDA device " + std::to_string(context_.device()) + " current for this thread");
  }
  bool host_memory() const override { return false; }

  double sum_of_squares(const float* x, size_t n) override { return sum_of_squares_(x, n); }
  void scale(float* x, size_t n, float factor) override { cuda::scale(context_, x, n, factor); }

  std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool bias) override {
    return cuda::make_conv2d(context_, shape, bias);
  }
  std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out,
                                        bool bias) override {
    return cuda::make_linear(context_, batch, in, out, bias);
  }
  std::unique_ptr<ReluOp> make_relu(int64_t elements) override {
    return cuda::make_relu(context_, elements);
  }
  std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape) override {
    return cuda::make_max_pool(context_, shape);
  }
  std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                            int64_t height, int64_t width,
                                                            int64_t out_h, int64_t out_w) override {
    return cuda::make_adaptive_avg_pool(context_, batch, channels, height, width, out_h, out_w);
  }
  std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) override {
    return cuda::make_lrn(context_, shape);
  }
  std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape) override {
    return cuda::make_batch_norm(context_, shape);
  }
  std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p) override {
    return cuda::make_dropout(context_, elements, p);
  }
  std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                          int64_t width) override {
    return cuda::make_flatten(context_, batch, channels, height, width);
  }
  std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(
      int64_t batch, int64_t classes, double label_smoothing) override {
    return cuda::make_softmax_cross_entropy(context_, batch, classes, label_smoothing);
  }
  std::unique_ptr<OptimizerUpdateOp> make_optimizer_update() override {
    return cuda::make_optimizer_update(context_);
  }

 protected:
  void* allocate_raw(size_t bytes) override {
    // cudaMalloc aligns to 256 bytes, beyond the interface's 64.
    return context_.allocate(bytes, "backend memory").release();
  }
  void free(void* p) noexcept override { DeviceFree()(p); }

 private:
  CudaContext context_;
  SumOfSquares sum_of_squares_;
};

CudaBackend& cuda_backend(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr) {
    throw std::invalid_argument("the " + backend.name() + " backend is not a CUDA backend");
  }
  return *cuda;
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  if (device_count() == 0) {
    throw std::invalid_argument(
        "backend 'cuda': no CUDA device visible (no driver, no GPU, or CUDA_VISIBLE_DEVICES "
        "empty)");
  }
  return std::make_unique<CudaBackend>(options);
}

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return count;
}

CudaContext& backend_context(Backend& backend) { return cuda_backend(backend).context(); }

int backend_device(Backend& backend) { return backend_context(backend).device(); }

cudaStream_t backend_stream(Backend& backend) { return backend_context(backend).stream(); }

void make_current(Backend& backend) { cuda_backend(backend).make_current(); }

}  // namespace alexnet::trainer::cuda
