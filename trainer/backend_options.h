// How a backend is made (make_backend in trainer/backend.h): the precision its convolutions and
// matrix products compute in, and the CUDA backend's device and workspace. Parameters, their
// gradients, optimizer state and the activations between layers stay fp32 ("master" copies);
// bf16 and fp16 are what conv and FC layers compute in (fp32 accumulation), on the CUDA backend.
#pragma once

#include <cstddef>

#include "io/numeric/precision.h"

namespace alexnet::trainer {

// The trainer speaks of the number formats as its own (trainer::Precision); they live in the
// ground library (io/numeric/) because comm/ uses them too.
using numeric::parse_precision;
using numeric::Precision;
using numeric::precision_name;

struct BackendOptions {
  Precision precision = Precision::kFloat32;
  // fp32 convolutions and matrix products may use TF32 tensor cores (10-bit mantissa inputs):
  // PyTorch's default for cuDNN convolutions. Off, fp32 means fp32 (the GPU tests need it).
  bool allow_tf32 = false;
  // CUDA: the device ordinal (among CUDA_VISIBLE_DEVICES); -1: the current device.
  int device = -1;
  // CUDA: the most workspace one convolution algorithm may use.
  size_t conv_workspace_bytes = size_t{256} << 20;
};

}  // namespace alexnet::trainer
