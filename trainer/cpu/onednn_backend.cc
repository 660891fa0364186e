// The oneDNN CPU backend: the process's engine and stream, and the Backend that hands out the
// oneDNN ops (one file each) over 64-byte aligned host memory with NHWC activations.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>

#include "io/call_error.h"
#include "trainer/backend.h"
#include "trainer/cpu/onednn_ops.h"
#include "trainer/grad_norm.h"

namespace alexnet::trainer {
namespace onednn {

// Function-local statics: created on first use, once per process however many backends exist,
// and initialized thread-safely.
dnnl::engine& engine() {
  static dnnl::engine cpu_engine =
      ALEXNET_DNNL_CHECK(dnnl::engine(dnnl::engine::kind::cpu, 0), "creating the CPU engine");
  return cpu_engine;
}

// In order: every op runs after the previous one, so ops never need to wait on each other.
dnnl::stream& stream() {
  static dnnl::stream in_order = ALEXNET_DNNL_CHECK(
      dnnl::stream(engine(), dnnl::stream::flags::in_order), "creating the CPU stream");
  return in_order;
}

dnnl::primitive_attr scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

namespace {
struct ScratchpadBuffer {
  void* data = nullptr;
  size_t bytes = 0;
  ~ScratchpadBuffer() { std::free(data); }
};
ScratchpadBuffer& scratchpad_buffer() {
  static ScratchpadBuffer buffer;
  return buffer;
}
std::mutex scratchpad_mutex;  // ops may be made from several threads (tests); they run from one
}  // namespace

void reserve_scratchpad(size_t bytes) {
  std::lock_guard<std::mutex> lock(scratchpad_mutex);
  ScratchpadBuffer& b = scratchpad_buffer();
  if (bytes <= b.bytes) return;
  const size_t rounded = (bytes + 4095) / 4096 * 4096;  // page multiple, as aligned_alloc wants
  void* p = std::aligned_alloc(4096, rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::free(b.data);  // safe between executions: run() sets the handle before each one
  b.data = p;
  b.bytes = rounded;
}

void* scratchpad_data() { return scratchpad_buffer().data; }

void check_status(dnnl_status_t status, const char* call, const char* file, int line,
                  const char* context) {
  if (status == dnnl_success) return;
  io::throw_call_error("oneDNN", call, file, line, context,
                       "status " + std::to_string(static_cast<int>(status)));
}

}  // namespace onednn

namespace {

class OneDnnBackend final : public Backend {
 public:
  std::string name() const override { return "onednn"; }
  ActivationLayout activation_layout() const override { return ActivationLayout::kNHWC; }
  // Empty copies may come with null pointers (an empty vector's data()): memcpy must not see them.
  void copy_to_device(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  void fill_zero(void* dst, size_t bytes) override {
    if (bytes != 0) std::memset(dst, 0, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) std::memcpy(dst, src, bytes);
  }
  bool host_memory() const override { return true; }
  double sum_of_squares(const float* x, size_t n) override {
    return trainer::sum_of_squares({x, n});
  }
  void scale(float* x, size_t n, float factor) override { scale_grads({x, n}, factor); }
  void synchronize() override {
    ALEXNET_DNNL_CHECK(onednn::stream().wait(), "waiting for the stream");
  }

  std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool bias) override {
    return onednn::make_conv2d(shape, bias);
  }
  std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out,
                                        bool bias) override {
    return onednn::make_linear(batch, in, out, bias);
  }
  std::unique_ptr<ReluOp> make_relu(int64_t elements) override {
    return onednn::make_relu(elements);
  }
  std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape) override {
    return onednn::make_max_pool(shape);
  }
  std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                            int64_t height, int64_t width,
                                                            int64_t out_h, int64_t out_w) override {
    return onednn::make_adaptive_avg_pool(batch, channels, height, width, out_h, out_w);
  }
  std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) override {
    return onednn::make_lrn(shape);
  }
  std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape) override {
    return onednn::make_batch_norm(shape);
  }
  std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p) override {
    return onednn::make_dropout(elements, p);
  }
  std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                          int64_t width) override {
    return onednn::make_flatten(batch, channels, height, width);
  }
  std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(
      int64_t batch, int64_t classes, double label_smoothing) override {
    return onednn::make_softmax_cross_entropy(batch, classes, label_smoothing);
  }

 protected:
  // 64 bytes: one AVX-512 vector and one cache line. aligned_alloc wants a multiple of the
  // alignment, and a zero-byte request still gets a distinct pointer (as new[] would).
  void* allocate_raw(size_t bytes) override {
    const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    if (rounded < bytes) throw std::bad_alloc();  // the rounding overflowed
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void free(void* p) noexcept override { std::free(p); }
};

}  // namespace

std::unique_ptr<Backend> make_onednn_backend() { return std::make_unique<OneDnnBackend>(); }

}  // namespace alexnet::trainer
