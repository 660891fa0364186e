// ReLU's per-element arithmetic, written once for the reference ops (trainer/cpu/reference_ops.cc)
// and the oneDNN backend's loops (trainer/cpu/onednn_relu.cc); the CUDA backend uses cuDNN's
// activation, which lets NaN through the same way. Host only: no kernel of ours computes ReLU.
#pragma once

#include <cmath>

namespace alexnet::trainer {

// max(x, 0), except that a NaN passes through, as in PyTorch (max(NaN, 0) would silently make it
// 0 and hide a diverging run).
template <typename T>
inline T relu_output(T x) {
  return (x > 0 || std::isnan(x)) ? x : T(0);
}

// PyTorch's threshold_backward from the output y: zero where y <= 0, so a NaN output passes dy
// on. dy comes by value: a load under the condition would keep the callers' loops scalar.
template <typename T>
inline T relu_input_grad(T y, T dy) {
  return y <= 0 ? T(0) : dy;
}

}  // namespace alexnet::trainer
