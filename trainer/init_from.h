// Weights in, for every tool: opening a model from any file we take (a safetensors state_dict,
// ours or PyTorch's, or one of our HDF5 weights files or training checkpoints), and starting a
// training run from another run's weights (fine-tuning, a new head).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "trainer/model_spec.h"

namespace alexnet::trainer {

// What the caller already knows of the model; empty or 0: from the file.
struct WeightsRequest {
  std::string arch;  // --model.arch; the file's own arch, if it names one, must agree
  int64_t num_classes = 0, in_channels = 0;
  // alexnet-mini's input size (its layers follow its data: alexnet-eval passes its dataset's).
  // The full-size variants take the size the file stores, else their default.
  int64_t height = 0, width = 0;
  // The file the request's sizes come from (alexnet-eval's dataset): named instead of the
  // weights when they do not fit the arch (images too small for it).
  std::string sizes_from;
};

struct OpenedWeights {
  ModelSpec spec;
  std::vector<float> params, buffers;  // host copies, sized for spec
  // What the file says beyond the tensors: an HDF5 file's /@config as "config"; a safetensors
  // file's __metadata__ (our exporter's arch, num_classes, mean, std, class_names, ...).
  std::map<std::string, std::string> info;
};

// The one way every tool opens weights. The kind is told by content: HDF5's signature, or
// safetensors' 8-byte header length followed by '{'. The model is rebuilt from, in order:
//   arch         the request's, else the file's (HDF5 /model@arch, safetensors metadata "arch"),
//                else the one variant whose state_dict the file's names and shapes are;
//   num_classes  the request's, else the last classifier weight's rows;
//   in_channels  the request's, else conv1's weight (features.0.weight, never grouped);
//   input size   as WeightsRequest says; the file's (HDF5 attributes, safetensors metadata)
//                where stored; for alexnet-mini otherwise the first of 28, 32 and then every
//                size up to 512 px whose flatten width is classifier.0.weight's.
// Then as strictly as --init.from: every parameter and buffer (batch norm's running_mean,
// running_var, num_batches_tracked included) present with its shape, no other tensor, float
// values (F32; F16, BF16 widened; I64 only for num_batches_tracked). Throws io::DataError, one
// line naming the file (and the tensor), for anything else, a damaged file or an unknown arch.
OpenedWeights open_weights(const std::string& path, const WeightsRequest& request = {});

// Overwrites the host params and buffers of `spec` (already initialized fresh) with the tensors of
// `path` (any file open_weights takes), for alexnet-train --init.from.
//
// skip: ECMAScript regular expressions matched against the start of each state_dict key
// (std::regex_search with match_continuous, so a plain prefix such as "classifier.6" works as a
// pattern too); a key that any of them matches keeps its fresh initialization, and the file's
// tensor of that name, if any, is ignored (a head for another number of classes).
//
// Every other parameter and buffer of the model must be in the file with the same shape, and
// the file must hold no other tensor (a foreign model is refused rather than half-loaded).
// Throws io::DataError naming the file and the parameter for a missing tensor, a shape mismatch
// or an unexpected tensor, and std::invalid_argument for a pattern that is not a valid regular
// expression or matches no key of the model or the file (most likely a typo).
// Returns a one-line summary for the run log.
std::string init_from(const std::string& path, const std::vector<std::string>& skip,
                      const ModelSpec& spec, std::vector<float>& params,
                      std::vector<float>& buffers);

}  // namespace alexnet::trainer
