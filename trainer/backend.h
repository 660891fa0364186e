// The compute backend interface: one implementation per device (plain reference loops, oneDNN on
// CPUs, cuDNN/cuBLAS on GPUs), and callers that never see which.
//
// An op object is made for one layer at a fixed shape (batch size included), so that a backend
// chooses its primitives, algorithms and workspaces once; it is then run every step without
// allocating. Ops that must remember something between forward and backward (max-pool argmax,
// LRN and batch-norm statistics, dropout masks) keep it inside the op object.
//
// Data crosses the interface as raw pointers into the backend's memory (host memory for the CPU
// backends, device memory for CUDA) in plain layouts:
//   activations  [N, C, H, W] logically, stored as activation_layout() says (NCHW or NHWC);
//                [N, features] after flatten, features in PyTorch's (C, H, W) order;
//   conv weight  [O, I / groups, KH, KW]; linear weight [O, I]; vectors [C] (PyTorch's layouts,
//                so the flat parameter buffer is a state_dict and needs no reorder to save).
// Backward functions overwrite their outputs. A backend that prefers other internal layouts
// (oneDNN's blocked weights) converts inside the op, into buffers it allocated at creation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "trainer/backend_options.h"
#include "trainer/op_shapes.h"
#include "trainer/optimizer_math.h"

namespace alexnet::trainer {

enum class ActivationLayout { kNCHW, kNHWC };

class Conv2dOp {
 public:
  virtual ~Conv2dOp() = default;
  // y = conv(x, w) + b; b may be null when the layer has no bias.
  virtual void forward(const float* x, const float* w, const float* b, float* y) = 0;
  virtual void backward_data(const float* dy, const float* w, float* dx) = 0;
  // dw and db (db null without bias).
  virtual void backward_weights(const float* x, const float* dy, float* dw, float* db) = 0;
};

class LinearOp {
 public:
  virtual ~LinearOp() = default;
  // y[N, O] = x[N, I] w[O, I]^T + b (b may be null).
  virtual void forward(const float* x, const float* w, const float* b, float* y) = 0;
  virtual void backward_data(const float* dy, const float* w, float* dx) = 0;
  virtual void backward_weights(const float* x, const float* dy, float* dw, float* db) = 0;
};

// ReLU; y may alias x (in place). backward reads the forward output y.
class ReluOp {
 public:
  virtual ~ReluOp() = default;
  virtual void forward(const float* x, float* y) = 0;
  virtual void backward(const float* y, const float* dy, float* dx) = 0;
};

// Max pooling; the op keeps the positions of the maxima of the last training forward.
class MaxPoolOp {
 public:
  virtual ~MaxPoolOp() = default;
  virtual void forward(const float* x, float* y, bool training) = 0;
  virtual void backward(const float* dy, float* dx) = 0;
};

class AdaptiveAvgPoolOp {
 public:
  virtual ~AdaptiveAvgPoolOp() = default;
  virtual void forward(const float* x, float* y) = 0;
  virtual void backward(const float* dy, float* dx) = 0;
};

// Local response normalization (op_shapes.h gives the form); backward reads x.
class LrnOp {
 public:
  virtual ~LrnOp() = default;
  virtual void forward(const float* x, float* y, bool training) = 0;
  virtual void backward(const float* x, const float* dy, float* dx) = 0;
};

// Batch normalization. Training forward uses the batch statistics, keeps them for backward and
// updates the running statistics (PyTorch's momentum and unbiased variance); inference forward
// uses the running statistics.
class BatchNormOp {
 public:
  virtual ~BatchNormOp() = default;
  virtual void forward_training(const float* x, const float* gamma, const float* beta, float* y,
                                float* running_mean, float* running_var) = 0;
  virtual void forward_inference(const float* x, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, float* y) = 0;
  virtual void backward(const float* x, const float* dy, const float* gamma, float* dx,
                        float* dgamma, float* dbeta) = 0;
};

// Inverted dropout over n elements, mask drawn from the key (trainer/dropout_math.h) and kept.
class DropoutOp {
 public:
  virtual ~DropoutOp() = default;
  virtual void forward(const DropoutKey& key, const float* x, float* y) = 0;
  virtual void backward(const float* dy, float* dx) = 0;
};

// From NCHW-or-NHWC activations [N, C, H, W] to [N, C * H * W] in PyTorch's (C, H, W) order,
// and back for the gradient (a copy or a transpose, depending on the activation layout).
class FlattenOp {
 public:
  virtual ~FlattenOp() = default;
  virtual void forward(const float* x, float* y) = 0;
  virtual void backward(const float* dy, float* dx) = 0;
};

// Mean softmax cross-entropy over [N, classes] logits, labels int32 [N] in backend memory.
struct LossResult {
  double loss = 0;             // mean over the batch
  int64_t top1 = 0, top5 = 0;  // correct predictions in the batch
};
class SoftmaxCrossEntropyOp {
 public:
  virtual ~SoftmaxCrossEntropyOp() = default;
  // dlogits may be null (evaluation); it is d(loss)/d(logits) times dlogits_scale (the loss
  // scale of fp16 training; 1 otherwise). Synchronous: the result is on the host when it returns.
  virtual LossResult forward_backward(const float* logits, const int32_t* labels, float* dlogits,
                                      float dlogits_scale) = 0;
};

// The optimizer's per-element update (trainer/optimizer_math.h) over n elements of backend
// memory, for backends whose memory the host cannot touch. first and second are the optimizer's
// state (null where the rule has none). A decoupled_factor other than 1 scales p first.
class OptimizerUpdateOp {
 public:
  virtual ~OptimizerUpdateOp() = default;
  virtual void update(UpdateRule rule, bool coupled_decay, const UpdateCoefficients& c,
                      float* params, const float* grads, float* first, float* second, size_t n) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "reference", "onednn", "cuda"
  virtual ActivationLayout activation_layout() const = 0;

  // Memory in the backend's space, 64-byte aligned, released by the returned deleter.
  struct Free {
    Backend* backend;
    void operator()(void* p) const { backend->free(p); }
  };
  using Memory = std::unique_ptr<void, Free>;
  Memory allocate(size_t bytes) { return Memory(allocate_raw(bytes), Free{this}); }
  virtual void copy_to_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  // From backend memory to backend memory.
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;  // all work issued so far is done
  // Binds the calling thread to the backend's device (CUDA: makes it current), for a thread that
  // drives several backends in turn (several GPUs per rank); host backends have nothing to bind.
  virtual void make_current() {}
  // Whether backend memory is host memory (the CPU backends): the optimizer then runs its own
  // host loops over it; otherwise it keeps its state in backend memory and uses
  // make_optimizer_update().
  virtual bool host_memory() const = 0;

  // Over n floats of backend memory: the sum of squares, accumulated in double and returned to
  // the host (NaN or Inf when any element is: the overflow check of loss scaling), and x *= factor.
  virtual double sum_of_squares(const float* x, size_t n) = 0;
  virtual void scale(float* x, size_t n, float factor) = 0;

  virtual std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool bias) = 0;
  virtual std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out,
                                                bool bias) = 0;
  virtual std::unique_ptr<ReluOp> make_relu(int64_t elements) = 0;
  virtual std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape) = 0;
  virtual std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                                    int64_t height, int64_t width,
                                                                    int64_t out_h,
                                                                    int64_t out_w) = 0;
  virtual std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape) = 0;
  // [N, C, spatial] activations in activation_layout() (NHWC: [N, spatial, C]).
  virtual std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape) = 0;
  virtual std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p) = 0;
  virtual std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                                  int64_t width) = 0;
  virtual std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(
      int64_t batch, int64_t classes, double label_smoothing) = 0;
  // Null on host-memory backends.
  virtual std::unique_ptr<OptimizerUpdateOp> make_optimizer_update() { return nullptr; }

 protected:
  virtual void* allocate_raw(size_t bytes) = 0;
  virtual void free(void* p) noexcept = 0;
};

// The backends built into this binary. The reference backend (plain loops, NCHW) exists for
// tests; "onednn" is the CPU backend; "cuda" exists where the build found CUDA, cuDNN and NCCL
// (trainer/cuda/). The CPU backends compute in fp32 only.
std::unique_ptr<Backend> make_reference_backend();
std::unique_ptr<Backend> make_onednn_backend();
// By name: "reference", "onednn", "cuda"; std::invalid_argument (one line) for an unknown name,
// "cuda" in a build without it, or options the backend cannot honour (bf16 on a CPU backend).
std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options = {});
// Whether this build has the CUDA backend, and how many CUDA devices the process sees (0 without
// the backend, a driver or a device: never throws).
bool cuda_backend_built();
int cuda_device_count();

}  // namespace alexnet::trainer
