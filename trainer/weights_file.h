// The weights file: every parameter and buffer of a model under /model, named by PyTorch's
// state_dict keys in PyTorch's layouts, with /model@arch (an array file, io/array_file.h).
#pragma once

#include <string>
#include <vector>

#include "io/array_file.h"
#include "trainer/model_spec.h"

namespace alexnet::trainer {

// params and buffers: host copies of the model's flat buffers. `config` is stored as /@config.
void save_weights(const std::string& path, const ModelSpec& spec, const std::vector<float>& params,
                  const std::vector<float>& buffers, const std::string& config);

// The same arrays and /model attributes inside a larger file (the training checkpoint).
void add_model(io::ArrayFileWriter& w, const ModelSpec& spec, const std::vector<float>& params,
               const std::vector<float>& buffers);
// Fills host params and buffers (sized for `spec`) from the file's /model; the file's arch and
// every tensor's shape must match (io::DataError naming the file and the tensor otherwise),
// checked before anything is allocated: the file bounds what is read. The tools open weights
// through open_weights (trainer/init_from.h), which takes safetensors too and calls this.
void read_model(const io::ArrayFileReader& r, const ModelSpec& spec, std::vector<float>& params,
                std::vector<float>& buffers);

// Bounds on the sizes a model file's /model attributes give (num_classes, in_channels,
// input_height, input_width), checked before a model is built from them: a forged or damaged
// attribute must end in a one-line io::DataError, not in std::bad_alloc.
inline constexpr int64_t kMaxModelClasses = int64_t{1} << 24;  // as datasets (io/dataset.cc)
inline constexpr int64_t kMaxModelInputSide = 4096;            // pixels
void check_model_sizes(const std::string& path, int64_t num_classes, int64_t channels,
                       int64_t height, int64_t width);

}  // namespace alexnet::trainer
