// ONNX export of a model in inference form (opset 13), built through ONNX's protobuf classes and
// validated by onnx::checker before it is written.
//
// The graph: input "input" float [batch, C, H, W] (NCHW), output "logits" [batch, classes]; the
// initializers carry PyTorch's state_dict names. Layer by layer: Conv (with `group`), Relu,
// MaxPool (floor mode), LRN (alpha = the paper's alpha x size: ONNX, like PyTorch, divides it by
// the size), BatchNormalization with the running statistics, the adaptive average pool as what it
// computes at the exported size (nothing where its input already has the output size, AveragePool
// where the sizes divide), Flatten, Gemm with transB = 1, and no Dropout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/export/stored_model.h"

namespace alexnet::trainer {

struct OnnxExportOptions {
  // The graph takes pixel values (0-255 floats, NCHW) and starts with Sub(mean) and Div(std), the
  // training data's normalization; needs the model's mean and std (or none: 0 and 1, when the
  // dataset had no normalization).
  bool with_preprocessing = false;
  int64_t batch = 0;  // 0: a dynamic batch dimension, dim_param "batch"
};

// Builds, checks (onnx::checker::check_model) and writes the model to `path` atomically.
// The class names, arch and normalization go into metadata_props where known. Throws
// io::DataError for what cannot be exported (an adaptive pool whose sizes do not divide, a
// preprocessing graph without statistics) and std::runtime_error if the checker refuses the
// graph or the file cannot be written.
void export_onnx(const std::string& path, const StoredModel& model,
                 const OnnxExportOptions& options);

}  // namespace alexnet::trainer
