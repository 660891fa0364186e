// Weights in: any supported file read into a model, its spec rebuilt or given.
#include "trainer/init_from.h"

#include <algorithm>
#include <limits>
#include <regex>
#include <stdexcept>

#include "io/array_file.h"
#include "io/error.h"
#include "trainer/export/safetensors_file.h"

namespace alexnet::trainer {
namespace {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
  bool integer = false;  // stored as I64 / int64: only a batch norm count may be
};

// A file's tensors by state_dict key, and what it says of the model (see OpenedWeights::info;
// for HDF5 also its /model attributes under the safetensors metadata's names).
struct FileContents {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> info;
};

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw io::DataError("'" + path + "': " + what);
}

std::string comma_archs() {
  std::string s;
  for (const std::string& arch : model_archs()) s += (s.empty() ? "" : ", ") + arch;
  return s;
}

FileContents read_safetensors_contents(const std::string& path) {
  FileContents c;
  SafetensorsFile file = read_safetensors(path);
  for (SafetensorsTensor& t : file.tensors) {
    c.tensors[t.name] = {std::move(t.shape), std::move(t.values),
                         t.dtype == SafetensorsDtype::kI64};
  }
  c.info = std::move(file.metadata);
  return c;
}

FileContents read_hdf5_contents(const std::string& path) {
  const io::ArrayFileReader r(path);  // verifies the checksum: a damaged file stops here
  FileContents c;
  const std::string prefix = "/model/";
  for (const std::string& name : r.arrays()) {
    if (name.rfind(prefix, 0) != 0) continue;  // optimizer state and the like
    Tensor t;
    t.shape = r.shape(name);
    int64_t n = 1;
    for (int64_t d : t.shape) {
      // Far beyond any model: a corrupt shape, refused before it is allocated.
      if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) {
        fail(path, printable_name(name) + " has an implausible shape " + shape_string(t.shape));
      }
      n *= d;
    }
    if (r.type(name) == io::ArrayType::kFloat32) {
      t.values.resize(static_cast<size_t>(n));
      r.read(name, t.shape, std::span<float>(t.values));
    } else if (r.type(name) == io::ArrayType::kInt64) {
      std::vector<int64_t> ints(static_cast<size_t>(n));
      r.read(name, t.shape, std::span<int64_t>(ints));
      t.values.assign(ints.begin(), ints.end());
      t.integer = true;
    } else {
      fail(path, printable_name(name) + " is uint8, not a model tensor");
    }
    c.tensors[name.substr(prefix.size())] = std::move(t);
  }
  if (c.tensors.empty()) fail(path, "no /model arrays (not a model file?)");
  if (r.has_attribute("/model", "arch")) c.info["arch"] = r.string_attribute("/model", "arch");
  for (const char* key : {"num_classes", "in_channels", "input_height", "input_width"}) {
    if (r.has_attribute("/model", key)) {
      c.info[key] = std::to_string(r.int_attribute("/model", key));
    }
  }
  if (r.has_attribute("/", "config")) c.info["config"] = r.string_attribute("/", "config");
  return c;
}

FileContents read_contents(const std::string& path) {
  return looks_like_safetensors(path) ? read_safetensors_contents(path) : read_hdf5_contents(path);
}

// Bounds on the sizes a file gives (metadata, attributes, or the shapes of empty tensors, which
// the file's size does not bound), checked before a model is built from them.
constexpr int64_t kMaxClasses = int64_t{1} << 24, kMaxChannels = 4096, kMaxSide = 4096;

int64_t bounded(const std::string& path, const std::string& what, int64_t v, int64_t max) {
  if (v < 1 || v > max) {
    fail(path, what + " " + std::to_string(v) + " is outside 1 to " + std::to_string(max));
  }
  return v;
}

// A positive integer the file states (metadata or attribute), 0 where absent.
int64_t info_int(const std::string& path, const FileContents& c, const std::string& key,
                 int64_t max) {
  const auto it = c.info.find(key);
  if (it == c.info.end()) return 0;
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size()) {
    fail(path, "metadata " + key + " '" + printable_name(it->second) + "' is not an integer");
  }
  return bounded(path, key, v, max);
}

const Tensor& tensor_of(const std::string& path, const FileContents& c, const std::string& name,
                        size_t rank, const std::string& arch) {
  const auto it = c.tensors.find(name);
  if (it == c.tensors.end()) fail(path, "no tensor " + name + " for " + arch);
  if (it->second.shape.size() != rank) {
    fail(path, name + " has shape " + shape_string(it->second.shape) + ", not " +
                   std::to_string(rank) + "-D as " + arch + "'s");
  }
  return it->second;
}

ModelSpec build_or_fail(const std::string& path, const std::string& arch, int64_t classes,
                        int64_t channels, int64_t height, int64_t width) {
  try {
    return build_model(arch, classes, channels, height, width);
  } catch (const std::invalid_argument& e) {
    fail(path, e.what());
  }
}

// The spec of `arch` for the file's tensors, as open_weights documents.
ModelSpec spec_for(const std::string& path, const std::string& arch, const WeightsRequest& want,
                   const FileContents& c) {
  // Which tensors tell the classes, channels and flatten width: the variant's first conv and
  // its first and last linear layers (their names do not depend on the sizes).
  const ModelSpec probe = build_or_fail(path, arch, 1, 1, 0, 0);
  std::string conv1, fc1, head;
  for (const LayerSpec& l : probe.layers) {
    if (l.kind == LayerKind::kConv && conv1.empty()) conv1 = l.params.front().name;
    if (l.kind == LayerKind::kLinear) {
      if (fc1.empty()) fc1 = l.params.front().name;
      head = l.params.front().name;
    }
  }
  int64_t classes =
      want.num_classes > 0 ? want.num_classes : info_int(path, c, "num_classes", kMaxClasses);
  if (classes == 0) {
    classes = bounded(path, "classes", tensor_of(path, c, head, 2, arch).shape[0], kMaxClasses);
  }
  int64_t channels =
      want.in_channels > 0 ? want.in_channels : info_int(path, c, "in_channels", kMaxChannels);
  if (channels == 0) {
    channels = bounded(path, "channels", tensor_of(path, c, conv1, 4, arch).shape[1], kMaxChannels);
  }
  const bool mini = arch == "alexnet-mini";
  int64_t height = info_int(path, c, "input_height", kMaxSide);
  int64_t width = info_int(path, c, "input_width", kMaxSide);
  if (mini && want.height > 0 && want.width > 0) height = want.height, width = want.width;
  if (!mini || (height > 0 && width > 0)) {
    const bool requested =
        want.num_classes > 0 || want.in_channels > 0 || (mini && want.height > 0 && want.width > 0);
    return build_or_fail(requested && !want.sizes_from.empty() ? want.sizes_from : path, arch,
                         classes, channels, height, width);
  }
  // alexnet-mini from a file that does not store its size: 27 to 30 px all give the same shapes,
  // so the usual sizes are tried first.
  const std::vector<int64_t> stored = tensor_of(path, c, fc1, 2, arch).shape;
  std::vector<int64_t> candidates = {28, 32};
  for (int64_t s = 8; s <= 512; ++s) candidates.push_back(s);
  for (int64_t s : candidates) {
    try {
      ModelSpec spec = build_model(arch, classes, channels, s, s);
      if (spec.find_param(fc1)->shape == stored) return spec;
    } catch (const std::invalid_argument&) {
      // too small for the variant: try the next size
    }
  }
  fail(path, fc1 + " " + shape_string(stored) + " fits " + arch +
                 " at no square input size up to 512 px");
}

// Whether the file's tensors are exactly the spec's state_dict, names and shapes.
bool fits_exactly(const ModelSpec& spec, const FileContents& c) {
  size_t total = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      const auto it = c.tensors.find(p.name);
      if (it == c.tensors.end() || it->second.shape != p.shape) return false;
      ++total;
    }
  }
  return total == c.tensors.size();
}

// Checks, then copies, the file's tensors into the spec's buffers, erasing each one used; with
// `allocate`, the buffers are sized for the spec first, once every tensor is known to be in the
// file with its shape (so that a spec built from forged sizes is refused before it is allocated).
// `skipped` keys keep their fresh values (counted in `fresh`); `hint` ends the messages of a
// missing or misshapen tensor. Tensors left over are the caller's to judge.
template <typename Skipped>
int64_t fill_model(const std::string& path, FileContents& c, const ModelSpec& spec,
                   const std::string& role, std::vector<float>& params, std::vector<float>& buffers,
                   bool allocate, Skipped skipped, int64_t& fresh, const std::string& hint) {
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      if (skipped(p.name)) continue;
      const auto it = c.tensors.find(p.name);
      if (it == c.tensors.end()) {
        fail(path, "no tensor " + p.name + " " + shape_string(p.shape) + " for " + role + hint);
      }
      if (it->second.shape != p.shape) {
        fail(path, p.name + " has shape " + shape_string(it->second.shape) + ", " + role +
                       " needs " + shape_string(p.shape) + hint);
      }
      // PyTorch keeps num_batches_tracked as int64; everything else must be floating point.
      const bool count = l.kind == LayerKind::kBatchNorm && p.shape.empty();
      if (it->second.integer && !count) {
        fail(path, p.name + " holds integers (I64), not a float tensor");
      }
    }
  }
  if (allocate) {
    params.assign(static_cast<size_t>(spec.param_floats), 0.0f);
    buffers.assign(static_cast<size_t>(spec.buffer_floats), 0.0f);
  }
  int64_t loaded = 0;
  for (const LayerSpec& l : spec.layers) {
    for (const ParamSpec& p : l.params) {
      const auto it = c.tensors.find(p.name);
      if (skipped(p.name)) {
        ++fresh;
        if (it != c.tensors.end()) c.tensors.erase(it);
        continue;
      }
      float* dst = (p.is_buffer ? buffers.data() : params.data()) + p.offset;
      std::copy(it->second.values.begin(), it->second.values.end(), dst);
      c.tensors.erase(it);
      ++loaded;
    }
  }
  return loaded;
}

void refuse_leftovers(const std::string& path, const FileContents& c, const std::string& arch) {
  if (c.tensors.empty()) return;
  const auto& [name, tensor] = *c.tensors.begin();
  fail(path, "tensor " + printable_name(name) + " " + shape_string(tensor.shape) +
                 " is not a parameter of " + arch);
}

// The variant whose state_dict the file is, for a file that names none.
std::string infer_arch(const std::string& path, const FileContents& c, const WeightsRequest& want) {
  std::vector<std::string> exact;
  // The nearest variant, should none fit: the fewest names in one but not the other (alexnet-
  // keras's are alexnet-mini's and two more).
  std::string nearest;
  int64_t nearest_score = std::numeric_limits<int64_t>::min();
  for (const std::string& arch : model_archs()) {
    int64_t common = 0, total = 0;
    for (const LayerSpec& l : build_model(arch, 1, 1).layers) {
      for (const ParamSpec& p : l.params) common += c.tensors.count(p.name) > 0, ++total;
    }
    const int64_t score =
        common - (total - common) - (static_cast<int64_t>(c.tensors.size()) - common);
    if (common > 0 && score > nearest_score) nearest = arch, nearest_score = score;
    try {
      if (fits_exactly(spec_for(path, arch, want, c), c)) exact.push_back(arch);
    } catch (const io::DataError&) {
      // the tensors that size this variant are missing or misshapen: not this one
    }
  }
  if (exact.size() == 1) return exact.front();
  if (exact.size() > 1) {
    fail(path, "the tensors fit " + exact[0] + " and " + exact[1] + " alike: name one with " +
                   "--model.arch");
  }
  // The nearest variant's first difference tells the user what is wrong.
  if (!nearest.empty()) {
    try {
      FileContents copy = c;
      const ModelSpec spec = spec_for(path, nearest, want, c);
      std::vector<float> params, buffers;
      int64_t fresh = 0;
      fill_model(
          path, copy, spec, nearest, params, buffers, true,
          [](const std::string&) { return false; }, fresh, "");
      refuse_leftovers(path, copy, nearest);
    } catch (const io::DataError& e) {
      throw io::DataError(std::string(e.what()) + " (the file names no arch; " + nearest +
                          " is the nearest variant)");
    }
  }
  fail(path, "the tensors fit no variant (" + comma_archs() + ") and the file names no arch");
}

}  // namespace

OpenedWeights open_weights(const std::string& path, const WeightsRequest& request) {
  FileContents c = read_contents(path);
  const auto stored = c.info.find("arch");
  std::string arch = request.arch;
  if (stored != c.info.end()) {
    if (!arch.empty() && arch != stored->second) {
      fail(path, "weights of " + printable_name(stored->second) + ", not " + arch);
    }
    arch = stored->second;
  }
  if (arch.empty()) arch = infer_arch(path, c, request);
  OpenedWeights w;
  w.spec = spec_for(path, arch, request, c);
  int64_t fresh = 0;
  fill_model(
      path, c, w.spec, w.spec.arch, w.params, w.buffers, true,
      [](const std::string&) { return false; }, fresh, "");
  refuse_leftovers(path, c, w.spec.arch);
  w.info = std::move(c.info);
  return w;
}

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

  FileContents c = read_contents(path);
  int64_t fresh = 0;
  const int64_t loaded =
      fill_model(path, c, spec, "the " + spec.arch + " being trained", params, buffers, false,
                 skipped, fresh, " (leave it fresh with --init.skip)");
  // What remains is not part of this model, unless a pattern names it (the old head).
  for (const auto& [name, tensor] : c.tensors) {
    if (!skipped(name)) {
      fail(path, "tensor " + printable_name(name) + " " + shape_string(tensor.shape) +
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
