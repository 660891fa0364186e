// A model instantiated on a backend: the ops of every layer of a ModelSpec, made once for a fixed
// batch size, over flat parameter, gradient and buffer memory, with every activation allocated
// at construction. forward() and backward() allocate nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "trainer/backend.h"
#include "trainer/model_spec.h"
#include "trainer/profiler.h"

namespace alexnet::trainer {

// Fills host copies of the flat parameter and buffer memory as each tensor's Init says, from a
// seed (the same values on every machine: own normal and uniform draws from std::mt19937_64).
void initialize_parameters(const ModelSpec& spec, uint64_t seed, float* params, float* buffers);

class Model {
 public:
  // The backend must outlive the model. label_smoothing: of the training loss (loss()).
  Model(const ModelSpec& spec, Backend& backend, int64_t batch, double label_smoothing = 0);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelSpec& spec() const { return spec_; }
  int64_t batch() const { return batch_; }
  // Backend memory: [param_floats], [param_floats], [buffer_floats].
  float* params() { return params_; }
  float* grads() { return grads_; }
  float* buffers() { return buffers_; }
  // Elements of one input batch, [batch, C, H, W] in the backend's activation layout.
  int64_t input_elements() const;

  // Records every layer's forward and backward while the profiler is enabled (may be null).
  void set_profiler(Profiler* profiler) { profiler_ = profiler; }

  // Dropout can be switched off (the equivalence tests compare with PyTorch without it).
  void set_dropout(bool enabled) { dropout_enabled_ = enabled; }

  // Runs every layer; `input` is in backend memory. Returns the logits [batch, classes] in
  // backend memory, valid until the next forward. `key` seeds dropout (its layer field is
  // replaced by the layer's index).
  const float* forward(const float* input, bool training, const DropoutKey& key = {});
  // Loss, top-1 and top-5 of the last forward's logits; with `for_backward`, also the gradient
  // of the loss that backward() starts from, times `gradient_scale` (fp16's loss scale).
  // labels: int32 [batch] in backend memory.
  LossResult loss(const int32_t* labels, bool for_backward, float gradient_scale = 1);
  Backend& backend() { return backend_; }
  // Backward through every layer, writing (not accumulating) the gradients into grads().
  // `ready(offset, count)` is called as soon as a layer's parameter gradients are written,
  // last layer first, so that their all-reduce can start while the earlier layers run.
  void backward(const std::function<void(int64_t offset, int64_t count)>& ready = {});

 private:
  struct Layer;
  const ModelSpec spec_;
  Backend& backend_;
  const int64_t batch_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::unique_ptr<SoftmaxCrossEntropyOp> loss_op_;
  std::vector<Backend::Memory> memory_;
  float* params_ = nullptr;
  float* grads_ = nullptr;
  float* buffers_ = nullptr;
  std::vector<float*> activations_;  // activations_[i]: input of layer i; the last: logits
  float* grad_a_ = nullptr;          // two gradient buffers, alternated through backward
  float* grad_b_ = nullptr;
  const float* input_ = nullptr;
  bool dropout_enabled_ = true;
  Profiler* profiler_ = nullptr;
  bool training_ = false;
};

}  // namespace alexnet::trainer
