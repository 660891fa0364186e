// What the cuDNN ops hand to cuDNN, worked out by plain functions without CUDA headers so that the
// CPU tests (tests/gpu/test_cudnn_plan.cc) check them: tensor dims and strides, filter dims,
// convolution and pooling geometry, the math mode for a precision, and the choice of a convolution
// algorithm among measured candidates.
//
// Layouts: activations are NHWC in memory and described to cuDNN in its (n, c, h, w) dimension
// order with NHWC strides. Convolution filters are handed to cuDNN as [O, KH, KW, I/groups]
// (CUDNN_TENSOR_NHWC filter format: the one its NHWC tensor-core kernels take); the op transposes
// PyTorch's [O, I/groups, KH, KW] parameters into that at every use
// (trainer/cuda/layout_kernels.h).
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainer/backend_options.h"
#include "trainer/op_shapes.h"

namespace alexnet::trainer::cuda::plan {

[[noreturn]] inline void fail(const std::string& op, const std::string& what) {
  throw std::invalid_argument(op + ": " + what);
}

// cuDNN's legacy API takes int dims and strides.
inline int to_int(const std::string& op, const char* name, int64_t value) {
  if (value < 0 || value > INT_MAX) {
    fail(op, std::string(name) + " " + std::to_string(value) + " does not fit cuDNN's int");
  }
  return static_cast<int>(value);
}

inline void require_positive(const std::string& op, const char* name, int64_t value) {
  if (value <= 0) fail(op, std::string(name) + " must be positive, got " + std::to_string(value));
}

// A 4-d tensor in cuDNN's (n, c, h, w) dimension order with the strides of its memory layout.
struct TensorDims {
  int n = 1, c = 1, h = 1, w = 1;
  int stride_n = 1, stride_c = 1, stride_h = 1, stride_w = 1;
};

// The dimensions of a dense [n, c, h, w] tensor (each checked to fit cuDNN's int), strides unset.
inline TensorDims tensor_dims(int64_t n, int64_t c, int64_t h, int64_t w, const std::string& op) {
  TensorDims d;
  d.n = to_int(op, "batch", n);
  d.c = to_int(op, "channels", c);
  d.h = to_int(op, "height", h);
  d.w = to_int(op, "width", w);
  return d;
}

// [N, H, W, C] in memory.
inline TensorDims nhwc_tensor(int64_t n, int64_t c, int64_t h, int64_t w,
                              const std::string& op = "tensor") {
  TensorDims d = tensor_dims(n, c, h, w, op);
  d.stride_c = 1;
  d.stride_w = d.c;
  d.stride_h = to_int(op, "row stride", w * c);
  d.stride_n = to_int(op, "sample stride", h * w * c);
  return d;
}

// [N, C, H, W] in memory.
inline TensorDims nchw_tensor(int64_t n, int64_t c, int64_t h, int64_t w,
                              const std::string& op = "tensor") {
  TensorDims d = tensor_dims(n, c, h, w, op);
  d.stride_w = 1;
  d.stride_h = d.w;
  d.stride_c = to_int(op, "plane stride", h * w);
  d.stride_n = to_int(op, "sample stride", c * h * w);
  return d;
}

// A per-channel vector [C] as the 1 x C x 1 x 1 tensor cuDNN broadcasts (conv bias).
inline TensorDims channel_vector(int64_t c, const std::string& op = "tensor") {
  return nchw_tensor(1, c, 1, 1, op);
}

// A convolution filter: dims in cuDNN's (k, c, h, w) order, c the input channels of one group;
// always in the NHWC filter format (memory [O, KH, KW, I/groups]).
struct FilterDims {
  int out = 1, in_per_group = 1, kh = 1, kw = 1;
};

struct ConvGeometry {
  int pad_h = 0, pad_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

inline std::string describe(const Conv2dShape& s) {
  return "conv " + std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) + "/" +
         std::to_string(s.stride_h) + " pad " + std::to_string(s.pad_h) + " groups " +
         std::to_string(s.groups) + " " + std::to_string(s.in_channels) + "->" +
         std::to_string(s.out_channels) + " on " + std::to_string(s.height) + "x" +
         std::to_string(s.width) + " (batch " + std::to_string(s.batch) + ")";
}

inline FilterDims conv_filter(const Conv2dShape& s) {
  const std::string op = "conv2d";
  return {to_int(op, "out_channels", s.out_channels),
          to_int(op, "in_channels / groups", s.in_channels / s.groups),
          to_int(op, "kernel_h", s.kernel_h), to_int(op, "kernel_w", s.kernel_w)};
}

// Elements of the filter: O * I/groups * KH * KW.
inline int64_t filter_elements(const Conv2dShape& s) {
  return s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
}

inline ConvGeometry conv_geometry(const Conv2dShape& s) {
  const std::string op = "conv2d";
  ConvGeometry g;
  g.pad_h = to_int(op, "pad_h", s.pad_h);
  g.pad_w = to_int(op, "pad_w", s.pad_w);
  g.stride_h = to_int(op, "stride_h", s.stride_h);
  g.stride_w = to_int(op, "stride_w", s.stride_w);
  g.groups = to_int(op, "groups", s.groups);
  return g;
}

// cuDNN's documented output size, 1 + (in + 2 pad - ((k - 1) dilation + 1)) / stride; the op
// checks that cuDNN agrees and the tests that it equals Conv2dShape's.
inline int64_t conv_output_size(int64_t in, int64_t pad, int64_t kernel, int64_t stride,
                                int64_t dilation = 1) {
  const int64_t span = in + 2 * pad - ((kernel - 1) * dilation + 1);
  return span < 0 ? 0 : 1 + span / stride;
}

inline TensorDims conv_input(const Conv2dShape& s) {
  return nhwc_tensor(s.batch, s.in_channels, s.height, s.width, "conv2d");
}
inline TensorDims conv_output(const Conv2dShape& s) {
  return nhwc_tensor(s.batch, s.out_channels,
                     conv_output_size(s.height, s.pad_h, s.kernel_h, s.stride_h),
                     conv_output_size(s.width, s.pad_w, s.kernel_w, s.stride_w), "conv2d");
}

// How cuDNN may do a convolution's arithmetic. fp32 without TF32 must stay IEEE fp32 (FMA only);
// fp32 with TF32 lets cuDNN pick (TF32 tensor cores on Ampere and later); 16-bit uses tensor
// cores with fp32 accumulation.
enum class ConvMath { kFma, kDefault, kTensorOp };
inline ConvMath conv_math(Precision precision, bool allow_tf32) {
  if (precision != Precision::kFloat32) return ConvMath::kTensorOp;
  return allow_tf32 ? ConvMath::kDefault : ConvMath::kFma;
}

struct PoolGeometry {
  int window = 1, pad = 0, stride = 1;
};

inline std::string describe(const Pool2dShape& s) {
  return "max pool " + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) + "/" +
         std::to_string(s.stride) + " pad " + std::to_string(s.pad) + " on " +
         std::to_string(s.height) + "x" + std::to_string(s.width) + "x" +
         std::to_string(s.channels) + " (batch " + std::to_string(s.batch) + ")";
}

// The window, padding and stride for cuDNN, after the reference's rules (trainer/op_shapes.h:
// pad <= kernel / 2 also guarantees every window holds an input element).
inline PoolGeometry pool_geometry(const Pool2dShape& s) {
  validate(s);
  const std::string op = "max_pool";
  return {to_int(op, "kernel", s.kernel), to_int(op, "pad", s.pad), to_int(op, "stride", s.stride)};
}

// cuDNN's pooling output size, 1 + (in + 2 pad - window) / stride (symmetric padding; the bottom
// and right padding goes partly unused where the stride does not divide the span, as in PyTorch).
inline int64_t pool_output_size(int64_t in, int64_t pad, int64_t window, int64_t stride) {
  const int64_t span = in + 2 * pad - window;
  return span < 0 ? 0 : 1 + span / stride;
}

inline TensorDims pool_input(const Pool2dShape& s) {
  return nhwc_tensor(s.batch, s.channels, s.height, s.width, "max_pool");
}
inline TensorDims pool_output(const Pool2dShape& s) {
  return nhwc_tensor(s.batch, s.channels, pool_output_size(s.height, s.pad, s.kernel, s.stride),
                     pool_output_size(s.width, s.pad, s.kernel, s.stride), "max_pool");
}

// Batch norm's [N, C, spatial] NHWC activations ([N, spatial, C] in memory) as N x C x 1 x spatial.
inline TensorDims batch_norm_tensor(const BatchNormShape& s) {
  return nhwc_tensor(s.batch, s.channels, 1, s.spatial, "batch_norm");
}

// n contiguous elements (an element-wise op's operand) as 1 x 1 x 1 x n.
inline TensorDims flat_tensor(int64_t n, const std::string& op) {
  require_positive(op, "elements", n);
  return nchw_tensor(1, 1, 1, n, op);
}

// One convolution algorithm as cudnnFind*Algorithm reports it.
struct AlgoCandidate {
  int algo = 0;
  bool ok = false;       // cuDNN ran it (status CUDNN_STATUS_SUCCESS)
  std::string status;    // cuDNN's status text where it did not
  float time_ms = -1;    // negative: not measured (heuristic results)
  size_t workspace = 0;  // bytes
  bool deterministic = false;
  int math_type = 0;  // cudnnMathType_t
};

// The algorithm to use: among those that ran and fit in workspace_limit (and are deterministic
// where required), the fastest measured, else the first unmeasured in the given order (cuDNN's
// heuristic ranking). If none that ran fits the limit, the one needing the least workspace (the
// limit bounds a choice; it does not make the layer impossible). If none ran, std::runtime_error
// naming `what` and every candidate's status.
inline AlgoCandidate choose_algorithm(const std::vector<AlgoCandidate>& candidates,
                                      size_t workspace_limit, bool require_deterministic,
                                      const std::string& what) {
  const AlgoCandidate* best = nullptr;
  const AlgoCandidate* smallest = nullptr;
  const auto faster = [](const AlgoCandidate& a, const AlgoCandidate& b) {
    if (a.time_ms >= 0 && b.time_ms >= 0) return a.time_ms < b.time_ms;
    return a.time_ms >= 0 && b.time_ms < 0;  // measured before unmeasured
  };
  for (const AlgoCandidate& c : candidates) {
    if (!c.ok || (require_deterministic && !c.deterministic)) continue;
    if (!smallest || c.workspace < smallest->workspace) smallest = &c;
    if (c.workspace <= workspace_limit && (!best || faster(c, *best))) best = &c;
  }
  if (best) return *best;
  if (smallest) return *smallest;
  std::string text = what + ": no cuDNN algorithm is usable (";
  if (candidates.empty()) text += "none reported";
  for (size_t i = 0; i < candidates.size(); ++i) {
    const AlgoCandidate& c = candidates[i];
    text += (i ? "; algo " : "algo ") + std::to_string(c.algo) + ": " +
            (c.ok ? "not deterministic" : (c.status.empty() ? "failed" : c.status));
  }
  throw std::runtime_error(text + ")");
}

}  // namespace alexnet::trainer::cuda::plan
