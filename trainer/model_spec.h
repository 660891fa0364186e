// The AlexNet variants described as data: layers, hyper-parameters, shapes and parameter layout.
//
// No computation lives here: the backends (reference, oneDNN, cuDNN) instantiate their ops from a
// ModelSpec, the optimizer and the all-reduce see only the flat buffers it lays out, and
// checkpoints use its PyTorch state_dict names, so one description serves them all.
//
// Layout conventions (PyTorch's, so that state_dicts load without transposes):
//   activations  [C, H, W] per image (NCHW batches), [features] after flatten;
//   conv weight  [O, I / groups, KH, KW];  linear weight [O, I], I in C, H, W order;
//   batch norm   weight (gamma), bias (beta), running_mean, running_var [C];
//                num_batches_tracked [] (a scalar).
//
// Two flat float buffers: the trainable parameters (gradients and optimizer state mirror it
// element for element, so one all-reduce covers every gradient) and the buffers (running
// statistics, never all-reduced as gradients). Every tensor's offset in either buffer is a
// multiple of kParamAlignment floats (64 bytes): each tensor starts on its own cache line and
// meets the alignment of AVX-512 loads and of cuDNN/oneDNN's preferred pointers; the padding
// between tensors is zero and never read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace alexnet::trainer {

inline constexpr int64_t kParamAlignment = 16;  // floats, 64 bytes

enum class LayerKind {
  kConv,
  kRelu,
  kMaxPool,
  kLrn,
  kBatchNorm,
  kAdaptiveAvgPool,
  kFlatten,
  kDropout,
  kLinear
};

// PyTorch's module class name for a kind ("Conv2d", "LocalResponseNorm", ...).
const char* layer_kind_name(LayerKind kind);

enum class InitKind {
  kNormal,          // N(0, std), std = Init::scale (the paper's N(0, 0.01))
  kHeNormal,        // Keras (>= 2.3) he_normal: a normal truncated at 2 std and rescaled so
                    // that the final std is scale = sqrt(2 / fan_in)
  kConstant,        // every element = scale (the paper's biases of 1)
  kZeros,           // biases, BN beta, running_mean, num_batches_tracked
  kOnes,            // BN gamma, running_var
  kKaimingUniform,  // PyTorch's default for conv and linear, weights and biases alike:
                    // U(-scale, scale), scale = 1 / sqrt(fan_in) (kaiming_uniform, a = sqrt(5))
  kGlorotUniform,   // Keras's default kernel initializer: U(-scale, scale),
                    // scale = sqrt(6 / (fan_in + fan_out))
};

const char* init_kind_name(InitKind kind);

struct Init {
  InitKind kind = InitKind::kZeros;
  double scale = 0;  // std (normal kinds), value (constant) or bound (uniform kinds)
  // Of the layer the tensor belongs to, as PyTorch computes them from the weight's shape:
  // [O, I/g, KH, KW] gives fan_in = I/g * KH * KW, fan_out = O * KH * KW. 0 where unused.
  int64_t fan_in = 0;
  int64_t fan_out = 0;
};

struct ParamSpec {
  std::string name;            // PyTorch state_dict key, e.g. "features.0.weight"
  std::vector<int64_t> shape;  // PyTorch layout (see the top of this file); {} for a scalar
  int64_t offset = 0;          // floats, into the parameter buffer (the buffers' one if is_buffer)
  bool is_buffer = false;      // running_mean/var, num_batches_tracked: not trained
  bool weight_decay = false;   // false for biases, batch norm and buffers
  Init init;

  int64_t numel() const;
};

// Hyper-parameters; only the struct that matches LayerSpec::kind is meaningful.
struct ConvParams {  // square kernels, as every AlexNet has
  int64_t out_channels = 0, kernel = 1, stride = 1, pad = 0, groups = 1;
  bool bias = true;
};
struct PoolParams {  // max pooling, floor mode (PyTorch's ceil_mode=False)
  int64_t kernel = 3, stride = 2, pad = 0;
};
// The paper's form: y = x / (k + alpha * sum over `size` neighbouring channels of x^2)^beta.
// PyTorch's nn.LocalResponseNorm(size, alpha_t, beta, k) has alpha_t = alpha * size.
struct LrnParams {
  int64_t size = 5;
  double alpha = 1e-4, beta = 0.75, k = 2.0;
};
// PyTorch's convention: running = (1 - momentum) * running + momentum * batch statistic.
struct BatchNormParams {
  double eps = 1e-5, momentum = 0.1;
};

struct LayerSpec {
  std::string name;  // PyTorch module path, e.g. "features.0"; "flatten" for the reshape
  LayerKind kind = LayerKind::kRelu;
  ConvParams conv;
  PoolParams pool;
  LrnParams lrn;
  BatchNormParams batch_norm;
  double dropout_p = 0;  // probability of zeroing an element
  int64_t adaptive_out_h = 0, adaptive_out_w = 0;
  int64_t linear_out = 0;                    // out features
  std::vector<int64_t> in_shape, out_shape;  // [C, H, W] or [features], per image
  std::vector<ParamSpec> params;             // in state_dict order, buffers included
  int64_t flops = 0;  // forward, per image: 2 x multiply-adds (conv and linear only)
};

struct ModelSpec {
  std::string arch;
  int64_t num_classes = 0, in_channels = 0, height = 0, width = 0;
  std::vector<LayerSpec> layers;  // in forward order; state_dict order follows it

  int64_t param_floats = 0;   // size of the flat parameter (and gradient) buffer, padding included
  int64_t buffer_floats = 0;  // size of the flat buffer of non-trained tensors, padding included
  int64_t num_trainable = 0;  // trainable values, padding excluded
  int64_t num_buffer_values = 0;  // values in buffers, num_batches_tracked included
  // Keras's model.summary() total: trainable values plus batch norm's moving mean and variance
  // (Keras has no num_batches_tracked). Equals num_trainable for the variants without BN.
  int64_t keras_total = 0;
  int64_t flops = 0;  // forward, per image, conv and linear layers

  std::vector<int64_t> output_shape() const { return layers.back().out_shape; }
  // nullptr where absent.
  const LayerSpec* find_layer(const std::string& name) const;
  const ParamSpec* find_param(const std::string& state_dict_key) const;
};

// The variants build_model knows, in a fixed order.
std::vector<std::string> model_archs();

// Describes one variant for `num_classes` outputs and [in_channels, height, width] inputs; a
// height or width of 0 takes the variant's default (227, 224, 224 and 28 px respectively).
// Throws std::invalid_argument, with a one-line message, for an unknown arch, non-positive
// sizes, or an input too small for the variant (a layer's output would be empty).
ModelSpec build_model(const std::string& arch, int64_t num_classes, int64_t in_channels,
                      int64_t height = 0, int64_t width = 0);

// A table in the manner of Keras's model.summary(): every layer's name, kind, output shape,
// parameter and buffer counts and forward FLOPs, then the totals.
std::string summary_table(const ModelSpec& spec);

// The layers one a line ("conv NAME IN OUT KERNEL STRIDE PAD GROUPS BIAS", "relu NAME", ...), the
// form tests/trainer/torch_model_reference.py builds the same network in PyTorch from: the
// oracle of the model tests and the peer of bench-train.
std::string torch_layer_lines(const ModelSpec& spec);

}  // namespace alexnet::trainer
