// Flatten's index mapping between NHWC activations [N, H, W, C] and the flat [N, C * H * W]
// features in PyTorch's (C, H, W) order: written once for the CUDA kernels and their CPU tests.
#pragma once

#include <cstdint>

#include "trainer/host_device.h"

namespace alexnet::trainer {

struct FlattenDims {
  int64_t channels, height, width;
};

// The NHWC offset of flat feature element i (i over the whole [N, C * H * W] output).
ALEXNET_HOST_DEVICE inline int64_t flatten_source(int64_t i, const FlattenDims& d) {
  const int64_t plane = d.height * d.width, features = d.channels * plane;
  const int64_t n = i / features, f = i % features;
  const int64_t c = f / plane, hw = f % plane;
  return (n * plane + hw) * d.channels + c;
}

// The inverse: the flat feature offset of NHWC element j.
ALEXNET_HOST_DEVICE inline int64_t flatten_target(int64_t j, const FlattenDims& d) {
  const int64_t plane = d.height * d.width, features = d.channels * plane;
  const int64_t n = j / features, r = j % features;
  const int64_t hw = r / d.channels, c = r % d.channels;
  return n * features + c * plane + hw;
}

}  // namespace alexnet::trainer
