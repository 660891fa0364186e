// Model <-> weights file mapping.
#include "trainer/weights_file.h"

#include "io/array_file.h"
#include "io/augment.h"
#include "io/error.h"

namespace alexnet::trainer {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

void check_model_sizes(const std::string& path, int64_t num_classes, int64_t channels,
                       int64_t height, int64_t width) {
  auto check = [&](const char* attribute, int64_t value, int64_t max) {
    if (value < 1 || value > max) {
      throw io::DataError("'" + path + "': " + attribute + " " + std::to_string(value) +
                          " is out of range [1, " + std::to_string(max) + "]");
    }
  };
  check("num_classes", num_classes, kMaxModelClasses);
  check("in_channels", channels, io::kMaxChannels);  // what the loader can feed
  check("input_height", height, kMaxModelInputSide);
  check("input_width", width, kMaxModelInputSide);
}

void add_model(io::ArrayFileWriter& w, const ModelSpec& spec, const std::vector<float>& params,
               const std::vector<float>& buffers) {
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      const float* src = (p.is_buffer ? buffers.data() : params.data()) + p.offset;
      w.add("/model/" + p.name, p.shape, src);
    }
  }
  w.set_attribute("/model", "arch", spec.arch);
  w.set_attribute("/model", "num_classes", spec.num_classes);
  // The input the model was built for: alexnet-mini's size follows its dataset and cannot be
  // told from the arrays alone (27 to 30 px all give the same shapes), and exporters need it.
  w.set_attribute("/model", "in_channels", spec.in_channels);
  w.set_attribute("/model", "input_height", spec.height);
  w.set_attribute("/model", "input_width", spec.width);
}

void save_weights(const std::string& path, const ModelSpec& spec, const std::vector<float>& params,
                  const std::vector<float>& buffers, const std::string& config) {
  io::ArrayFileWriter w(path);
  add_model(w, spec, params, buffers);
  w.set_attribute("/", "config", config);
  w.commit();
}

void read_model(const io::ArrayFileReader& r, const ModelSpec& spec, std::vector<float>& params,
                std::vector<float>& buffers) {
  const std::string& path = r.path();
  check_model_sizes(path, spec.num_classes, spec.in_channels, spec.height, spec.width);
  const std::string arch = r.string_attribute("/model", "arch");
  if (arch != spec.arch) {
    throw io::DataError("'" + path + "': weights of " + arch + ", not " + spec.arch);
  }
  // Every tensor's stored shape first: a spec built from forged attributes (or a dataset of
  // another model) is refused before its buffers are allocated.
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      const std::string name = "/model/" + p.name;
      if (!r.has(name)) throw io::DataError("'" + path + "': no array " + name);
      const std::vector<int64_t> stored = r.shape(name);
      if (stored != p.shape) {
        throw io::DataError("'" + path + "': " + name + " has shape " + shape_text(stored) + ", " +
                            spec.arch + " of " + std::to_string(spec.num_classes) +
                            " classes and input " + std::to_string(spec.in_channels) + " x " +
                            std::to_string(spec.height) + " x " + std::to_string(spec.width) +
                            " needs " + shape_text(p.shape));
      }
    }
  }
  params.assign(static_cast<size_t>(spec.param_floats), 0.0f);
  buffers.assign(static_cast<size_t>(spec.buffer_floats), 0.0f);
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      float* dst = (p.is_buffer ? buffers.data() : params.data()) + p.offset;
      r.read("/model/" + p.name, p.shape, std::span<float>(dst, static_cast<size_t>(p.numel())));
    }
  }
}

}  // namespace alexnet::trainer
