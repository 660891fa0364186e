// The AlexNet descriptions: published totals, every layer's shape, layout, init, and torchvision.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "trainer/model_spec.h"

namespace alexnet::trainer {
namespace {

using Shape = std::vector<int64_t>;

struct ExpectedLayer {
  const char* name;
  LayerKind kind;
  Shape out_shape;
};

void expect_layers(const ModelSpec& spec, const std::vector<ExpectedLayer>& expected) {
  ASSERT_EQ(spec.layers.size(), expected.size());
  Shape previous = {spec.in_channels, spec.height, spec.width};
  for (size_t i = 0; i < expected.size(); ++i) {
    const LayerSpec& l = spec.layers[i];
    SCOPED_TRACE(l.name);
    EXPECT_EQ(l.name, expected[i].name);
    EXPECT_EQ(l.kind, expected[i].kind);
    EXPECT_EQ(l.out_shape, expected[i].out_shape);
    EXPECT_EQ(l.in_shape, previous);
    previous = l.out_shape;
  }
}

int64_t count(const LayerSpec& l, bool buffers) {
  int64_t n = 0;
  for (const ParamSpec& p : l.params) n += p.is_buffer == buffers ? p.numel() : 0;
  return n;
}

std::vector<const ParamSpec*> all_params(const ModelSpec& spec) {
  std::vector<const ParamSpec*> out;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) out.push_back(&p);
  }
  return out;
}

TEST(ModelSpec, PublishedTotalsAtThousandClasses) {
  // REFERENCES.md's table: Caffe's bvlc_alexnet, torchvision, and the seed's Keras summary.
  ModelSpec paper = build_model("alexnet-paper", 1000, 3);
  EXPECT_EQ(paper.num_trainable, 60'965'224);
  EXPECT_EQ(paper.num_buffer_values, 0);
  EXPECT_EQ(paper.keras_total, 60'965'224);

  ModelSpec torchvision = build_model("alexnet-torchvision", 1000, 3);
  EXPECT_EQ(torchvision.num_trainable, 61'100'840);
  EXPECT_EQ(torchvision.num_buffer_values, 0);

  ModelSpec keras = build_model("alexnet-keras", 1000, 3);
  EXPECT_EQ(keras.keras_total, 64'752'360);
  // Keras's split: 2 x 1376 batch norm channels' moving mean and variance are non-trainable.
  EXPECT_EQ(keras.num_trainable, 64'752'360 - 2 * 1376);
  EXPECT_EQ(keras.num_buffer_values, 2 * 1376 + 5);  // + five num_batches_tracked scalars

  // The table rounds GFLOP to two decimals.
  EXPECT_NEAR(paper.flops * 1e-9, 1.45, 0.005);
  EXPECT_NEAR(torchvision.flops * 1e-9, 1.43, 0.005);
  EXPECT_NEAR(keras.flops * 1e-9, 1.16, 0.005);
}

TEST(ModelSpec, PaperShapesAndHyperParameters) {
  ModelSpec spec = build_model("alexnet-paper", 1000, 3);
  EXPECT_EQ(spec.height, 227);
  EXPECT_EQ(spec.width, 227);
  using K = LayerKind;
  expect_layers(
      spec,
      {
          {"features.0", K::kConv, {96, 55, 55}},    {"features.1", K::kRelu, {96, 55, 55}},
          {"features.2", K::kLrn, {96, 55, 55}},     {"features.3", K::kMaxPool, {96, 27, 27}},
          {"features.4", K::kConv, {256, 27, 27}},   {"features.5", K::kRelu, {256, 27, 27}},
          {"features.6", K::kLrn, {256, 27, 27}},    {"features.7", K::kMaxPool, {256, 13, 13}},
          {"features.8", K::kConv, {384, 13, 13}},   {"features.9", K::kRelu, {384, 13, 13}},
          {"features.10", K::kConv, {384, 13, 13}},  {"features.11", K::kRelu, {384, 13, 13}},
          {"features.12", K::kConv, {256, 13, 13}},  {"features.13", K::kRelu, {256, 13, 13}},
          {"features.14", K::kMaxPool, {256, 6, 6}}, {"flatten", K::kFlatten, {9216}},
          {"classifier.0", K::kDropout, {9216}},     {"classifier.1", K::kLinear, {4096}},
          {"classifier.2", K::kRelu, {4096}},        {"classifier.3", K::kDropout, {4096}},
          {"classifier.4", K::kLinear, {4096}},      {"classifier.5", K::kRelu, {4096}},
          {"classifier.6", K::kLinear, {1000}},
      });
  // The two towers: groups 2 in conv2, conv4 and conv5 only.
  const std::map<std::string, std::vector<int64_t>> conv = {
      // name: out, kernel, stride, pad, groups
      {"features.0", {96, 11, 4, 0, 1}},  {"features.4", {256, 5, 1, 2, 2}},
      {"features.8", {384, 3, 1, 1, 1}},  {"features.10", {384, 3, 1, 1, 2}},
      {"features.12", {256, 3, 1, 1, 2}},
  };
  for (const auto& [name, h] : conv) {
    const LayerSpec* l = spec.find_layer(name);
    ASSERT_NE(l, nullptr) << name;
    EXPECT_EQ((std::vector<int64_t>{l->conv.out_channels, l->conv.kernel, l->conv.stride,
                                    l->conv.pad, l->conv.groups}),
              h)
        << name;
    EXPECT_TRUE(l->conv.bias);
  }
  EXPECT_EQ(spec.find_param("features.4.weight")->shape, (Shape{256, 48, 5, 5}));
  EXPECT_EQ(spec.find_param("features.8.weight")->shape, (Shape{384, 256, 3, 3}));
  EXPECT_EQ(spec.find_param("features.10.weight")->shape, (Shape{384, 192, 3, 3}));
  EXPECT_EQ(spec.find_param("classifier.1.weight")->shape, (Shape{4096, 9216}));
  for (const char* name : {"features.2", "features.6"}) {
    const LrnParams& lrn = spec.find_layer(name)->lrn;
    EXPECT_EQ(lrn.size, 5);
    EXPECT_DOUBLE_EQ(lrn.alpha, 1e-4);
    EXPECT_DOUBLE_EQ(lrn.beta, 0.75);
    EXPECT_DOUBLE_EQ(lrn.k, 2.0);
  }
  for (const char* name : {"features.3", "features.7", "features.14"}) {
    const PoolParams& pool = spec.find_layer(name)->pool;
    EXPECT_EQ(pool.kernel, 3);
    EXPECT_EQ(pool.stride, 2);
    EXPECT_EQ(pool.pad, 0);
  }
  EXPECT_DOUBLE_EQ(spec.find_layer("classifier.0")->dropout_p, 0.5);
  EXPECT_DOUBLE_EQ(spec.find_layer("classifier.3")->dropout_p, 0.5);
}

TEST(ModelSpec, TorchvisionShapes) {
  ModelSpec spec = build_model("alexnet-torchvision", 1000, 3);
  EXPECT_EQ(spec.height, 224);
  using K = LayerKind;
  expect_layers(
      spec,
      {
          {"features.0", K::kConv, {64, 55, 55}},    {"features.1", K::kRelu, {64, 55, 55}},
          {"features.2", K::kMaxPool, {64, 27, 27}}, {"features.3", K::kConv, {192, 27, 27}},
          {"features.4", K::kRelu, {192, 27, 27}},   {"features.5", K::kMaxPool, {192, 13, 13}},
          {"features.6", K::kConv, {384, 13, 13}},   {"features.7", K::kRelu, {384, 13, 13}},
          {"features.8", K::kConv, {256, 13, 13}},   {"features.9", K::kRelu, {256, 13, 13}},
          {"features.10", K::kConv, {256, 13, 13}},  {"features.11", K::kRelu, {256, 13, 13}},
          {"features.12", K::kMaxPool, {256, 6, 6}}, {"avgpool", K::kAdaptiveAvgPool, {256, 6, 6}},
          {"flatten", K::kFlatten, {9216}},          {"classifier.0", K::kDropout, {9216}},
          {"classifier.1", K::kLinear, {4096}},      {"classifier.2", K::kRelu, {4096}},
          {"classifier.3", K::kDropout, {4096}},     {"classifier.4", K::kLinear, {4096}},
          {"classifier.5", K::kRelu, {4096}},        {"classifier.6", K::kLinear, {1000}},
      });
  EXPECT_EQ(spec.find_layer("features.0")->conv.pad, 2);
  // The adaptive pool keeps the classifier at 9216 inputs for any input size.
  ModelSpec large = build_model("alexnet-torchvision", 1000, 3, 320, 256);
  EXPECT_EQ(large.find_layer("features.12")->out_shape, (Shape{256, 9, 7}));
  EXPECT_EQ(large.find_layer("flatten")->out_shape, (Shape{9216}));
  EXPECT_EQ(large.num_trainable, spec.num_trainable);
}

TEST(ModelSpec, KerasMatchesTheSeedSummary) {
  ModelSpec spec = build_model("alexnet-keras", 1000, 3);
  using K = LayerKind;
  expect_layers(spec, {
                          {"features.0", K::kConv, {96, 54, 54}},
                          {"features.1", K::kRelu, {96, 54, 54}},
                          {"features.2", K::kMaxPool, {96, 26, 26}},
                          {"features.3", K::kBatchNorm, {96, 26, 26}},
                          {"features.4", K::kConv, {256, 22, 22}},
                          {"features.5", K::kRelu, {256, 22, 22}},
                          {"features.6", K::kMaxPool, {256, 10, 10}},
                          {"features.7", K::kBatchNorm, {256, 10, 10}},
                          {"features.8", K::kConv, {384, 8, 8}},
                          {"features.9", K::kRelu, {384, 8, 8}},
                          {"features.10", K::kBatchNorm, {384, 8, 8}},
                          {"features.11", K::kConv, {384, 6, 6}},
                          {"features.12", K::kRelu, {384, 6, 6}},
                          {"features.13", K::kBatchNorm, {384, 6, 6}},
                          {"features.14", K::kConv, {256, 4, 4}},
                          {"features.15", K::kRelu, {256, 4, 4}},
                          {"features.16", K::kMaxPool, {256, 1, 1}},
                          {"features.17", K::kBatchNorm, {256, 1, 1}},
                          {"flatten", K::kFlatten, {256}},
                          {"classifier.0", K::kLinear, {9216}},
                          {"classifier.1", K::kRelu, {9216}},
                          {"classifier.2", K::kDropout, {9216}},
                          {"classifier.3", K::kLinear, {4096}},
                          {"classifier.4", K::kRelu, {4096}},
                          {"classifier.5", K::kDropout, {4096}},
                          {"classifier.6", K::kLinear, {4096}},
                          {"classifier.7", K::kRelu, {4096}},
                          {"classifier.8", K::kDropout, {4096}},
                          {"classifier.9", K::kLinear, {1000}},
                      });
  // The rows the seed document's summary shows (Keras counts 4 values per BN channel).
  auto keras_count = [&](const char* name) {
    const LayerSpec& l = *spec.find_layer(name);
    return count(l, false) + (l.kind == LayerKind::kBatchNorm ? 2 * l.out_shape[0] : 0);
  };
  EXPECT_EQ(keras_count("features.0"), 34944);
  EXPECT_EQ(keras_count("features.2"), 0);
  EXPECT_EQ(keras_count("features.3"), 384);
  EXPECT_EQ(keras_count("features.4"), 614656);
  EXPECT_EQ(keras_count("features.7"), 1024);
  int64_t total = 0;
  for (const LayerSpec& l : spec.layers) total += keras_count(l.name.c_str());
  EXPECT_EQ(total, spec.keras_total);

  for (const LayerSpec& l : spec.layers) {
    if (l.kind == LayerKind::kConv) {
      EXPECT_EQ(l.conv.pad, 0) << l.name;  // 'valid'
    }
    if (l.kind == LayerKind::kDropout) {
      EXPECT_DOUBLE_EQ(l.dropout_p, 0.4) << l.name;
    }
    if (l.kind == LayerKind::kBatchNorm) {
      // Keras's defaults: epsilon 1e-3, momentum 0.99 (0.01 in PyTorch's convention).
      EXPECT_DOUBLE_EQ(l.batch_norm.eps, 1e-3);
      EXPECT_DOUBLE_EQ(l.batch_norm.momentum, 0.01);
      std::vector<std::string> names;
      for (const ParamSpec& p : l.params) names.push_back(p.name.substr(l.name.size() + 1));
      EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                                 "num_batches_tracked"}));
      EXPECT_EQ(l.params[4].shape, Shape{});
      EXPECT_EQ(l.params[4].numel(), 1);
    }
  }
}

TEST(ModelSpec, ClassesAndChannelsChangeOnlyTheEnds) {
  for (const std::string& arch : model_archs()) {
    SCOPED_TRACE(arch);
    ModelSpec base = build_model(arch, 1000, 3);
    ModelSpec other = build_model(arch, 7, 1, base.height, base.width);
    auto a = all_params(base), b = all_params(other);
    ASSERT_EQ(a.size(), b.size());
    const std::string first_conv = a.front()->name;
    const std::string last_fc = a.back()->name.substr(0, a.back()->name.rfind('.'));
    EXPECT_EQ(first_conv, "features.0.weight");
    for (size_t i = 0; i < a.size(); ++i) {
      SCOPED_TRACE(a[i]->name);
      ASSERT_EQ(a[i]->name, b[i]->name);
      Shape expected = a[i]->shape;
      if (a[i]->name == first_conv) expected[1] = 1;
      if (a[i]->name.rfind(last_fc + ".", 0) == 0) expected[0] = 7;
      EXPECT_EQ(b[i]->shape, expected);
    }
    EXPECT_EQ(other.output_shape(), Shape{7});
    EXPECT_EQ(base.output_shape(), Shape{1000});
    // Every layer but the first conv's input and the output keeps its shape.
    for (size_t i = 1; i + 1 < base.layers.size(); ++i) {
      EXPECT_EQ(base.layers[i].out_shape, other.layers[i].out_shape) << base.layers[i].name;
    }
  }
}

TEST(ModelSpec, OffsetsAreAlignedDisjointAndCovered) {
  const std::vector<std::tuple<std::string, int64_t, int64_t, int64_t>> configs = {
      {"alexnet-paper", 1000, 3, 0}, {"alexnet-torchvision", 10, 1, 0},
      {"alexnet-keras", 1000, 3, 0}, {"alexnet-keras", 37, 3, 200},
      {"alexnet-mini", 10, 1, 28},   {"alexnet-mini", 101, 3, 32},
  };
  for (const auto& [arch, classes, channels, size] : configs) {
    SCOPED_TRACE(arch + " " + std::to_string(classes));
    ModelSpec spec = build_model(arch, classes, channels, size, size);
    for (bool buffers : {false, true}) {
      int64_t end = 0, values = 0, tensors = 0;
      // Parameters are laid out in state_dict order, so offsets only grow.
      for (const ParamSpec* p : all_params(spec)) {
        if (p->is_buffer != buffers) continue;
        SCOPED_TRACE(p->name);
        EXPECT_EQ(p->offset % kParamAlignment, 0);
        EXPECT_GE(p->offset, end);
        EXPECT_LT(p->offset - end, kParamAlignment);  // padding only, no gaps
        end = p->offset + p->numel();
        values += p->numel();
        ++tensors;
      }
      EXPECT_EQ(end, buffers ? spec.buffer_floats : spec.param_floats);
      EXPECT_EQ(values, buffers ? spec.num_buffer_values : spec.num_trainable);
      EXPECT_LE(end - values, tensors * (kParamAlignment - 1));
    }
  }
  // Batch norm's 96 + 96 + 1 buffer values make the next tensor skip padding: it is exercised.
  ModelSpec keras = build_model("alexnet-keras", 10, 3);
  EXPECT_EQ(keras.find_param("features.7.running_mean")->offset, 208);
  EXPECT_GT(keras.buffer_floats, keras.num_buffer_values);
}

TEST(ModelSpec, InitsAsSpecified) {
  ModelSpec paper = build_model("alexnet-paper", 1000, 3);
  const std::set<std::string> bias_one = {"features.4", "features.10", "features.12",
                                          "classifier.1", "classifier.4"};
  int weighted = 0;
  for (const LayerSpec& l : paper.layers) {
    if (l.params.empty()) continue;
    ++weighted;
    const ParamSpec& w = l.params[0];
    const ParamSpec& b = l.params[1];
    EXPECT_EQ(w.init.kind, InitKind::kNormal) << w.name;
    EXPECT_DOUBLE_EQ(w.init.scale, 0.01) << w.name;
    EXPECT_TRUE(w.weight_decay) << w.name;
    EXPECT_FALSE(b.weight_decay) << b.name;
    if (bias_one.count(l.name)) {
      EXPECT_EQ(b.init.kind, InitKind::kConstant) << b.name;
      EXPECT_DOUBLE_EQ(b.init.scale, 1.0) << b.name;
    } else {
      EXPECT_EQ(b.init.kind, InitKind::kZeros) << b.name;
    }
  }
  EXPECT_EQ(weighted, 8);

  // PyTorch's default: weights and biases both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  ModelSpec tv = build_model("alexnet-torchvision", 1000, 3);
  const std::map<std::string, int64_t> fan_in = {
      {"features.0", 3 * 121}, {"features.3", 64 * 25},  {"features.6", 192 * 9},
      {"features.8", 384 * 9}, {"features.10", 256 * 9}, {"classifier.1", 9216},
      {"classifier.4", 4096},  {"classifier.6", 4096},
  };
  for (const auto& [name, fan] : fan_in) {
    for (const ParamSpec& p : tv.find_layer(name)->params) {
      EXPECT_EQ(p.init.kind, InitKind::kKaimingUniform) << p.name;
      EXPECT_DOUBLE_EQ(p.init.scale, 1.0 / std::sqrt(static_cast<double>(fan))) << p.name;
      EXPECT_EQ(p.init.fan_in, fan) << p.name;
    }
  }

  ModelSpec keras = build_model("alexnet-keras", 1000, 3);
  for (const LayerSpec& l : keras.layers) {
    if (l.kind == LayerKind::kConv || l.kind == LayerKind::kLinear) {
      const Init& w = l.params[0].init;
      EXPECT_EQ(l.params[1].init.kind, InitKind::kZeros) << l.name;
      if (l.name == "classifier.9") {  // the output Dense names no initializer
        EXPECT_EQ(w.kind, InitKind::kGlorotUniform);
        EXPECT_DOUBLE_EQ(w.scale, std::sqrt(6.0 / (4096 + 1000)));
      } else {
        EXPECT_EQ(w.kind, InitKind::kHeNormal) << l.name;
        EXPECT_DOUBLE_EQ(w.scale, std::sqrt(2.0 / static_cast<double>(w.fan_in))) << l.name;
      }
    }
    if (l.kind == LayerKind::kBatchNorm) {
      const InitKind expected[] = {InitKind::kOnes, InitKind::kZeros, InitKind::kZeros,
                                   InitKind::kOnes, InitKind::kZeros};
      const bool buffer[] = {false, false, true, true, true};
      for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(l.params[i].init.kind, expected[i]) << l.params[i].name;
        EXPECT_EQ(l.params[i].is_buffer, buffer[i]) << l.params[i].name;
        EXPECT_FALSE(l.params[i].weight_decay) << l.params[i].name;
      }
    }
  }
  EXPECT_EQ(keras.find_param("features.4.weight")->init.fan_in, 96 * 25);
}

void expect_invalid(const std::string& arch, int64_t classes, int64_t channels, int64_t h,
                    int64_t w, const std::string& mentions) {
  try {
    build_model(arch, classes, channels, h, w);
    ADD_FAILURE() << arch << " " << h << "x" << w << " did not throw";
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(mentions), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(ModelSpec, RejectsUnknownArchAndTooSmallInputs) {
  expect_invalid("alexnet", 1000, 3, 0, 0, "'alexnet'");
  expect_invalid("resnet-50", 1000, 3, 0, 0, "alexnet-paper");  // lists the known ones
  expect_invalid("alexnet-paper", 0, 3, 0, 0, "alexnet-paper");
  expect_invalid("alexnet-paper", 10, 0, 0, 0, "alexnet-paper");
  expect_invalid("alexnet-paper", 10, 3, -5, 0, "alexnet-paper");
  // The smallest inputs, worked by hand backwards from the last pool's 3 x 3 window.
  const std::map<std::string, int64_t> smallest = {{"alexnet-paper", 67},
                                                   {"alexnet-torchvision", 63},
                                                   {"alexnet-keras", 195},
                                                   {"alexnet-mini", 15}};
  for (const auto& [arch, size] : smallest) {
    SCOPED_TRACE(arch);
    EXPECT_NO_THROW(build_model(arch, 10, 3, size, size));
    expect_invalid(arch, 10, 3, size - 1, size, arch);
    expect_invalid(arch, 10, 3, size, size - 1, "too small");
    expect_invalid(arch, 10, 3, 1, 1, arch);  // a negative span before the first division
  }
}

TEST(ModelSpec, MiniFitsFashionMnistAndCifar) {
  // 28x28x1 (Fashion-MNIST): 28 -> 13 -> 6 -> 2 px; 32x32x3 (CIFAR): 32 -> 15 -> 7 -> 3 px.
  ModelSpec fm = build_model("alexnet-mini", 10, 1);
  EXPECT_EQ(fm.height, 28);
  EXPECT_EQ(fm.find_layer("flatten")->out_shape, Shape{512});
  EXPECT_EQ(fm.output_shape(), Shape{10});
  ModelSpec cifar = build_model("alexnet-mini", 10, 3, 32, 32);
  EXPECT_EQ(cifar.find_layer("flatten")->out_shape, Shape{1152});
  EXPECT_EQ(cifar.output_shape(), Shape{10});
  std::map<LayerKind, int> kinds;
  for (const LayerSpec& l : cifar.layers) ++kinds[l.kind];
  EXPECT_EQ(kinds[LayerKind::kConv], 5);
  EXPECT_EQ(kinds[LayerKind::kMaxPool], 3);
  EXPECT_EQ(kinds[LayerKind::kBatchNorm], 5);
  EXPECT_EQ(kinds[LayerKind::kLinear], 3);
  EXPECT_EQ(kinds[LayerKind::kDropout], 2);
  EXPECT_EQ(kinds[LayerKind::kLrn], 0);
  for (const LayerSpec& l : cifar.layers) {
    if (l.kind == LayerKind::kConv || l.kind == LayerKind::kLinear) {
      EXPECT_EQ(l.params[0].init.kind, InitKind::kHeNormal) << l.name;
      EXPECT_EQ(l.params[1].init.kind, InitKind::kZeros) << l.name;
    }
  }
  // The budget: well under 0.3 GFLOP per image, so that 3 CPU epochs take minutes.
  EXPECT_LT(fm.flops, 150'000'000);
  EXPECT_LT(cifar.flops, 200'000'000);
}

TEST(ModelSpec, SummaryTableShowsLayersAndTotals) {
  ModelSpec keras = build_model("alexnet-keras", 1000, 3);
  std::string table = summary_table(keras);
  for (const char* text :
       {"features.0 (Conv2d)", "[96, 54, 54]", "34,944", "features.17 (BatchNorm2d)",
        "flatten (Flatten)", "[256]", "64,749,608", "64,752,360", "2,757", "GFLOP"}) {
    EXPECT_NE(table.find(text), std::string::npos) << text << " missing from\n" << table;
  }
  std::istringstream lines(summary_table(build_model("alexnet-paper", 1000, 3)));
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), 100u) << line;
    rows += line.find("features.") == 0 || line.find("classifier.") == 0;
  }
  EXPECT_EQ(rows, 22);
}

// Runs the PyTorch script with `args`; the output's lines, or a failure naming the problem.
std::vector<std::string> run_torchvision(const std::string& args) {
  const std::string script = ALEXNET_SOURCE_DIR "/tests/trainer/torchvision_state_dict.py";
  static int calls = 0;  // with the pid: unique among concurrent test processes
  const std::string out = ::testing::TempDir() + "model_spec_torchvision_" +
                          std::to_string(::getpid()) + "_" + std::to_string(calls++) + ".txt";
  const std::string command = "/usr/bin/python3 " + script + " " + args + " > " + out + " 2>&1";
  int rc = std::system(command.c_str());
  std::ifstream in(out);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::remove(out.c_str());
  if (rc != 0) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    ADD_FAILURE() << "`" << command << "` failed (status " << rc
                  << "): this check needs the script and /usr/bin/python3 with torch and "
                     "torchvision (apt-get install python3-torchvision). Output:\n"
                  << text;
    return {};
  }
  return lines;
}

TEST(ModelSpecAgainstPyTorch, TorchvisionStateDictNamesAndShapesMatchInOrder) {
  for (int64_t classes : {1000, 10}) {
    SCOPED_TRACE(classes);
    std::vector<std::string> expected = run_torchvision(std::to_string(classes));
    ASSERT_FALSE(expected.empty());
    std::vector<std::string> ours;
    ModelSpec spec = build_model("alexnet-torchvision", classes, 3);
    for (const ParamSpec* p : all_params(spec)) {
      std::string line = p->name;
      for (int64_t d : p->shape)
        line.append(" ").append(std::to_string(d));  // not " " + ...: GCC 12 false -Wrestrict
      ours.push_back(line);
    }
    EXPECT_EQ(ours, expected);
  }
}

TEST(ModelSpecAgainstPyTorch, TorchvisionModulesAndOutputShapesMatch) {
  for (int64_t size : {224, 256}) {
    SCOPED_TRACE(size);
    std::vector<std::string> expected = run_torchvision("1000 --modules " + std::to_string(size));
    ASSERT_FALSE(expected.empty());
    std::vector<std::string> ours;
    ModelSpec spec = build_model("alexnet-torchvision", 1000, 3, size, size);
    for (const LayerSpec& l : spec.layers) {
      if (l.kind == LayerKind::kFlatten) continue;  // torch.flatten in forward(), no module
      std::string line = l.name + " " + layer_kind_name(l.kind);
      for (int64_t d : l.out_shape)
        line.append(" ").append(std::to_string(d));  // not " " + ...: GCC 12 false -Wrestrict
      ours.push_back(line);
    }
    EXPECT_EQ(ours, expected);
  }
}

}  // namespace
}  // namespace alexnet::trainer
