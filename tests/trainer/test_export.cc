// Export and weights in (trainer/export/, trainer/init_from.h): ONNX of every variant against our
// oneDNN forward in onnxruntime, safetensors against torchvision's AlexNet, round trips through
// --init.from's loader, and malformed or damaged inputs. The Python half is check_export.py, run
// with the venv's python (ALEXNET_TEST_VENV_PYTHON).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/checkpoint_file.h"
#include "io/error.h"
#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"
#include "trainer/export/onnx_export.h"
#include "trainer/export/safetensors_file.h"
#include "trainer/export/stored_model.h"
#include "trainer/init_from.h"
#include "trainer/model.h"
#include "trainer/weights_file.h"

namespace alexnet::trainer {
namespace {

namespace fs = std::filesystem;
using test::shell_quote;

using test::TempDir;

// A model with random weights; batch norm gets non-trivial affine parameters and running
// statistics so that the exported inference form is really exercised.
StoredModel random_model(const std::string& arch, int64_t classes, int64_t channels, int64_t size,
                         uint64_t seed) {
  StoredModel m;
  m.spec = build_model(arch, classes, channels, size, size);
  m.params.assign(static_cast<size_t>(m.spec.param_floats), 0.0f);
  m.buffers.assign(static_cast<size_t>(std::max<int64_t>(m.spec.buffer_floats, 1)), 0.0f);
  initialize_parameters(m.spec, seed, m.params.data(), m.buffers.data());
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (const LayerSpec& l : m.spec.layers) {
    if (l.kind != LayerKind::kBatchNorm) continue;
    for (const ParamSpec& p : l.params) {
      float* v = (p.is_buffer ? m.buffers.data() : m.params.data()) + p.offset;
      for (int64_t i = 0; i < p.numel(); ++i) {
        const float r = u(rng);
        if (p.name.ends_with(".weight")) v[i] = 0.5f + r;
        if (p.name.ends_with(".bias")) v[i] = r - 0.5f;
        if (p.name.ends_with(".running_mean")) v[i] = 0.2f * (r - 0.5f);
        if (p.name.ends_with(".running_var")) v[i] = 0.5f + r;
      }
      if (p.name.ends_with(".num_batches_tracked")) v[0] = 7;
    }
  }
  return m;
}

// Our logits for NCHW `input` on the oneDNN backend, in inference mode.
std::vector<float> our_logits(const StoredModel& m, const std::vector<float>& input,
                              int64_t batch) {
  std::unique_ptr<Backend> backend = make_backend("onednn");
  Model model(m.spec, *backend, batch);
  backend->copy_to_device(model.params(), m.params.data(), m.params.size() * 4);
  backend->copy_to_device(model.buffers(), m.buffers.data(),
                          static_cast<size_t>(m.spec.buffer_floats) * 4);
  const ModelSpec& s = m.spec;
  const std::vector<float> x =
      testing::to_backend(*backend, input, batch, s.in_channels, s.height, s.width);
  auto device_x = backend->allocate(x.size() * 4);
  backend->copy_to_device(device_x.get(), x.data(), x.size() * 4);
  const float* y = model.forward(static_cast<const float*>(device_x.get()), false);
  std::vector<float> logits(static_cast<size_t>(batch * s.num_classes));
  backend->copy_to_host(logits.data(), y, logits.size() * 4);
  return logits;
}

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const std::string& path) { return test::read_text(path); }

// Runs check_export.py MODE MODEL [inputs logits N C H W classes]; returns its output on failure.
void expect_python_check(const std::string& mode, const std::string& model_path, const TempDir& dir,
                         const StoredModel* m = nullptr, const std::vector<float>* input = nullptr,
                         const std::vector<float>* logits = nullptr, int64_t batch = 0) {
  const char* python = std::getenv("ALEXNET_TEST_VENV_PYTHON");
  ASSERT_NE(python, nullptr) << "ALEXNET_TEST_VENV_PYTHON is not set (run through ctest)";
  std::string command = shell_quote(python) + " " +
                        shell_quote(ALEXNET_SOURCE_DIR "/tests/trainer/check_export.py") + " " +
                        mode + " " + shell_quote(model_path);
  if (m != nullptr) {
    write_floats(dir / "inputs.f32", *input);
    write_floats(dir / "logits.f32", *logits);
    const ModelSpec& s = m->spec;
    command += " " + shell_quote(dir / "inputs.f32") + " " + shell_quote(dir / "logits.f32");
    for (int64_t v : {batch, s.in_channels, s.height, s.width, s.num_classes}) {
      command += " " + std::to_string(v);
    }
  }
  const std::string log = dir / "python.txt";
  EXPECT_EQ(test::run(command, log), 0) << command << "\n" << test::read_text(log);
}

struct VariantCase {
  const char* arch;
  int64_t channels, size;  // size 0: the variant's default
};

class OnnxExport : public ::testing::TestWithParam<VariantCase> {};

// Every variant, saved as a weights file and exported as the CLI does, gives our logits in
// onnxruntime (few classes keep the full-size ones quick).
TEST_P(OnnxExport, MatchesOurForwardInOnnxruntime) {
  const VariantCase& c = GetParam();
  TempDir dir;
  const StoredModel source = random_model(c.arch, 5, c.channels, c.size, 11);
  save_weights(dir / "weights.h5", source.spec, source.params, source.buffers, "");
  const StoredModel m = load_stored_model(dir / "weights.h5");
  ASSERT_EQ(m.spec.height, source.spec.height);
  ASSERT_EQ(m.spec.in_channels, c.channels);
  export_onnx(dir / "model.onnx", m, {});
  const int64_t batch = 2;
  const std::vector<float> input = testing::random_floats(
      static_cast<size_t>(batch * c.channels * m.spec.height * m.spec.width), 5);
  const std::vector<float> logits = our_logits(m, input, batch);
  expect_python_check("onnx", dir / "model.onnx", dir, &m, &input, &logits, batch);
}

INSTANTIATE_TEST_SUITE_P(Variants, OnnxExport,
                         ::testing::Values(VariantCase{"alexnet-paper", 3, 0},
                                           VariantCase{"alexnet-torchvision", 3, 0},
                                           VariantCase{"alexnet-keras", 3, 0},
                                           VariantCase{"alexnet-mini", 1, 28}),
                         [](const auto& variant) {
                           return std::regex_replace(variant.param.arch, std::regex("-"), "_");
                         });

// --with-preprocessing: 0-255 pixels in, the training normalization inside the graph.
TEST(OnnxExport, WithPreprocessingNormalizesPixels) {
  TempDir dir;
  StoredModel m = random_model("alexnet-mini", 10, 3, 32, 3);
  set_normalization(m, "125.3,123.0,113.9", "63.0,62.1,66.7");
  OnnxExportOptions options;
  options.with_preprocessing = true;
  export_onnx(dir / "model.onnx", m, options);
  const int64_t batch = 3, hw = 32 * 32;
  const std::vector<float> pixels =
      testing::random_floats(static_cast<size_t>(batch * 3 * hw), 9, 0.0f, 255.0f);
  std::vector<float> normalized(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) {
    const size_t channel = i / static_cast<size_t>(hw) % 3;
    normalized[i] = static_cast<float>((pixels[i] - m.mean[channel]) / m.std[channel]);
  }
  const std::vector<float> logits = our_logits(m, normalized, batch);
  expect_python_check("onnx", dir / "model.onnx", dir, &m, &pixels, &logits, batch);
}

TEST(OnnxExport, PreprocessingWithoutStatisticsIsRefused) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 1, 28, 3);
  OnnxExportOptions options;
  options.with_preprocessing = true;
  EXPECT_THROW(export_onnx(dir / "model.onnx", m, options), io::DataError);
  EXPECT_FALSE(fs::exists(dir / "model.onnx"));
}

// torchvision at an input of 13 x 13 after the last pool: no ONNX form for its adaptive pool.
TEST(OnnxExport, UnevenAdaptivePoolIsRefused) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-torchvision", 5, 3, 447, 3);
  try {
    export_onnx(dir / "model.onnx", m, {});
    FAIL() << "exported";
  } catch (const io::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("avgpool"), std::string::npos) << e.what();
  }
}

// The state_dict loads into torchvision's AlexNet and gives our logits.
TEST(SafetensorsExport, LoadsIntoTorchvisionAlexNet) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-torchvision", 5, 3, 0, 21);
  write_safetensors(dir / "model.safetensors", to_safetensors(m));
  const std::vector<float> input =
      testing::random_floats(static_cast<size_t>(2 * 3 * 224 * 224), 2);
  const std::vector<float> logits = our_logits(m, input, 2);
  expect_python_check("torchvision", dir / "model.safetensors", dir, &m, &input, &logits, 2);
}

TEST(SafetensorsExport, BatchNormCountIsAnInt64Scalar) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 1, 28, 21);
  write_safetensors(dir / "model.safetensors", to_safetensors(m));
  expect_python_check("state_dict", dir / "model.safetensors", dir);
}

// export -> init_from (what --init.from runs) into a fresh model -> export: the same bytes.
TEST(SafetensorsExport, RoundTripThroughInitFromIsBitwise) {
  for (const char* arch : {"alexnet-torchvision", "alexnet-mini"}) {
    SCOPED_TRACE(arch);
    TempDir dir;
    const int64_t size = std::string(arch) == "alexnet-mini" ? 32 : 0;
    const StoredModel m = random_model(arch, 7, 3, size, 31);
    write_safetensors(dir / "a.safetensors", to_safetensors(m));
    StoredModel fresh = random_model(arch, 7, 3, size, 99);  // other values everywhere
    init_from(dir / "a.safetensors", {}, fresh.spec, fresh.params, fresh.buffers);
    write_safetensors(dir / "b.safetensors", to_safetensors(fresh));
    const std::string a = read_bytes(dir / "a.safetensors"), b = read_bytes(dir / "b.safetensors");
    EXPECT_GT(a.size(), 1000u);
    EXPECT_TRUE(a == b);
    EXPECT_EQ(fresh.params, m.params);
  }
}

// The fine-tuning start: a 5-class source into a 10-class model, the head left fresh.
TEST(InitFrom, SkipLeavesTheHeadFreshAndLoadsTheRest) {
  TempDir dir;
  const StoredModel source = random_model("alexnet-torchvision", 5, 3, 0, 41);
  save_weights(dir / "weights.h5", source.spec, source.params, source.buffers, "");
  write_safetensors(dir / "source.safetensors", to_safetensors(source));
  for (const std::string file : {"weights.h5", "source.safetensors"}) {
    SCOPED_TRACE(file);
    const StoredModel fresh = random_model("alexnet-torchvision", 10, 3, 0, 42);
    StoredModel target = fresh;
    const std::string summary =
        init_from(dir / file, {"classifier.6"}, target.spec, target.params, target.buffers);
    EXPECT_NE(summary.find("2 left at fresh"), std::string::npos) << summary;
    for (const LayerSpec& l : target.spec.layers) {
      for (const ParamSpec& p : l.params) {
        const bool head = p.name.starts_with("classifier.6.");
        const std::vector<float>& want = head ? fresh.params : source.params;
        const ParamSpec* from = head ? &p : source.spec.find_param(p.name);
        for (int64_t i = 0; i < p.numel(); ++i) {
          ASSERT_EQ(target.params[static_cast<size_t>(p.offset + i)],
                    want[static_cast<size_t>(from->offset + i)])
              << p.name << "[" << i << "]";
        }
      }
    }
  }
}

TEST(InitFrom, ShapeMismatchNamesTheParameter) {
  TempDir dir;
  const StoredModel source = random_model("alexnet-torchvision", 5, 3, 0, 41);
  write_safetensors(dir / "source.safetensors", to_safetensors(source));
  StoredModel target = random_model("alexnet-torchvision", 10, 3, 0, 42);
  try {
    init_from(dir / "source.safetensors", {}, target.spec, target.params, target.buffers);
    FAIL() << "loaded";
  } catch (const io::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("classifier.6.weight has shape [5, 4096]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(init_from(dir / "source.safetensors", {"classifier.6", "no_such_layer"}, target.spec,
                         target.params, target.buffers),
               std::invalid_argument);
  EXPECT_THROW(init_from(dir / "source.safetensors", {"classifier.(6"}, target.spec, target.params,
                         target.buffers),
               std::invalid_argument);
  // Another variant's weights: a missing tensor, named.
  StoredModel mini = random_model("alexnet-mini", 5, 3, 32, 1);
  try {
    init_from(dir / "source.safetensors", {}, mini.spec, mini.params, mini.buffers);
    FAIL() << "loaded";
  } catch (const io::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("features.0.weight"), std::string::npos) << e.what();
  }
}

// Files written before the input attributes existed: alexnet-mini's size from its arrays.
TEST(StoredModel, OldFilesWithoutInputAttributes) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 3, 32, 5);
  {
    io::CheckpointWriter w(dir / "old.h5");
    for (const LayerSpec& l : m.spec.layers) {
      for (const ParamSpec& p : l.params) {
        w.add("/model/" + p.name, p.shape,
              (p.is_buffer ? m.buffers.data() : m.params.data()) + p.offset);
      }
    }
    w.set_attribute("/model", "arch", m.spec.arch);
    w.set_attribute("/model", "num_classes", m.spec.num_classes);
    w.commit();
  }
  const StoredModel loaded = load_stored_model(dir / "old.h5");
  EXPECT_EQ(loaded.spec.in_channels, 3);
  EXPECT_EQ(loaded.spec.height, 32);
  EXPECT_EQ(loaded.params, m.params);
  EXPECT_FALSE(loaded.data_known);
}

TEST(StoredModel, DamagedFileAndUnknownArchAreDataErrors) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 1, 28, 5);
  save_weights(dir / "weights.h5", m.spec, m.params, m.buffers, "");
  {  // flip a byte in the middle of the weights: the CRC no longer matches
    std::fstream f(dir / "weights.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const std::streamoff middle = f.tellg() / 2;
    f.seekg(middle);
    char byte = 0;
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x5a);
    f.seekp(middle);
    f.write(&byte, 1);
  }
  EXPECT_THROW(load_stored_model(dir / "weights.h5"), io::DataError);
  {
    io::CheckpointWriter w(dir / "unknown.h5");
    w.add("/model/features.0.weight", m.spec.layers[0].params[0].shape, m.params.data());
    w.set_attribute("/model", "arch", std::string("alexnet-huge"));
    w.set_attribute("/model", "num_classes", int64_t{10});
    w.commit();
  }
  try {
    load_stored_model(dir / "unknown.h5");
    FAIL() << "loaded";
  } catch (const io::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("alexnet-huge"), std::string::npos) << e.what();
  }
}

// Malformed safetensors files: each a clear DataError, never a crash or a silent load.
TEST(SafetensorsFile, MalformedFilesAreRefused) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& header, size_t data_bytes,
                   int64_t length_delta = 0) {
    std::ofstream out(dir / name, std::ios::binary);
    const uint64_t length = header.size() + static_cast<uint64_t>(length_delta);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << header << std::string(data_bytes, '\0');
    return dir / name;
  };
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_EQ(read_safetensors(write("good", good, 8)).tensors.at(0).values.size(), 2u);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"length", write("length", good, 8, 1000)},
      {"json", write("json", R"({"a":{"dtype":"F32",)", 8)},
      {"dtype", write("dtype", R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 8)},
      {"range", write("range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)},
      {"size", write("size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12)},
      {"overlap", write("overlap",
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12)},
      {"shape", write("shape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)},
      {"metadata", write("metadata", R"({"__metadata__":{"k":1}})", 0)},
      {"not object", write("not object", R"([1,2])", 0)},
      {"extra key",
       write("extra key", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8)},
  };
  for (const auto& [what, path] : bad) {
    try {
      read_safetensors(path);
      ADD_FAILURE() << what << ": read";
    } catch (const io::DataError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("safetensors"), std::string::npos) << what << ": " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << what << ": " << message;
    }
  }
  std::ofstream(dir / "short") << "abc";
  EXPECT_THROW(read_safetensors(dir / "short"), io::DataError);
}

}  // namespace
}  // namespace alexnet::trainer
