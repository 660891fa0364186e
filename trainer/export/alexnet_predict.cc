// alexnet-predict: the top classes of a weights file or checkpoint for JPEG/PNG images, or for
// every sample of a dataset.
//
// Images go through what the training data went through: import-folder's resize of the shorter
// side to S and center crop S x S (io/image_resize.h), then the evaluation loader's center crop
// of the model's input and normalization (pixel - mean) / std (io/augment.h, the same code).
// S defaults to 256 for the full-size variants (import-folder's default, from which they crop
// 224 or 227) and to the input size for alexnet-mini (its datasets are stored at that size). A
// 1-channel model gets the images in gray (ITU-R 601 luma, as PIL's convert("L")).
// Exit status (io/cli.h): 0 done; 2 bad input or options; 1 an internal failure.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "io/augment.h"
#include "io/cli.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/image_decode.h"
#include "io/image_resize.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/evaluate.h"
#include "trainer/export/stored_model.h"
#include "trainer/model.h"
#include "trainer/train_options.h"

namespace po = boost::program_options;
using namespace alexnet;
using namespace alexnet::trainer;

namespace {

// The largest --resize: the decoded and squared image is resize^2 x 3 bytes (48 MiB here), as
// big as the data layer's largest stored image side.
constexpr int64_t kMaxResize = 4096;

struct Ranked {
  int64_t index;
  double probability;
};

// The k most probable classes of one row of logits (softmax in double), most probable first.
std::vector<Ranked> top_k(const float* logits, int64_t classes, int64_t k) {
  const double max = *std::max_element(logits, logits + classes);
  std::vector<Ranked> all(static_cast<size_t>(classes));
  double sum = 0;
  for (int64_t c = 0; c < classes; ++c) {
    all[static_cast<size_t>(c)] = {c, std::exp(static_cast<double>(logits[c]) - max)};
    sum += all[static_cast<size_t>(c)].probability;
  }
  for (Ranked& r : all) r.probability /= sum;
  const auto n = static_cast<size_t>(std::min(k, classes));
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [](const Ranked& a, const Ranked& b) {
                      return a.probability > b.probability ||
                             (a.probability == b.probability && a.index < b.index);
                    });
  all.resize(n);
  return all;
}

class Printer {
 public:
  Printer(bool json, int64_t top, std::vector<std::string> names)
      : json_(json), top_(top), names_(std::move(names)) {}

  // `item` names the image (or the sample); `extra` goes into the JSON object too.
  void print(const std::string& key, const nlohmann::ordered_json& item, const float* logits,
             int64_t classes) const {
    const std::vector<Ranked> ranked = top_k(logits, classes, top_);
    if (json_) {
      nlohmann::ordered_json line = {{key, item}};
      nlohmann::ordered_json top = nlohmann::ordered_json::array();
      for (const Ranked& r : ranked) {
        top.push_back(
            {{"class", r.index}, {"name", name(r.index)}, {"probability", r.probability}});
      }
      line["top"] = top;
      // File names need not be UTF-8 (nor class names): invalid bytes become U+FFFD instead of
      // nlohmann's type_error.
      std::cout << line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
                << "\n";
      return;
    }
    std::cout << (item.is_string() ? item.get<std::string>() : key + " " + item.dump()) << "\n";
    for (const Ranked& r : ranked) {
      std::printf("  %7.3f%%  %3lld  %s\n", 100 * r.probability, static_cast<long long>(r.index),
                  name(r.index).c_str());
    }
    std::fflush(stdout);
  }

 private:
  std::string name(int64_t c) const {
    return c < static_cast<int64_t>(names_.size()) ? names_[static_cast<size_t>(c)]
                                                   : std::to_string(c);
  }
  bool json_;
  int64_t top_;
  std::vector<std::string> names_;
};

// One image as the model's input (`dst`: C x H x W floats in the backend's layout).
void prepare_image(const std::string& path, const ModelSpec& spec, int64_t resize,
                   const io::AugmentConfig& config, float* dst) {
  const io::DecodedImage image = io::decode_image_file(path, resize);
  std::vector<uint8_t> square(static_cast<size_t>(resize * resize * 3));
  io::resize_shorter_and_center_crop(image.pixels.data(), image.height, image.width, 3, resize,
                                     square.data());
  const int64_t c = spec.in_channels;
  if (c == 1) {  // luma with PIL's fixed-point weights and rounding
    for (int64_t i = 0; i < resize * resize; ++i) {
      const uint8_t* p = &square[static_cast<size_t>(3 * i)];
      square[static_cast<size_t>(i)] =
          static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    }
    square.resize(static_cast<size_t>(resize * resize));
  }
  const io::AugmentDraw center = io::draw_augmentation(config, resize, resize, c, 0, 0, 0);
  io::augment_image(square.data(), resize, resize, c, config, center, dst);
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, mean, std, backend_name;
  std::vector<std::string> images, data;
  bool json = false;
  int64_t top = 5, resize = 0, batch = 32;
  po::options_description d("alexnet-predict options");
  // clang-format off
  d.add_options()
    ("checkpoint", po::value(&checkpoint)->required(), "weights file or training checkpoint")
    ("image", po::value(&images)->multitoken(), "JPEG or PNG files (also given without --image)")
    ("data", po::value(&data)->multitoken(), "classify every sample of these dataset shards instead")
    ("json", po::bool_switch(&json), "one JSON object a line per image")
    ("top", po::value(&top)->default_value(top), "classes shown per image")
    ("resize", po::value(&resize)->default_value(0),
     "shorter side before the center crops (0: 256, or the input size for alexnet-mini)")
    ("mean", po::value(&mean),
     "per-channel mean in pixel units, comma-separated (default: the training data's)")
    ("std", po::value(&std), "per-channel std in pixel units (default: the training data's)")
    ("batch", po::value(&batch)->default_value(batch), "images per forward pass")
    ("backend", po::value(&backend_name)->default_value("onednn"), "onednn | reference | cuda")
    ("help,h", "this help");
  // clang-format on
  po::positional_options_description positional;
  positional.add("image", -1);
  return io::run_cli("alexnet-predict", [&] {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(d).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: alexnet-predict --checkpoint FILE IMAGE... [--json] [--top K]\n"
                   "       alexnet-predict --checkpoint FILE --data SHARDS... [--json]\n"
                << d;
      return 0;
    }
    po::notify(vm);
    if (images.empty() == data.empty()) {
      throw io::OptionError("give images or --data, not both nor neither");
    }
    require_in_range("--top", top, 1, int64_t{1} << 24);
    require_in_range("--batch", batch, 1, kMaxBatch);
    require_in_range("--resize", resize, 0, kMaxResize);
    StoredModel m = load_stored_model(checkpoint);
    set_normalization(m, mean, std);
    const ModelSpec& spec = m.spec;
    std::unique_ptr<Backend> backend;
    try {
      backend = make_backend(backend_name);
    } catch (const std::invalid_argument& e) {
      throw io::OptionError(std::string("--backend: ") + e.what());
    }

    if (!data.empty()) {  // a dataset: alexnet-eval's pipeline, then the top classes per sample
      io::Dataset dataset = io::Dataset::open(data);
      const io::DatasetMeta& meta = dataset.meta();
      if (meta.channels != spec.in_channels || meta.num_classes != spec.num_classes) {
        throw io::DataError("'" + dataset.shards().front().path +
                            "': " + std::to_string(meta.channels) + "-channel images of " +
                            std::to_string(meta.num_classes) + " classes; the model takes " +
                            std::to_string(spec.in_channels) + " channels, " +
                            std::to_string(spec.num_classes) + " classes");
      }
      const int64_t data_batch = std::max<int64_t>(1, std::min(batch, dataset.size()));
      if (backend->host_memory()) require_batch_fits("--batch", data_batch, spec, false);
      Model model(spec, *backend, data_batch);
      backend->copy_to_device(model.params(), m.params.data(), m.params.size() * 4);
      backend->copy_to_device(model.buffers(), m.buffers.data(),
                              static_cast<size_t>(spec.buffer_floats) * 4);
      const io::LoaderConfig lc = eval_loader_config(model, dataset, *backend, 2);
      try {  // images smaller than the model's input: the data's fault, named
        io::validate(lc.augment, meta.height, meta.width, meta.channels);
      } catch (const io::DataError& e) {
        throw io::DataError("'" + dataset.shards().front().path + "': " + e.what());
      }
      io::Loader loader(dataset, lc);
      std::vector<float> logits;
      evaluate(model, *backend, loader, &logits);
      const Printer printer(json, top, meta.class_names.empty() ? m.class_names : meta.class_names);
      const auto labels = dataset.labels();
      for (int64_t i = 0; i < dataset.size(); ++i) {
        const nlohmann::ordered_json item = {{"index", i},
                                             {"label", labels[static_cast<size_t>(i)]}};
        printer.print("sample", item, logits.data() + i * spec.num_classes, spec.num_classes);
      }
      return 0;
    }

    if (!m.data_known) {
      throw io::DataError("'" + checkpoint + "': the training data's mean and std are unknown " +
                          "(its files cannot be opened): give --mean and --std");
    }
    if (resize == 0) resize = spec.arch == "alexnet-mini" ? std::max(spec.height, spec.width) : 256;
    if (resize < spec.height || resize < spec.width) {
      throw io::OptionError("--resize " + std::to_string(resize) + " is smaller than the model's " +
                            std::to_string(spec.height) + " x " + std::to_string(spec.width) +
                            " input");
    }
    io::AugmentConfig config;
    config.crop_height = spec.height;
    config.crop_width = spec.width;
    config.mean.assign(m.mean.begin(), m.mean.end());
    config.std.assign(m.std.begin(), m.std.end());
    config.layout = backend->activation_layout() == ActivationLayout::kNHWC ? io::Layout::kNHWC
                                                                            : io::Layout::kNCHW;
    io::validate(config, resize, resize, spec.in_channels);
    const int64_t n = static_cast<int64_t>(images.size());
    const int64_t model_batch = std::min(batch, n);
    if (backend->host_memory()) require_batch_fits("--batch", model_batch, spec, false);
    Model model(spec, *backend, model_batch);
    backend->copy_to_device(model.params(), m.params.data(), m.params.size() * 4);
    backend->copy_to_device(model.buffers(), m.buffers.data(),
                            static_cast<size_t>(spec.buffer_floats) * 4);
    const int64_t per_image = spec.in_channels * spec.height * spec.width;
    std::vector<float> input(static_cast<size_t>(model_batch * per_image), 0.0f);
    std::vector<float> logits(static_cast<size_t>(model_batch * spec.num_classes));
    auto device_input = backend->allocate(input.size() * sizeof(float));
    const Printer printer(json, top, m.class_names);
    for (int64_t first = 0; first < n; first += model_batch) {
      const int64_t count = std::min(model_batch, n - first);
      for (int64_t i = 0; i < count; ++i) {
        prepare_image(images[static_cast<size_t>(first + i)], spec, resize, config,
                      input.data() + i * per_image);
      }
      backend->copy_to_device(device_input.get(), input.data(), input.size() * sizeof(float));
      const float* out = model.forward(static_cast<const float*>(device_input.get()), false);
      backend->copy_to_host(logits.data(), out, logits.size() * sizeof(float));
      for (int64_t i = 0; i < count; ++i) {
        printer.print("image", images[static_cast<size_t>(first + i)],
                      logits.data() + i * spec.num_classes, spec.num_classes);
      }
    }
    return 0;
  });
}
