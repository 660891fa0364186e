// Every reference op (trainer/cpu/reference_ops.h) against PyTorch 1.13, the outside oracle:
// tests/trainer/torch_reference_ops.py runs torch's ops forward and backward (autograd) in float64
// on random data and writes inputs, outputs and gradients; here the reference recomputes all of
// them, in double and in float, from the same inputs. Dropout is not compared: torch's RNG draws
// other masks than trainer/dropout_math.h.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "trainer/cpu/reference_ops.h"

namespace alexnet::trainer::reference {
namespace {

static_assert(std::endian::native == std::endian::little, "the oracle's files are little-endian");

const std::string kPython = "/usr/bin/python3";
const std::string kScript = ALEXNET_SOURCE_DIR "/tests/trainer/torch_reference_ops.py";

using test::read_text;
using test::run;
using test::shell_quote;

// A fresh folder under the system's temporary directory, removed with everything in it.
using test::TempDir;

// The script's files, written once per test binary (importing torch alone takes a second or
// two); `error` says why they are not there.
struct Oracle {
  std::filesystem::path dir;
  std::string error;
};

const Oracle& oracle() {
  static const TempDir temp;
  static const Oracle result = [] {
    Oracle o;
    // Under CTest a fixture runs the script once for all tests (each test is its own process).
    if (const char* dir = std::getenv("ALEXNET_TORCH_ORACLE_DIR"); dir != nullptr && *dir != 0) {
      o.dir = dir;
      if (!std::filesystem::is_directory(o.dir)) {
        o.error = std::string("ALEXNET_TORCH_ORACLE_DIR=") + dir + " is not a folder (the " +
                  "torch_reference_ops fixture failed?)";
      }
      return o;
    }
    o.dir = temp.path() / "cases";
    const std::string log = (temp.path() / "python.log").string();
    // Not a skip: without torch this suite would silently stop checking the reference.
    if (!std::filesystem::exists(kPython)) {
      o.error = kPython + " is missing; install python3 with python3-torch (PyTorch 1.13)";
    } else if (run(shell_quote(kPython) + " -c 'import torch, numpy'", log) != 0) {
      o.error = kPython +
                " cannot import torch and numpy (install python3-torch, python3-numpy):\n" +
                read_text(log);
    } else if (!std::filesystem::exists(kScript)) {
      o.error = kScript + " is missing";
    } else {
      const std::string command =
          shell_quote(kPython) + " " + shell_quote(kScript) + " " + shell_quote(o.dir.string());
      if (run(command, log) != 0) o.error = "the oracle failed: " + command + "\n" + read_text(log);
    }
    return o;
  }();
  return result;
}

// One case of the oracle: CASE.txt (op, param and tensor lines) and its CASE.NAME.bin files.
// Problems with the files throw, which fails the test with the message.
class Case {
 public:
  explicit Case(const std::string& name) : name_(name) {
    const std::filesystem::path path = oracle().dir / (name + ".txt");
    std::ifstream in(path);
    if (!in) throw std::runtime_error("the oracle wrote no " + path.string());
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string kind, key;
      fields >> kind >> key;
      if (kind == "param") {
        double v;
        while (fields >> v) params_[key].push_back(v);
      } else if (kind == "tensor") {
        TensorInfo& t = tensors_[key];
        fields >> t.dtype;
        int64_t d;
        while (fields >> d) t.shape.push_back(d);
      }
    }
  }

  double number(const std::string& key, size_t index = 0) const {
    auto it = params_.find(key);
    if (it == params_.end() || index >= it->second.size()) {
      throw std::runtime_error(name_ + ": no parameter " + key + "[" + std::to_string(index) + "]");
    }
    return it->second[index];
  }
  int64_t integer(const std::string& key, size_t index = 0) const {
    const double v = number(key, index);
    if (v != std::floor(v)) throw std::runtime_error(name_ + ": " + key + " is not an integer");
    return static_cast<int64_t>(v);
  }
  std::vector<int64_t> integers(const std::string& key) const {
    std::vector<int64_t> values;
    auto it = params_.find(key);
    for (size_t i = 0; it != params_.end() && i < it->second.size(); ++i) {
      values.push_back(integer(key, i));
    }
    return values;
  }

  // Float64 tensor `key` as T (an input: rounded to float in the float tests), after checking
  // that torch's shape is the one the reference's shape structs give.
  template <typename T>
  std::vector<T> get(const std::string& key, const std::vector<int64_t>& shape) const {
    std::vector<double> raw = read<double>(key, "float64", shape);
    return std::vector<T>(raw.begin(), raw.end());
  }
  // Torch's float64 result `key`, the expected value.
  std::vector<double> want(const std::string& key, const std::vector<int64_t>& shape) const {
    return read<double>(key, "float64", shape);
  }
  std::vector<int64_t> get_int64(const std::string& key, const std::vector<int64_t>& shape) const {
    return read<int64_t>(key, "int64", shape);
  }

 private:
  struct TensorInfo {
    std::string dtype;
    std::vector<int64_t> shape;
  };

  static std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

  template <typename S>
  std::vector<S> read(const std::string& key, const std::string& dtype,
                      const std::vector<int64_t>& shape) const {
    auto it = tensors_.find(key);
    if (it == tensors_.end()) throw std::runtime_error(name_ + ": no tensor " + key);
    if (it->second.dtype != dtype || it->second.shape != shape) {
      throw std::runtime_error(name_ + "." + key + ": torch gives " + it->second.dtype + " " +
                               shape_text(it->second.shape) + ", the reference expects " + dtype +
                               " " + shape_text(shape));
    }
    size_t count = 1;
    for (int64_t d : shape) count *= static_cast<size_t>(d);
    const std::filesystem::path path = oracle().dir / (name_ + "." + key + ".bin");
    std::vector<S> values(count);
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(values.data()),
            static_cast<std::streamsize>(count * sizeof(S)));
    if (!in || in.peek() != std::char_traits<char>::eof()) {
      throw std::runtime_error(path.string() + " does not hold exactly " + std::to_string(count) +
                               " values");
    }
    return values;
  }

  std::string name_;
  std::map<std::string, std::vector<double>> params_;
  std::map<std::string, TensorInfo> tensors_;
};

template <typename T>
struct Tolerance;
// Both libraries compute the same formulas in float64 and differ only in the order of
// operations (summation order, pow vs exp/log, var as E[(x-m)^2] or otherwise). The longest sum
// here has 3 * 11 * 11 = 363 terms, so rounding stays below ~363 * 2^-53 ~ 4e-14 of the tensor's
// scale; 1e-10 leaves three orders of margin, and any real slip (a wrong index, a window off by
// one, a missing term, alpha not divided by size) costs 1e-3 or much more.
template <>
struct Tolerance<double> {
  static constexpr double kRelative = 1e-10;
};
// Float inputs (rounded from the float64 ones, 2^-24 ~ 6e-8 relative) and float arithmetic
// against the float64 oracle: worst-case accumulation over 363 terms is ~363 * 6e-8 ~ 2e-5 of
// the scale (random-sign sums do far better); 1e-4 covers that, and still flags real errors.
template <>
struct Tolerance<float> {
  static constexpr double kRelative = 1e-4;
};

// Output buffers start as NaN: an element the op never writes, or adds to instead of
// overwriting (the header's contract), shows up in the comparison.
template <typename T>
std::vector<T> nans(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
}

// max|got - want| / max(1e-12, max|want|) must stay below the tolerance. One error relative to
// the tensor's scale rather than per element: elements that are small after cancellation carry
// absolute, not relative, rounding. The 1e-12 floor only keeps an all-zero expectation defined.
template <typename T>
void expect_close(const std::string& what, const std::vector<T>& got,
                  const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0, worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    double diff = std::abs(static_cast<double>(got[i]) - want[i]);
    if (std::isnan(diff)) diff = std::numeric_limits<double>::infinity();
    if (diff > worst) worst = diff, at = i;
  }
  const double relative = worst / std::max(1e-12, scale);
  EXPECT_LT(relative, Tolerance<T>::kRelative)
      << what << ": max |difference| " << worst << " at flat index " << at << " (reference "
      << static_cast<double>(got[at]) << ", torch " << want[at] << "), torch's max |value| "
      << scale;
}

template <typename T>
void expect_close(const std::string& what, T got, double want) {
  expect_close(what, std::vector<T>{got}, std::vector<double>{want});
}

// Max-pool argmax: exactly torch's indices (flat h * W + w in the plane, first maximum on ties).
void expect_same_indices(const std::vector<int32_t>& got, const std::vector<int64_t>& want) {
  ASSERT_EQ(got.size(), want.size());
  int64_t mismatches = 0, first = -1;
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i] && mismatches++ == 0) first = static_cast<int64_t>(i);
  }
  EXPECT_EQ(mismatches, 0) << "argmax differs at " << mismatches << " of " << want.size()
                           << " outputs; first at flat index " << first << ": reference "
                           << (first >= 0 ? got[static_cast<size_t>(first)] : 0) << ", torch "
                           << (first >= 0 ? want[static_cast<size_t>(first)] : 0);
}

int64_t product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <typename T>
class ReferenceVsTorch : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(oracle().error, "") << "no PyTorch results to compare with"; }
};

struct ScalarName {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, double> ? "double" : "float";
  }
};
using Scalars = ::testing::Types<double, float>;
TYPED_TEST_SUITE(ReferenceVsTorch, Scalars, ScalarName);

TYPED_TEST(ReferenceVsTorch, Conv2d) {
  using T = TypeParam;
  // conv1's geometry; grouped 5x5 (conv2); grouped 3x3 without bias; 1x3 kernel, stride (2, 1),
  // pad (0, 1), whose last input row no output reads.
  for (const char* name : {"conv_a", "conv_b", "conv_c", "conv_d"}) {
    SCOPED_TRACE(name);
    Case c(name);
    Conv2dShape s;
    s.batch = c.integer("batch");
    s.in_channels = c.integer("in_channels");
    s.out_channels = c.integer("out_channels");
    s.height = c.integer("input", 0);
    s.width = c.integer("input", 1);
    s.kernel_h = c.integer("kernel", 0);
    s.kernel_w = c.integer("kernel", 1);
    s.stride_h = c.integer("stride", 0);
    s.stride_w = c.integer("stride", 1);
    s.pad_h = c.integer("pad", 0);
    s.pad_w = c.integer("pad", 1);
    s.groups = c.integer("groups");
    const bool bias = c.integer("bias") != 0;
    const std::vector<int64_t> x_shape = {s.batch, s.in_channels, s.height, s.width};
    const std::vector<int64_t> w_shape = {s.out_channels, s.in_channels / s.groups, s.kernel_h,
                                          s.kernel_w};
    const std::vector<int64_t> y_shape = {s.batch, s.out_channels, s.out_height(), s.out_width()};

    const std::vector<T> x = c.get<T>("x", x_shape), w = c.get<T>("w", w_shape);
    const std::vector<T> dy = c.get<T>("dy", y_shape);
    const std::vector<T> b = bias ? c.get<T>("b", {s.out_channels}) : std::vector<T>();

    std::vector<T> y = nans<T>(product(y_shape));
    conv2d_forward(s, x.data(), w.data(), bias ? b.data() : nullptr, y.data());
    expect_close("y", y, c.want("y", y_shape));

    std::vector<T> dx = nans<T>(product(x_shape));
    conv2d_backward_data(s, dy.data(), w.data(), dx.data());
    expect_close("dx", dx, c.want("dx", x_shape));

    std::vector<T> dw = nans<T>(product(w_shape)), db = nans<T>(s.out_channels);
    conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), bias ? db.data() : nullptr);
    expect_close("dw", dw, c.want("dw", w_shape));
    if (bias) expect_close("db", db, c.want("db", {s.out_channels}));
  }
}

TYPED_TEST(ReferenceVsTorch, MaxPool) {
  using T = TypeParam;
  // 3x3 stride 2 without and with padding; then small negative integers: ties everywhere (the
  // first maximum wins) and border windows whose every real value lies below zero padding.
  for (const char* name : {"max_pool_a", "max_pool_b", "max_pool_ties"}) {
    SCOPED_TRACE(name);
    Case c(name);
    Pool2dShape s;
    s.batch = c.integer("shape", 0);
    s.channels = c.integer("shape", 1);
    s.height = c.integer("shape", 2);
    s.width = c.integer("shape", 3);
    s.kernel = c.integer("kernel");
    s.stride = c.integer("stride");
    s.pad = c.integer("pad");
    const std::vector<int64_t> x_shape = {s.batch, s.channels, s.height, s.width};
    const std::vector<int64_t> y_shape = {s.batch, s.channels, s.out_height(), s.out_width()};
    const std::vector<T> x = c.get<T>("x", x_shape), dy = c.get<T>("dy", y_shape);

    std::vector<T> y = nans<T>(product(y_shape));
    std::vector<int32_t> argmax(static_cast<size_t>(product(y_shape)), -1);
    max_pool_forward(s, x.data(), y.data(), argmax.data());
    expect_close("y", y, c.want("y", y_shape));
    expect_same_indices(argmax, c.get_int64("argmax", y_shape));

    std::vector<T> dx = nans<T>(product(x_shape));
    max_pool_backward(s, dy.data(), argmax.data(), dx.data());
    expect_close("dx", dx, c.want("dx", x_shape));
  }
}

TYPED_TEST(ReferenceVsTorch, AdaptiveAvgPool) {
  using T = TypeParam;
  // 13x13 -> 6x6 (AlexNet's; bins of 3 overlapping by 1 where 13/6 is not whole); 7x5 -> 3x2.
  for (const char* name : {"adaptive_avg_pool_a", "adaptive_avg_pool_b"}) {
    SCOPED_TRACE(name);
    Case c(name);
    const int64_t n = c.integer("shape", 0), ch = c.integer("shape", 1);
    const int64_t h = c.integer("shape", 2), w = c.integer("shape", 3);
    const int64_t oh = c.integer("output", 0), ow = c.integer("output", 1);
    const std::vector<int64_t> x_shape = {n, ch, h, w}, y_shape = {n, ch, oh, ow};
    const std::vector<T> x = c.get<T>("x", x_shape), dy = c.get<T>("dy", y_shape);

    std::vector<T> y = nans<T>(product(y_shape));
    adaptive_avg_pool_forward(n, ch, h, w, oh, ow, x.data(), y.data());
    expect_close("y", y, c.want("y", y_shape));

    std::vector<T> dx = nans<T>(product(x_shape));
    adaptive_avg_pool_backward(n, ch, h, w, oh, ow, dy.data(), dx.data());
    expect_close("dx", dx, c.want("dx", x_shape));
  }
}

TYPED_TEST(ReferenceVsTorch, LocalResponseNorm) {
  using T = TypeParam;
  // The script calls torch with alpha_torch = size * alpha and records our alpha: torch
  // averages the squares over the window, the paper (and the reference) sums them.
  for (const char* name : {"lrn_a", "lrn_b"}) {
    SCOPED_TRACE(name);
    Case c(name);
    LrnShape s;
    s.batch = c.integer("shape", 0);
    s.channels = c.integer("shape", 1);
    s.height = c.integer("shape", 2);
    s.width = c.integer("shape", 3);
    s.size = c.integer("size");
    s.alpha = c.number("alpha");
    s.beta = c.number("beta");
    s.k = c.number("k");
    const std::vector<int64_t> shape = {s.batch, s.channels, s.height, s.width};
    const std::vector<T> x = c.get<T>("x", shape), dy = c.get<T>("dy", shape);

    std::vector<T> y = nans<T>(product(shape));
    lrn_forward(s, x.data(), y.data());
    expect_close("y", y, c.want("y", shape));

    std::vector<T> dx = nans<T>(product(shape));
    lrn_backward(s, x.data(), dy.data(), dx.data());
    expect_close("dx", dx, c.want("dx", shape));
  }
}

TYPED_TEST(ReferenceVsTorch, BatchNormTraining) {
  using T = TypeParam;
  // [N, C, H, W] as after a convolution, [N, C] as after a linear layer; other eps and momentum.
  for (const char* name : {"batch_norm_nchw", "batch_norm_nc"}) {
    SCOPED_TRACE(name);
    Case c(name);
    const std::vector<int64_t> shape = c.integers("shape");
    ASSERT_GE(shape.size(), 2u);
    BatchNormShape s;
    s.batch = shape[0];
    s.channels = shape[1];
    s.spatial = product(shape) / (s.batch * s.channels);
    s.eps = c.number("eps");
    s.momentum = c.number("momentum");
    const std::vector<int64_t> per_channel = {s.channels};
    const std::vector<T> x = c.get<T>("x", shape), dy = c.get<T>("dy", shape);
    const std::vector<T> gamma = c.get<T>("gamma", per_channel);
    const std::vector<T> beta = c.get<T>("beta", per_channel);
    std::vector<T> running_mean = c.get<T>("running_mean0", per_channel);
    std::vector<T> running_var = c.get<T>("running_var0", per_channel);

    std::vector<T> y = nans<T>(product(shape));
    std::vector<T> save_mean = nans<T>(s.channels), save_invstd = nans<T>(s.channels);
    batch_norm_forward_training(s, x.data(), gamma.data(), beta.data(), y.data(), save_mean.data(),
                                save_invstd.data(), running_mean.data(), running_var.data());
    expect_close("y", y, c.want("y", shape));
    expect_close("save_mean", save_mean, c.want("save_mean", per_channel));
    expect_close("save_invstd", save_invstd, c.want("save_invstd", per_channel));
    expect_close("running_mean", running_mean, c.want("running_mean", per_channel));
    expect_close("running_var", running_var, c.want("running_var", per_channel));

    std::vector<T> dx = nans<T>(product(shape));
    std::vector<T> dgamma = nans<T>(s.channels), dbeta = nans<T>(s.channels);
    batch_norm_backward(s, x.data(), dy.data(), gamma.data(), save_mean.data(), save_invstd.data(),
                        dx.data(), dgamma.data(), dbeta.data());
    expect_close("dx", dx, c.want("dx", shape));
    expect_close("dgamma", dgamma, c.want("dgamma", per_channel));
    expect_close("dbeta", dbeta, c.want("dbeta", per_channel));
  }
}

TYPED_TEST(ReferenceVsTorch, BatchNormInference) {
  using T = TypeParam;
  Case c("batch_norm_inference");
  const std::vector<int64_t> shape = c.integers("shape");
  ASSERT_GE(shape.size(), 2u);
  BatchNormShape s;
  s.batch = shape[0];
  s.channels = shape[1];
  s.spatial = product(shape) / (s.batch * s.channels);
  s.eps = c.number("eps");
  const std::vector<int64_t> per_channel = {s.channels};
  const std::vector<T> x = c.get<T>("x", shape);
  const std::vector<T> gamma = c.get<T>("gamma", per_channel);
  const std::vector<T> beta = c.get<T>("beta", per_channel);
  const std::vector<T> running_mean = c.get<T>("running_mean", per_channel);
  const std::vector<T> running_var = c.get<T>("running_var", per_channel);

  std::vector<T> y = nans<T>(product(shape));
  batch_norm_forward_inference(s, x.data(), gamma.data(), beta.data(), running_mean.data(),
                               running_var.data(), y.data());
  expect_close("y", y, c.want("y", shape));
}

TYPED_TEST(ReferenceVsTorch, Linear) {
  using T = TypeParam;
  Case c("linear");
  const int64_t n = c.integer("shape", 0), in = c.integer("shape", 1), out = c.integer("shape", 2);
  const std::vector<int64_t> x_shape = {n, in}, w_shape = {out, in}, y_shape = {n, out};
  const std::vector<T> x = c.get<T>("x", x_shape), w = c.get<T>("w", w_shape);
  const std::vector<T> b = c.get<T>("b", {out}), dy = c.get<T>("dy", y_shape);

  std::vector<T> y = nans<T>(product(y_shape));
  linear_forward(n, in, out, x.data(), w.data(), b.data(), y.data());
  expect_close("y", y, c.want("y", y_shape));

  std::vector<T> dx = nans<T>(product(x_shape));
  linear_backward_data(n, in, out, dy.data(), w.data(), dx.data());
  expect_close("dx", dx, c.want("dx", x_shape));

  std::vector<T> dw = nans<T>(product(w_shape)), db = nans<T>(out);
  linear_backward_weights(n, in, out, x.data(), dy.data(), dw.data(), db.data());
  expect_close("dw", dw, c.want("dw", w_shape));
  expect_close("db", db, c.want("db", {out}));
}

TYPED_TEST(ReferenceVsTorch, Relu) {
  using T = TypeParam;
  Case c("relu");
  const std::vector<int64_t> shape = c.integers("shape");
  const int64_t n = product(shape);
  const std::vector<T> x = c.get<T>("x", shape), dy = c.get<T>("dy", shape);

  std::vector<T> y = nans<T>(n);
  relu_forward(n, x.data(), y.data());
  expect_close("y", y, c.want("y", shape));

  std::vector<T> dx = nans<T>(n);
  relu_backward(n, y.data(), dy.data(), dx.data());
  expect_close("dx", dx, c.want("dx", shape));
}

TYPED_TEST(ReferenceVsTorch, SoftmaxCrossEntropy) {
  using T = TypeParam;
  // Logits of scale 3, so that softmax is far from uniform; without and with label smoothing.
  for (const char* name : {"cross_entropy", "cross_entropy_smoothing"}) {
    SCOPED_TRACE(name);
    Case c(name);
    const int64_t n = c.integer("shape", 0), classes = c.integer("shape", 1);
    const std::vector<int64_t> shape = {n, classes};
    const std::vector<T> logits = c.get<T>("logits", shape);
    const std::vector<int64_t> labels64 = c.get_int64("labels", {n});
    const std::vector<int32_t> labels(labels64.begin(), labels64.end());

    std::vector<T> dlogits = nans<T>(product(shape));
    const T loss = softmax_cross_entropy(n, classes, logits.data(), labels.data(),
                                         c.number("label_smoothing"), dlogits.data());
    expect_close("loss", loss, c.want("loss", {})[0]);
    expect_close("dlogits", dlogits, c.want("dlogits", shape));
  }
}

}  // namespace
}  // namespace alexnet::trainer::reference
