// Loads named tensors from a safetensors or HDF5 file into a freshly initialized model.
#include "trainer/init_from.h"

#include <algorithm>
#include <map>
#include <regex>
#include <stdexcept>

#include "io/checkpoint_file.h"
#include "io/error.h"
#include "trainer/export/safetensors_file.h"

namespace alexnet::trainer {
namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// Every tensor of the file by state_dict key.
std::map<std::string, Tensor> read_tensors(const std::string& path) {
  std::map<std::string, Tensor> tensors;
  if (looks_like_safetensors(path)) {
    for (SafetensorsTensor& t : read_safetensors(path).tensors) {
      tensors[t.name] = {std::move(t.shape), std::move(t.values)};
    }
    return tensors;
  }
  const io::CheckpointReader r(path);  // verifies the checksum: a damaged file stops here
  const std::string prefix = "/model/";
  for (const std::string& name : r.arrays()) {
    if (name.rfind(prefix, 0) != 0) continue;  // optimizer state and the like
    Tensor t;
    t.shape = r.shape(name);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (r.type(name) == io::ArrayType::kFloat32) {
      t.values.resize(static_cast<size_t>(n));
      r.read(name, t.shape, std::span<float>(t.values));
    } else if (r.type(name) == io::ArrayType::kInt64) {
      std::vector<int64_t> ints(static_cast<size_t>(n));
      r.read(name, t.shape, std::span<int64_t>(ints));
      t.values.assign(ints.begin(), ints.end());
    } else {
      throw io::DataError("'" + path + "': " + name + " is uint8, not a model tensor");
    }
    tensors[name.substr(prefix.size())] = std::move(t);
  }
  if (tensors.empty()) throw io::DataError("'" + path + "': no /model arrays");
  return tensors;
}

}  // namespace

std::string init_from(const std::string& path, const std::vector<std::string>& skip,
                      const ModelSpec& spec, std::vector<float>& params,
                      std::vector<float>& buffers) {
  std::vector<std::regex> patterns;
  for (const std::string& p : skip) {
    try {
      patterns.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      throw std::invalid_argument("init.skip '" + p + "' is not a regular expression: " + e.what());
    }
  }
  std::vector<bool> pattern_used(patterns.size(), false);
  auto skipped = [&](const std::string& key) {
    bool any = false;
    for (size_t i = 0; i < patterns.size(); ++i) {
      if (std::regex_search(key, patterns[i], std::regex_constants::match_continuous)) {
        pattern_used[i] = true;
        any = true;
      }
    }
    return any;
  };

  std::map<std::string, Tensor> tensors = read_tensors(path);
  int64_t loaded = 0, fresh = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      const auto it = tensors.find(p.name);
      if (skipped(p.name)) {
        ++fresh;
        if (it != tensors.end()) tensors.erase(it);
        continue;
      }
      if (it == tensors.end()) {
        throw io::DataError("'" + path + "': no tensor " + p.name + " " + shape_string(p.shape) +
                            " for " + spec.arch + " (leave it fresh with --init.skip)");
      }
      if (it->second.shape != p.shape) {
        throw io::DataError("'" + path + "': " + p.name + " has shape " +
                            shape_string(it->second.shape) + ", the " + spec.arch +
                            " being trained needs " + shape_string(p.shape) +
                            " (leave it fresh with --init.skip)");
      }
      float* dst = (p.is_buffer ? buffers.data() : params.data()) + p.offset;
      std::copy(it->second.values.begin(), it->second.values.end(), dst);
      tensors.erase(it);
      ++loaded;
    }
  }
  // What remains is not part of this model, unless a pattern names it (the old head).
  for (const auto& [name, tensor] : tensors) {
    if (!skipped(name)) {
      throw io::DataError("'" + path + "': tensor " + name + " " + shape_string(tensor.shape) +
                          " is not a parameter of " + spec.arch);
    }
  }
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (!pattern_used[i]) {
      throw std::invalid_argument("init.skip '" + skip[i] + "' matches no parameter of " +
                                  spec.arch + " nor any tensor of '" + path + "'");
    }
  }
  std::string summary =
      "initialized from " + path + ": " + std::to_string(loaded) + " tensors loaded";
  if (fresh > 0) summary += ", " + std::to_string(fresh) + " left at fresh initialization";
  return summary;
}

}  // namespace alexnet::trainer
