// The weights file: every parameter and buffer of a model under /model, named by PyTorch's
// state_dict keys in PyTorch's layouts, with /model@arch (a checkpoint file, io/checkpoint_file.h).
#pragma once

#include <string>
#include <vector>

#include "io/checkpoint_file.h"
#include "trainer/model_spec.h"

namespace alexnet::trainer {

// params and buffers: host copies of the model's flat buffers. `config` is stored as /@config.
void save_weights(const std::string& path, const ModelSpec& spec, const std::vector<float>& params,
                  const std::vector<float>& buffers, const std::string& config);

// Fills host params and buffers (sized for `spec`) from a weights file; the file's arch and every
// tensor's shape must match (io::DataError naming the file and the tensor otherwise).
void load_weights(const std::string& path, const ModelSpec& spec, std::vector<float>& params,
                  std::vector<float>& buffers);

// The same arrays and /model attributes inside a larger file (the training checkpoint).
void add_model(io::CheckpointWriter& w, const ModelSpec& spec, const std::vector<float>& params,
               const std::vector<float>& buffers);
void read_model(const io::CheckpointReader& r, const ModelSpec& spec, std::vector<float>& params,
                std::vector<float>& buffers);

// The arch a weights file was saved with.
std::string weights_arch(const std::string& path);

}  // namespace alexnet::trainer
