// The model executor: ops per layer, activation memory, forward, loss, backward.
#include "trainer/model.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>

namespace alexnet::trainer {
namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Portable draws (std:: distributions differ between standard libraries).
double uniform01(std::mt19937_64& rng) { return (rng() >> 11) * (1.0 / 9007199254740992.0); }
double standard_normal(std::mt19937_64& rng) {
  double u1 = 1.0 - uniform01(rng), u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace

void initialize_parameters(const ModelSpec& spec, uint64_t seed, float* params, float* buffers) {
  std::fill(params, params + spec.param_floats, 0.0f);
  std::fill(buffers, buffers + spec.buffer_floats, 0.0f);
  std::mt19937_64 rng(seed);
  for (const LayerSpec& layer : spec.layers) {
    for (const ParamSpec& p : layer.params) {
      float* dst = (p.is_buffer ? buffers : params) + p.offset;
      const int64_t n = p.numel();
      const double s = p.init.scale;
      for (int64_t i = 0; i < n; ++i) {
        double v = 0;
        switch (p.init.kind) {
          case InitKind::kNormal:
            v = s * standard_normal(rng);
            break;
          case InitKind::kHeNormal: {
            // Keras: truncated at 2 sd, then divided by the truncated normal's sd (0.8796)
            // so that the final sd is `scale`.
            double z;
            do z = standard_normal(rng);
            while (std::abs(z) > 2.0);
            v = s * z / 0.87962566103423978;
            break;
          }
          case InitKind::kConstant:
            v = s;
            break;
          case InitKind::kZeros:
            v = 0;
            break;
          case InitKind::kOnes:
            v = 1;
            break;
          case InitKind::kKaimingUniform:
          case InitKind::kGlorotUniform:
            v = s * (2.0 * uniform01(rng) - 1.0);
            break;
        }
        dst[i] = static_cast<float>(v);
      }
    }
  }
}

// One layer: its spec, its ops (only the one of its kind is set), and where its tensors live.
struct Model::Layer {
  const LayerSpec* spec = nullptr;
  int64_t index = 0;
  std::unique_ptr<Conv2dOp> conv;
  std::unique_ptr<LinearOp> linear;
  std::unique_ptr<ReluOp> relu;
  std::unique_ptr<MaxPoolOp> max_pool;
  std::unique_ptr<AdaptiveAvgPoolOp> avg_pool;
  std::unique_ptr<LrnOp> lrn;
  std::unique_ptr<BatchNormOp> batch_norm;
  std::unique_ptr<DropoutOp> dropout;
  std::unique_ptr<FlattenOp> flatten;
  // Offsets of the weight and bias (or gamma and beta) in the parameter buffer, -1 if absent;
  // of running mean and var in the buffer memory.
  int64_t weight = -1, bias = -1, running_mean = -1, running_var = -1;
  int64_t param_begin = 0, param_end = 0;  // the span of its trainable parameters
};

Model::Model(const ModelSpec& spec, Backend& backend, int64_t batch, double label_smoothing)
    : spec_(spec), backend_(backend), batch_(batch) {
  if (batch < 1) throw std::invalid_argument("model batch size must be at least 1");
  auto alloc = [&](int64_t floats) {
    memory_.push_back(backend_.allocate(static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4));
    float* p = static_cast<float*>(memory_.back().get());
    backend_.fill_zero(p, static_cast<size_t>(std::max<int64_t>(floats, 1)) * 4);
    return p;
  };
  params_ = alloc(spec_.param_floats);
  grads_ = alloc(spec_.param_floats);
  buffers_ = alloc(spec_.buffer_floats);

  int64_t largest = batch_ * spec_.in_channels * spec_.height * spec_.width;
  activations_.push_back(nullptr);  // layer 0's input is the caller's
  for (size_t i = 0; i < spec_.layers.size(); ++i) {
    const LayerSpec& ls = spec_.layers[i];
    auto layer = std::make_unique<Layer>();
    layer->spec = &ls;
    layer->index = static_cast<int64_t>(i);
    const auto& in = ls.in_shape;
    const int64_t c = in[0], h = in.size() > 1 ? in[1] : 1, w = in.size() > 2 ? in[2] : 1;
    const int64_t in_elements = batch_ * numel(in);
    switch (ls.kind) {
      case LayerKind::kConv: {
        Conv2dShape s;
        s.batch = batch_;
        s.in_channels = c;
        s.out_channels = ls.conv.out_channels;
        s.height = h;
        s.width = w;
        s.kernel_h = s.kernel_w = ls.conv.kernel;
        s.stride_h = s.stride_w = ls.conv.stride;
        s.pad_h = s.pad_w = ls.conv.pad;
        s.groups = ls.conv.groups;
        layer->conv = backend_.make_conv2d(s, ls.conv.bias);
        break;
      }
      case LayerKind::kLinear:
        layer->linear =
            backend_.make_linear(batch_, numel(in), ls.linear_out, ls.params.size() > 1);
        break;
      case LayerKind::kRelu:
        layer->relu = backend_.make_relu(in_elements);
        break;
      case LayerKind::kMaxPool: {
        Pool2dShape s;
        s.batch = batch_;
        s.channels = c;
        s.height = h;
        s.width = w;
        s.kernel = ls.pool.kernel;
        s.stride = ls.pool.stride;
        s.pad = ls.pool.pad;
        layer->max_pool = backend_.make_max_pool(s);
        break;
      }
      case LayerKind::kAdaptiveAvgPool:
        layer->avg_pool =
            backend_.make_adaptive_avg_pool(batch_, c, h, w, ls.adaptive_out_h, ls.adaptive_out_w);
        break;
      case LayerKind::kLrn: {
        LrnShape s;
        s.batch = batch_;
        s.channels = c;
        s.height = h;
        s.width = w;
        s.size = ls.lrn.size;
        s.alpha = ls.lrn.alpha;
        s.beta = ls.lrn.beta;
        s.k = ls.lrn.k;
        layer->lrn = backend_.make_lrn(s);
        break;
      }
      case LayerKind::kBatchNorm: {
        BatchNormShape s;
        s.batch = batch_;
        s.channels = c;
        s.spatial = numel(in) / c;
        s.eps = ls.batch_norm.eps;
        s.momentum = ls.batch_norm.momentum;
        layer->batch_norm = backend_.make_batch_norm(s);
        break;
      }
      case LayerKind::kDropout:
        layer->dropout = backend_.make_dropout(in_elements, ls.dropout_p);
        break;
      case LayerKind::kFlatten:
        layer->flatten = backend_.make_flatten(batch_, c, h, w);
        break;
    }
    // Parameters in state_dict order: weight then bias (gamma, beta), then the buffers.
    bool first_param = true;
    for (const ParamSpec& p : ls.params) {
      if (p.is_buffer) {
        if (p.name.ends_with("running_mean")) layer->running_mean = p.offset;
        if (p.name.ends_with("running_var")) layer->running_var = p.offset;
        continue;
      }
      if (first_param) {
        layer->weight = p.offset;
        layer->param_begin = p.offset;
        first_param = false;
      } else {
        layer->bias = p.offset;
      }
      layer->param_end = p.offset + p.numel();
    }
    const int64_t out_elements = batch_ * numel(ls.out_shape);
    largest = std::max(largest, out_elements);
    // ReLU runs in place: no layer's backward needs the input that ReLU overwrites (conv and
    // linear need their own inputs, LRN and batch norm theirs, pooling keeps its argmax).
    activations_.push_back(ls.kind == LayerKind::kRelu ? nullptr : alloc(out_elements));
    if (ls.kind == LayerKind::kRelu) activations_.back() = activations_[i];
    layers_.push_back(std::move(layer));
  }
  grad_a_ = alloc(largest);
  grad_b_ = alloc(largest);
  loss_op_ = backend_.make_softmax_cross_entropy(batch_, spec_.num_classes, label_smoothing);
}

Model::~Model() = default;

int64_t Model::input_elements() const {
  return batch_ * spec_.in_channels * spec_.height * spec_.width;
}

const float* Model::forward(const float* input, bool training, const DropoutKey& key) {
  input_ = input;
  training_ = training;
  activations_[0] = const_cast<float*>(input);  // read only: layer 0 is never in place
  if (!layers_.empty() && layers_[0]->spec->kind == LayerKind::kRelu) {
    throw std::logic_error("a model may not start with an in-place ReLU");
  }
  const bool profiling = profiler_ != nullptr && profiler_->enabled();
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = *layers_[i];
    const float* x = activations_[i];
    float* y = activations_[i + 1];
    const auto start = profiling ? Profiler::Clock::now() : Profiler::Clock::time_point{};
    const float* w = l.weight >= 0 ? params_ + l.weight : nullptr;
    const float* b = l.bias >= 0 ? params_ + l.bias : nullptr;
    switch (l.spec->kind) {
      case LayerKind::kConv:
        l.conv->forward(x, w, b, y);
        break;
      case LayerKind::kLinear:
        l.linear->forward(x, w, b, y);
        break;
      case LayerKind::kRelu:
        l.relu->forward(x, y);
        break;
      case LayerKind::kMaxPool:
        l.max_pool->forward(x, y, training);
        break;
      case LayerKind::kAdaptiveAvgPool:
        l.avg_pool->forward(x, y);
        break;
      case LayerKind::kLrn:
        l.lrn->forward(x, y, training);
        break;
      case LayerKind::kBatchNorm:
        if (training) {
          l.batch_norm->forward_training(x, w, b, y, buffers_ + l.running_mean,
                                         buffers_ + l.running_var);
        } else {
          l.batch_norm->forward_inference(x, w, b, buffers_ + l.running_mean,
                                          buffers_ + l.running_var, y);
        }
        break;
      case LayerKind::kDropout: {
        if (training && dropout_enabled_) {
          DropoutKey k = key;
          k.layer = static_cast<uint32_t>(i);
          l.dropout->forward(k, x, y);
        } else {
          backend_.copy(y, x, static_cast<size_t>(batch_ * numel(l.spec->in_shape)) * 4);
        }
        break;
      }
      case LayerKind::kFlatten:
        l.flatten->forward(x, y);
        break;
    }
    if (profiling) {
      backend_.synchronize();
      profiler_->record(l.spec->name.c_str(), "forward", 0, start, Profiler::Clock::now());
    }
  }
  return activations_.back();
}

LossResult Model::loss(const int32_t* labels, bool for_backward, float gradient_scale) {
  return loss_op_->forward_backward(activations_.back(), labels, for_backward ? grad_a_ : nullptr,
                                    gradient_scale);
}

void Model::backward(const std::function<void(int64_t, int64_t)>& ready) {
  if (!training_) throw std::logic_error("Model::backward after a forward that was not training");
  float* dy = grad_a_;  // d(loss)/d(logits), written by loss()
  float* dx = grad_b_;
  const bool profiling = profiler_ != nullptr && profiler_->enabled();
  for (size_t i = layers_.size(); i-- > 0;) {
    Layer& l = *layers_[i];
    const float* x = activations_[i];
    const float* y = activations_[i + 1];
    const auto start = profiling ? Profiler::Clock::now() : Profiler::Clock::time_point{};
    const bool need_dx = i > 0;  // nobody wants the gradient of the input images
    const float* w = l.weight >= 0 ? params_ + l.weight : nullptr;
    float* dw = l.weight >= 0 ? grads_ + l.weight : nullptr;
    float* db = l.bias >= 0 ? grads_ + l.bias : nullptr;
    switch (l.spec->kind) {
      case LayerKind::kConv:
        l.conv->backward_weights(x, dy, dw, db);
        if (need_dx) l.conv->backward_data(dy, w, dx);
        break;
      case LayerKind::kLinear:
        l.linear->backward_weights(x, dy, dw, db);
        if (need_dx) l.linear->backward_data(dy, w, dx);
        break;
      case LayerKind::kRelu:
        l.relu->backward(y, dy, dx);
        break;
      case LayerKind::kMaxPool:
        l.max_pool->backward(dy, dx);
        break;
      case LayerKind::kAdaptiveAvgPool:
        l.avg_pool->backward(dy, dx);
        break;
      case LayerKind::kLrn:
        l.lrn->backward(x, dy, dx);
        break;
      case LayerKind::kBatchNorm:
        l.batch_norm->backward(x, dy, w, dx, dw, db);
        break;
      case LayerKind::kDropout:
        if (dropout_enabled_) {
          l.dropout->backward(dy, dx);
        } else {
          backend_.copy(dx, dy, static_cast<size_t>(batch_ * numel(l.spec->in_shape)) * 4);
        }
        break;
      case LayerKind::kFlatten:
        l.flatten->backward(dy, dx);
        break;
    }
    if (profiling) {
      backend_.synchronize();
      profiler_->record(l.spec->name.c_str(), "backward", 0, start, Profiler::Clock::now());
    }
    if (ready && l.param_end > l.param_begin) ready(l.param_begin, l.param_end - l.param_begin);
    std::swap(dy, dx);
  }
}

}  // namespace alexnet::trainer
