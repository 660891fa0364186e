// The ModelProto of a model, layer by layer, through ONNX's generated protobuf classes.
#include "trainer/export/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "io/error.h"

namespace alexnet::trainer {
namespace {

constexpr int64_t kOpset = 13;
constexpr int64_t kIrVersion = 7;  // the IR version that came with opset 13 (ONNX 1.8)

class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* graph, const StoredModel& m) : graph_(graph), m_(m) {}

  void initializer(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                   int64_t count) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    for (int64_t d : shape) t->add_dims(d);
    t->set_data_type(onnx::TensorProto::FLOAT);
    // raw_data is little-endian by the ONNX spec, as our host is (safetensors_file.cc checks).
    t->set_raw_data(data, static_cast<size_t>(count) * sizeof(float));
  }

  // A parameter of the model as an initializer under its state_dict name.
  const std::string& param(const LayerSpec& l, size_t index) {
    const ParamSpec& p = l.params.at(index);
    const float* src = (p.is_buffer ? m_.buffers.data() : m_.params.data()) + p.offset;
    initializer(p.name, p.shape, src, p.numel());
    return p.name;
  }

  onnx::NodeProto* node(const std::string& op, const std::string& name,
                        const std::vector<std::string>& inputs) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(name);
    current_ = name;
    return n;
  }

  static void attr(onnx::NodeProto* n, const std::string& name, int64_t value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, double value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(static_cast<float>(value));
  }

  const std::string& current() const { return current_; }
  void set_current(const std::string& name) { current_ = name; }

 private:
  onnx::GraphProto* graph_;
  const StoredModel& m_;
  std::string current_;
};

void set_tensor_type(onnx::ValueInfoProto* v, const std::string& name, int64_t batch,
                     const std::vector<int64_t>& per_item) {
  v->set_name(name);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = t->mutable_shape();
  if (batch > 0) {
    shape->add_dim()->set_dim_value(batch);
  } else {
    shape->add_dim()->set_dim_param("batch");
  }
  for (int64_t d : per_item) shape->add_dim()->set_dim_value(d);
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* e = model.add_metadata_props();
  e->set_key(key);
  e->set_value(value);
}

// The layers of the spec as nodes; returns nothing, the builder's current() is the last output.
void add_layers(GraphBuilder& b, const ModelSpec& spec) {
  for (const LayerSpec& l : spec.layers) {
    switch (l.kind) {
      case LayerKind::kConv: {
        const std::string& x = b.current();
        const std::vector<std::string> inputs = {x, b.param(l, 0), b.param(l, 1)};
        onnx::NodeProto* n = b.node("Conv", l.name, inputs);
        const ConvParams& c = l.conv;
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{c.kernel, c.kernel});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{c.stride, c.stride});
        GraphBuilder::attr(n, "pads", std::vector<int64_t>{c.pad, c.pad, c.pad, c.pad});
        GraphBuilder::attr(n, "group", c.groups);
        break;
      }
      case LayerKind::kRelu:
        b.node("Relu", l.name, {b.current()});
        break;
      case LayerKind::kMaxPool: {
        onnx::NodeProto* n = b.node("MaxPool", l.name, {b.current()});
        const PoolParams& p = l.pool;
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{p.kernel, p.kernel});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{p.stride, p.stride});
        GraphBuilder::attr(n, "pads", std::vector<int64_t>{p.pad, p.pad, p.pad, p.pad});
        break;
      }
      case LayerKind::kLrn: {
        onnx::NodeProto* n = b.node("LRN", l.name, {b.current()});
        GraphBuilder::attr(n, "size", l.lrn.size);
        // ONNX: x / (bias + alpha / size * sum of squares)^beta; the spec holds the paper's
        // alpha, which multiplies the sum itself.
        GraphBuilder::attr(n, "alpha", l.lrn.alpha * static_cast<double>(l.lrn.size));
        GraphBuilder::attr(n, "beta", l.lrn.beta);
        GraphBuilder::attr(n, "bias", l.lrn.k);
        break;
      }
      case LayerKind::kBatchNorm: {
        const std::string& x = b.current();
        const std::vector<std::string> inputs = {x, b.param(l, 0), b.param(l, 1), b.param(l, 2),
                                                 b.param(l, 3)};
        onnx::NodeProto* n = b.node("BatchNormalization", l.name, inputs);
        GraphBuilder::attr(n, "epsilon", l.batch_norm.eps);
        break;
      }
      case LayerKind::kAdaptiveAvgPool: {
        const int64_t h = l.in_shape[1], w = l.in_shape[2];
        const int64_t oh = l.adaptive_out_h, ow = l.adaptive_out_w;
        if (h == oh && w == ow) break;  // an identity at this input size
        if (h % oh != 0 || w % ow != 0) {
          throw io::DataError(l.name + ": an adaptive average pool from " + std::to_string(h) +
                              " x " + std::to_string(w) + " to " + std::to_string(oh) + " x " +
                              std::to_string(ow) +
                              " has uneven windows, which ONNX's AveragePool cannot express");
        }
        // Adaptive windows of equal size: PyTorch's floor/ceil bounds reduce to kernel = stride.
        onnx::NodeProto* n = b.node("AveragePool", l.name, {b.current()});
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{h / oh, w / ow});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{h / oh, w / ow});
        break;
      }
      case LayerKind::kFlatten: {
        onnx::NodeProto* n = b.node("Flatten", l.name, {b.current()});
        GraphBuilder::attr(n, "axis", int64_t{1});  // [N, C, H, W] -> [N, C*H*W], C-H-W order
        break;
      }
      case LayerKind::kDropout:
        break;  // an identity in inference
      case LayerKind::kLinear: {
        const std::string& x = b.current();
        const std::vector<std::string> inputs = {x, b.param(l, 0), b.param(l, 1)};
        onnx::NodeProto* n = b.node("Gemm", l.name, inputs);
        GraphBuilder::attr(n, "transB", int64_t{1});  // weight [O, I]: y = x W^T + b
        break;
      }
    }
  }
}

}  // namespace

void export_onnx(const std::string& path, const StoredModel& m, const OnnxExportOptions& options) {
  const ModelSpec& spec = m.spec;
  onnx::ModelProto model;
  model.set_ir_version(kIrVersion);
  model.set_producer_name("alexnet-export");
  model.set_model_version(1);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name(spec.arch);
  set_tensor_type(graph->add_input(), "input", options.batch,
                  {spec.in_channels, spec.height, spec.width});

  GraphBuilder b(graph, m);
  b.set_current("input");
  if (options.with_preprocessing) {
    if (!m.data_known) {
      throw io::DataError(
          "--with-preprocessing: the training data's mean and std are unknown (its files named "
          "in the checkpoint's config cannot be opened): give --data or --mean and --std");
    }
    // No statistics in the dataset: training used the raw pixel values (mean 0, std 1).
    const auto c = static_cast<size_t>(spec.in_channels);
    std::vector<float> mean(c, 0.0f), std(c, 1.0f);
    for (size_t i = 0; i < c && i < m.mean.size(); ++i) mean[i] = static_cast<float>(m.mean[i]);
    for (size_t i = 0; i < c && i < m.std.size(); ++i) std[i] = static_cast<float>(m.std[i]);
    b.initializer("preprocess.mean", {1, spec.in_channels, 1, 1}, mean.data(), spec.in_channels);
    b.initializer("preprocess.std", {1, spec.in_channels, 1, 1}, std.data(), spec.in_channels);
    b.node("Sub", "preprocess.sub", {"input", "preprocess.mean"});
    b.node("Div", "preprocess.div", {"preprocess.sub", "preprocess.std"});
    add_metadata(model, "input_range", "0-255 pixel values (normalized inside the graph)");
  } else {
    add_metadata(model, "input_range", "(pixel - mean) / std, as in training");
  }
  add_layers(b, spec);
  // The last node's output is the graph's output.
  graph->mutable_node(graph->node_size() - 1)->set_output(0, "logits");
  set_tensor_type(graph->add_output(), "logits", options.batch, {spec.num_classes});

  add_metadata(model, "arch", spec.arch);
  if (!m.class_names.empty()) add_metadata(model, "class_names", comma_list(m.class_names));
  if (!m.mean.empty()) add_metadata(model, "mean", comma_list(m.mean));
  if (!m.std.empty()) add_metadata(model, "std", comma_list(m.std));

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("onnx::checker::check_model refused the exported ") +
                             spec.arch + " graph: " + e.what());
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    throw std::runtime_error("onnx::ModelProto::SerializeToString failed for " + path);
  }
  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw io::DataError("'" + tmp + "': cannot create: " + std::strerror(errno));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      throw io::DataError("'" + tmp + "': write failed: " + why);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw io::DataError("'" + path + "': renaming " + tmp + " to it failed: " + why);
  }
}

}  // namespace alexnet::trainer
