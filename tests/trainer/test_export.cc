// Export and weights in (trainer/export/, trainer/init_from.h): ONNX of every variant against our
// oneDNN forward in onnxruntime, safetensors against torchvision's AlexNet, round trips through
// --init.from's loader, and malformed or damaged inputs. The Python half is check_export.py, run
// with the venv's python (ALEXNET_TEST_VENV_PYTHON).
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/array_file.h"
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
    io::ArrayFileWriter w(dir / "old.h5");
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
    io::ArrayFileWriter w(dir / "unknown.h5");
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
      {"dtype", write("dtype", R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}})", 16)},
      {"past the end",
       write("past the end", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)},
      {"huge offsets", write("huge offsets",
                             R"({"a":{"dtype":"F32","shape":[2],)"
                             R"("data_offsets":[18446744073709551608,18446744073709551615]}})",
                             8)},
      // 2^62 elements of 4 bytes wrap to 0 bytes in 64 bits: refused, not allocated.
      {"product overflow", write("product overflow",
                                 R"({"a":{"dtype":"F32","shape":[4611686018427387904],)"
                                 R"("data_offsets":[0,0]}})",
                                 0)},
      {"shape product", write("shape product",
                              R"({"a":{"dtype":"I64","shape":[2147483648,2147483648,4],)"
                              R"("data_offsets":[0,0]}})",
                              0)},
      {"nested",
       write("nested", "{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}", 0)},
      {"control characters",
       write("control characters",
             "{\"a\\nb\":{\"dtype\":\"F8\",\"shape\":[],\"data_offsets\":[0,1]}}", 1)},
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
  // A header length beyond the format's limit, in a (sparse) file long enough to hold it.
  {
    const std::string path = write("limit", good, 8, 200'000'000);
    fs::resize_file(path, 300'000'000);
    try {
      read_safetensors(path);
      ADD_FAILURE() << "read";
    } catch (const io::DataError& e) {
      EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
    }
  }
}

// F16 and BF16 widen exactly: 1, -2, the smallest subnormal, 65504 and infinity.
TEST(SafetensorsFile, HalfPrecisionIsWidenedExactly) {
  TempDir dir;
  const uint16_t f16[] = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00};
  const uint16_t bf16[] = {0x3f80, 0xc000, 0x0001, 0x477f, 0x7f80};
  const std::string header = R"({"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},)"
                             R"("b":{"dtype":"BF16","shape":[5],"data_offsets":[10,20]}})";
  {
    std::ofstream out(dir / "halves", std::ios::binary);
    const uint64_t length = header.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << header;
    out.write(reinterpret_cast<const char*>(f16), sizeof f16);
    out.write(reinterpret_cast<const char*>(bf16), sizeof bf16);
  }
  SafetensorsFile f = read_safetensors(dir / "halves");
  std::sort(f.tensors.begin(), f.tensors.end(),
            [](const auto& a, const auto& b) { return a.name > b.name; });  // h, then b
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(f.tensors.at(0).values, (std::vector<float>{1, -2, 0x1p-24f, 65504, inf}));
  EXPECT_EQ(f.tensors.at(1).values,
            (std::vector<float>{1, -2, std::bit_cast<float>(uint32_t{0x10000}), 65280, inf}));
}

// safetensors.torch.save_file's own files (check_export.py resave): OUT.plain.safetensors and,
// with halves, the F16/BF16 forms and their values widened back to float32.
void python_resave(const std::string& source, const std::string& out, bool halves) {
  const char* python = std::getenv("ALEXNET_TEST_VENV_PYTHON");
  ASSERT_NE(python, nullptr) << "ALEXNET_TEST_VENV_PYTHON is not set (run through ctest)";
  const std::string command =
      shell_quote(python) + " " + shell_quote(ALEXNET_SOURCE_DIR "/tests/trainer/check_export.py") +
      " resave " + shell_quote(source) + " " + shell_quote(out) + (halves ? " halves" : "");
  const std::string log = out + ".log";
  ASSERT_EQ(test::run(command, log), 0) << command << "\n" << test::read_text(log);
}

class OpenWeights : public ::testing::TestWithParam<VariantCase> {};

// Every variant's state_dict as the safetensors package writes it, with none of our metadata:
// the arch, classes, channels and (alexnet-mini) size come from the names and shapes, and the
// values are the source's, bit for bit, as from our own export and our HDF5 weights file.
TEST_P(OpenWeights, StateDictWithoutMetadataRebuildsTheModel) {
  const VariantCase& c = GetParam();
  TempDir dir;
  const StoredModel m = random_model(c.arch, 6, c.channels, c.size, 13);
  write_safetensors(dir / "ours.safetensors", to_safetensors(m));
  save_weights(dir / "weights.h5", m.spec, m.params, m.buffers, "");
  python_resave(dir / "ours.safetensors", dir / "torch", false);
  for (const std::string file : {"torch.plain.safetensors", "ours.safetensors", "weights.h5"}) {
    SCOPED_TRACE(file);
    const OpenedWeights w = open_weights(dir / file);
    EXPECT_EQ(w.spec.arch, c.arch);
    EXPECT_EQ(w.spec.num_classes, 6);
    EXPECT_EQ(w.spec.in_channels, c.channels);
    EXPECT_EQ(w.spec.height, m.spec.height);
    EXPECT_TRUE(w.params == m.params);
    EXPECT_TRUE(std::equal(w.buffers.begin(), w.buffers.end(), m.buffers.begin()));
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, OpenWeights,
                         ::testing::Values(VariantCase{"alexnet-paper", 3, 0},
                                           VariantCase{"alexnet-torchvision", 3, 0},
                                           VariantCase{"alexnet-keras", 1, 0},
                                           VariantCase{"alexnet-mini", 3, 32}),
                         [](const auto& variant) {
                           return std::regex_replace(variant.param.arch, std::regex("-"), "_");
                         });

// A model saved after .half() or .bfloat16(): the values torch widens them to, exactly.
TEST(OpenWeights, HalfPrecisionStateDicts) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 1, 28, 17);
  write_safetensors(dir / "ours.safetensors", to_safetensors(m));
  python_resave(dir / "ours.safetensors", dir / "torch", true);
  for (const std::string kind : {"f16", "bf16"}) {
    SCOPED_TRACE(kind);
    const OpenedWeights low = open_weights(dir / ("torch." + kind + ".safetensors"));
    const OpenedWeights wide = open_weights(dir / ("torch." + kind + "-f32.safetensors"));
    EXPECT_EQ(low.spec.arch, "alexnet-mini");
    EXPECT_TRUE(low.params == wide.params);
    EXPECT_TRUE(low.buffers == wide.buffers);
    EXPECT_FALSE(low.params == m.params);  // really rounded
  }
}

// State dicts that are not one of ours: one line naming the file and the tensor.
TEST(OpenWeights, ForeignOrDamagedStateDictsAreRefused) {
  TempDir dir;
  const StoredModel m = random_model("alexnet-mini", 10, 1, 28, 19);
  const SafetensorsFile good = to_safetensors(m);
  auto variant = [&](const std::string& name, bool keep_metadata, auto&& change) {
    SafetensorsFile f = good;
    if (!keep_metadata) f.metadata.clear();
    change(f);
    write_safetensors(dir / name, f);
    return std::string(dir / name);
  };
  auto tensor = [](SafetensorsFile& f, const std::string& name) -> SafetensorsTensor& {
    for (SafetensorsTensor& t : f.tensors) {
      if (t.name == name) return t;
    }
    throw std::logic_error("no " + name);
  };
  struct Case {
    std::string file, want;  // the message names `want`
    WeightsRequest request;
  };
  WeightsRequest keras;
  keras.arch = "alexnet-keras";
  const std::vector<Case> cases = {
      {variant("renamed", true,
               [&](SafetensorsFile& f) { tensor(f, "features.0.weight").name = "conv1.weight"; }),
       "features.0.weight",
       {}},
      {variant("renamed bare", false,
               [&](SafetensorsFile& f) { tensor(f, "features.4.bias").name = "features.4.b"; }),
       "features.4.b",
       {}},
      {variant("reshaped", true,
               [&](SafetensorsFile& f) {
                 SafetensorsTensor& t = tensor(f, "classifier.3.weight");
                 t.shape = {256, 1024};
               }),
       "classifier.3.weight",
       {}},
      {variant("extra", true,
               [&](SafetensorsFile& f) {
                 f.tensors.push_back({"classifier.7.weight", {2}, SafetensorsDtype::kF32, {1, 2}});
               }),
       "classifier.7.weight",
       {}},
      {variant("missing running stats", false,
               [&](SafetensorsFile& f) {
                 std::erase_if(f.tensors, [](const SafetensorsTensor& t) {
                   return t.name == "features.3.running_var";
                 });
               }),
       "features.3.running_var",
       {}},
      {variant("integer weight", true,
               [&](SafetensorsFile& f) {
                 SafetensorsTensor& t = tensor(f, "features.0.bias");
                 t.dtype = SafetensorsDtype::kI64;
                 std::fill(t.values.begin(), t.values.end(), 1.0f);
               }),
       "features.0.bias",
       {}},
      {variant("empty head", false,
               [&](SafetensorsFile& f) {
                 SafetensorsTensor& t = tensor(f, "classifier.6.weight");
                 t.shape = {int64_t{1} << 40, 0};
                 t.values.clear();
               }),
       "classes",
       {}},
      {variant("forged classes", true,
               [&](SafetensorsFile& f) { f.metadata["num_classes"] = "999999999999"; }),
       "num_classes",
       {}},
      {dir / "ours.safetensors", "weights of alexnet-mini, not alexnet-keras", keras},
  };
  write_safetensors(dir / "ours.safetensors", good);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    try {
      open_weights(c.file, c.request);
      ADD_FAILURE() << "opened";
    } catch (const io::DataError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(c.file), std::string::npos) << message;
      EXPECT_NE(message.find(c.want), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  // The dataset's classes and size decide where the caller knows them (alexnet-eval).
  const OpenedWeights w = open_weights(dir / "ours.safetensors", {"", 10, 1, 28, 28, "d.h5"});
  EXPECT_EQ(w.spec.height, 28);
  EXPECT_THROW(open_weights(dir / "ours.safetensors", {"", 7, 1, 28, 28, "d.h5"}), io::DataError);
  try {  // images too small for the arch: the data's fault, named as such
    open_weights(dir / "ours.safetensors", {"", 10, 1, 8, 8, "d.h5"});
    ADD_FAILURE() << "opened";
  } catch (const io::DataError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("'d.h5': ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace alexnet::trainer
