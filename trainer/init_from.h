// Weights in: starting a training run from another run's weights (fine-tuning, a new head).
#pragma once

#include <string>
#include <vector>

#include "trainer/model_spec.h"

namespace alexnet::trainer {

// Overwrites the host params and buffers of `spec` (already initialized fresh) with the tensors of
// `path`: a safetensors file (PyTorch state_dict names, as alexnet-export writes them) or one of
// our HDF5 weights files or training checkpoints (their /model arrays). Recognized by content.
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
