// Rebuilding a model from a weights file or checkpoint, and its state_dict as safetensors.
#include "trainer/export/stored_model.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "io/dataset.h"
#include "io/error.h"
#include "trainer/init_from.h"

namespace alexnet::trainer {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  return parts;
}

// The value of `key` in `section` of the INI text config_text() writes; empty when absent.
std::string config_value(const std::string& config, const std::string& section,
                         const std::string& key) {
  std::string current;
  for (const std::string& line : split(config, '\n')) {
    if (!line.empty() && line.front() == '[') {
      current = line.substr(1, line.find(']') - 1);
    } else if (current == section && line.rfind(key + " = ", 0) == 0) {
      return line.substr(key.size() + 3);
    }
  }
  return {};
}

}  // namespace

StoredModel load_stored_model(const std::string& path) {
  OpenedWeights w = open_weights(path);  // any kind of file, verified and rebuilt there
  StoredModel m;
  m.spec = std::move(w.spec);
  m.params = std::move(w.params);
  m.buffers = std::move(w.buffers);

  // Our own safetensors export carries the statistics in its metadata.
  const auto meta = [&](const char* key) {
    const auto it = w.info.find(key);
    return it == w.info.end() ? std::string() : it->second;
  };
  if (!meta("mean").empty() && !meta("std").empty()) {
    try {
      set_normalization(m, meta("mean"), meta("std"));
    } catch (const io::DataError& e) {
      throw io::DataError("'" + path + "': metadata " + e.what());
    }
    if (!meta("class_names").empty()) m.class_names = split(meta("class_names"), ',');
    return m;
  }
  const std::string train = config_value(meta("config"), "data", "train");
  std::vector<std::string> files;
  for (const std::string& f : split(train, ' ')) {
    if (!f.empty()) files.push_back(f);
  }
  if (!files.empty()) {
    try {
      set_data_from(m, files);
    } catch (const io::DataError&) {
      // The training data moved or is on another machine: the statistics stay unknown and
      // the tools ask for --mean/--std or --data where they need them.
    }
  }
  return m;
}

void set_data_from(StoredModel& m, const std::vector<std::string>& dataset_files) {
  const io::Dataset dataset = io::Dataset::open(dataset_files);
  const io::DatasetMeta& meta = dataset.meta();
  if (meta.channels != m.spec.in_channels) {
    throw io::DataError("'" + dataset.shards().front().path +
                        "': " + std::to_string(meta.channels) +
                        "-channel images, the model takes " + std::to_string(m.spec.in_channels));
  }
  m.mean = meta.mean;
  m.std = meta.std;
  m.class_names = meta.class_names;
  m.data_known = true;
}

void set_normalization(StoredModel& m, const std::string& mean, const std::string& std) {
  auto parse = [&](const std::string& text, const char* what) {
    std::vector<double> values;
    for (const std::string& part : split(text, ',')) {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(part, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != part.size()) {
        throw io::DataError(std::string("--") + what + " '" + text +
                            "': not comma-separated numbers");
      }
      // Pixel units: a finite number of a plausible size (stod takes "nan" and "inf").
      if (!std::isfinite(v) || std::abs(v) > 1e6) {
        throw io::DataError(std::string("--") + what + " '" + text +
                            "': values must be finite numbers of pixel units (|v| <= 1e6)");
      }
      values.push_back(v);
    }
    if (values.size() == 1) values.assign(static_cast<size_t>(m.spec.in_channels), values[0]);
    if (static_cast<int64_t>(values.size()) != m.spec.in_channels) {
      throw io::DataError(std::string("--") + what + " '" + text +
                          "': " + std::to_string(values.size()) + " values for " +
                          std::to_string(m.spec.in_channels) + " channels");
    }
    return values;
  };
  if (!mean.empty()) m.mean = parse(mean, "mean");
  if (!std.empty()) {
    m.std = parse(std, "std");
    for (double s : m.std) {
      if (!(s > 0)) throw io::DataError("--std '" + std + "': values must be positive");
    }
  }
  if (!mean.empty() || !std.empty()) m.data_known = true;
}

SafetensorsFile to_safetensors(const StoredModel& m) {
  SafetensorsFile file;
  for (const LayerSpec& l : m.spec.layers) {
    for (const ParamSpec& p : l.params) {
      SafetensorsTensor t;
      t.name = p.name;
      t.shape = p.shape;
      // Batch norm's one scalar is num_batches_tracked, an int64 in PyTorch.
      const bool count = l.kind == LayerKind::kBatchNorm && p.shape.empty();
      t.dtype = count ? SafetensorsDtype::kI64 : SafetensorsDtype::kF32;
      const float* src = (p.is_buffer ? m.buffers.data() : m.params.data()) + p.offset;
      t.values.assign(src, src + p.numel());
      file.tensors.push_back(std::move(t));
    }
  }
  const ModelSpec& s = m.spec;
  file.metadata = {{"format", "pt"},  // safetensors.torch's tag for a PyTorch state_dict
                   {"arch", s.arch},
                   {"num_classes", std::to_string(s.num_classes)},
                   {"in_channels", std::to_string(s.in_channels)},
                   {"input_height", std::to_string(s.height)},
                   {"input_width", std::to_string(s.width)}};
  if (!m.mean.empty()) file.metadata["mean"] = comma_list(m.mean);
  if (!m.std.empty()) file.metadata["std"] = comma_list(m.std);
  if (!m.class_names.empty()) file.metadata["class_names"] = comma_list(m.class_names);
  return file;
}

std::string comma_list(const std::vector<double>& values) {
  std::string s;
  for (double v : values) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", v);
    if (!s.empty()) s += ',';
    s += text;
  }
  return s;
}

std::string comma_list(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) {
    if (!s.empty()) s += ',';
    s += n;
  }
  return s;
}

}  // namespace alexnet::trainer
