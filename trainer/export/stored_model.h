// A trained model as our files store it, ready for export and inference: the spec rebuilt from a
// weights file or training checkpoint (trainer/weights_file.h, trainer/checkpoint.h), its
// parameters, and what is known of the data it was trained on.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "trainer/export/safetensors_file.h"
#include "trainer/model_spec.h"

namespace alexnet::trainer {

struct StoredModel {
  ModelSpec spec;
  std::vector<float> params, buffers;  // host copies, sized for spec
  // The training data's per-channel normalization in pixel units and its class names; empty
  // where unknown. `data_known` tells "no normalization" (the dataset had none: 0 and 1) from
  // "nothing known" (its files could not be read).
  std::vector<double> mean, std;
  std::vector<std::string> class_names;
  bool data_known = false;
};

// Opens and verifies the file through open_weights (trainer/init_from.h): a weights file or
// training checkpoint, or a safetensors state_dict (ours or PyTorch's), the spec rebuilt as it
// documents. The data statistics come from a safetensors file's metadata (mean, std,
// class_names, as to_safetensors writes them), or from the dataset named by an HDF5 file's
// /@config [data] train line, when its files can still be opened. Anything that fits no spec,
// an unknown arch or a damaged file throws io::DataError naming the file.
StoredModel load_stored_model(const std::string& path);

// Overrides from the command line: "--mean 72.9,72.9,72.9" style lists, comma-separated (a single
// value is used for every channel); a dataset (its shards or globs) for all three. Throws
// io::DataError for a bad list or a channel count that is not the model's.
void set_normalization(StoredModel& m, const std::string& mean, const std::string& std);
void set_data_from(StoredModel& m, const std::vector<std::string>& dataset_files);

// PyTorch's state_dict of the model as safetensors tensors: float32 parameters and buffers,
// batch norm's num_batches_tracked as an int64 scalar (as torch stores it), so that
// torch's load_state_dict takes the file as it is. Metadata: arch, num_classes, in_channels,
// input_height, input_width, and mean, std, class_names (comma-separated) where known.
SafetensorsFile to_safetensors(const StoredModel& m);

// "a,b,c": how lists travel in metadata (numbers printed to round-trip exactly).
std::string comma_list(const std::vector<double>& values);
std::string comma_list(const std::vector<std::string>& names);

}  // namespace alexnet::trainer
