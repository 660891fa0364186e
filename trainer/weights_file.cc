// Model <-> weights file mapping.
#include "trainer/weights_file.h"

#include "io/checkpoint_file.h"
#include "io/error.h"

namespace alexnet::trainer {

void add_model(io::CheckpointWriter& w, const ModelSpec& spec, const std::vector<float>& params,
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
  io::CheckpointWriter w(path);
  add_model(w, spec, params, buffers);
  w.set_attribute("/", "config", config);
  w.commit();
}

std::string weights_arch(const std::string& path) {
  return io::CheckpointReader(path).string_attribute("/model", "arch");
}

void load_weights(const std::string& path, const ModelSpec& spec, std::vector<float>& params,
                  std::vector<float>& buffers) {
  read_model(io::CheckpointReader(path), spec, params, buffers);
}

void read_model(const io::CheckpointReader& r, const ModelSpec& spec, std::vector<float>& params,
                std::vector<float>& buffers) {
  const std::string& path = r.path();
  const std::string arch = r.string_attribute("/model", "arch");
  if (arch != spec.arch) {
    throw io::DataError("'" + path + "': weights of " + arch + ", not " + spec.arch);
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
