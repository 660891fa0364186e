// alexnet-eval: loss, top-1 and top-5 of a weights file on a dataset, optionally the logits.
// Exit status (io/cli.h): 0 done; 2 bad input or options; 1 an internal failure.
#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "io/array_file.h"
#include "io/augment.h"
#include "io/cli.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/evaluate.h"
#include "trainer/init_from.h"
#include "trainer/model.h"
#include "trainer/train_options.h"
#include "trainer/weights_file.h"

namespace po = boost::program_options;
using namespace alexnet;
using namespace alexnet::trainer;

int main(int argc, char** argv) {
  std::string arch, weights, logits_path, backend_name;
  std::vector<std::string> data;
  int64_t batch = 100;
  int workers = 2;
  po::options_description d("alexnet-eval options");
  // clang-format off
  d.add_options()
    ("model.arch", po::value(&arch), "the variant (default: the one stored in the weights)")
    ("weights", po::value(&weights)->required(), "weights file written by alexnet-train")
    ("data", po::value(&data)->multitoken()->required(), "dataset shards (files or globs)")
    ("logits", po::value(&logits_path), "write the logits, float32 [N, classes], to this HDF5 file")
    ("batch", po::value(&batch)->default_value(100), "batch size")
    ("workers", po::value(&workers)->default_value(2), "augmentation threads")
    ("backend", po::value(&backend_name)->default_value("onednn"), "onednn | reference | cuda")
    ("help,h", "this help");
  // clang-format on
  return io::run_cli("alexnet-eval", [&] {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    if (vm.count("help")) {
      std::cout << "usage: alexnet-eval --weights W --data FILES... [--logits OUT.h5]\n" << d;
      return 0;
    }
    po::notify(vm);
    require_in_range("--batch", batch, 1, kMaxBatch);
    require_in_range("--workers", workers, 1, kMaxWorkers);
    if (!arch.empty()) {
      try {
        build_model(arch, 10, 3);
      } catch (const std::invalid_argument& e) {
        throw io::OptionError(std::string("--model.arch: ") + e.what());
      }
    }
    std::unique_ptr<Backend> backend;
    try {
      backend = make_backend(backend_name);
    } catch (const std::invalid_argument& e) {
      throw io::OptionError(std::string("--backend: ") + e.what());
    }
    if (!logits_path.empty()) {  // before the evaluation, not after it
      const std::filesystem::path parent = std::filesystem::path(logits_path).parent_path();
      std::error_code ec;
      if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
        throw io::OptionError("--logits '" + logits_path + "': folder '" + parent.string() +
                              "' does not exist");
      }
    }
    io::Dataset dataset = io::Dataset::open(data);
    const io::DatasetMeta& m = dataset.meta();
    const std::string data_file = "'" + dataset.shards().front().path + "'";
    // Any weights file (ours, or a safetensors state_dict), fitted to the dataset's classes,
    // channels and, for alexnet-mini, size.
    OpenedWeights w = open_weights(weights, {arch, m.num_classes, m.channels, m.height, m.width,
                                             dataset.shards().front().path});
    const ModelSpec& spec = w.spec;
    const std::vector<float>& params = w.params;
    const std::vector<float>& buffers = w.buffers;
    // No batch larger than the dataset: nothing to gain, and memory to lose.
    batch = std::max<int64_t>(1, std::min(batch, dataset.size()));
    if (backend->host_memory()) require_batch_fits("--batch", batch, spec, false);
    Model model(spec, *backend, batch);
    backend->copy_to_device(model.params(), params.data(), params.size() * 4);
    backend->copy_to_device(model.buffers(), buffers.data(), buffers.size() * 4);
    const io::LoaderConfig lc = eval_loader_config(model, dataset, *backend, workers);
    try {  // images smaller than the model's input: the data's fault, named
      io::validate(lc.augment, m.height, m.width, m.channels);
    } catch (const io::DataError& e) {
      throw io::DataError(data_file + ": " + e.what());
    }
    io::Loader loader(dataset, lc);
    std::vector<float> logits;
    EvalResult r = evaluate(model, *backend, loader, logits_path.empty() ? nullptr : &logits);
    std::printf("loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)\n", r.loss, 100 * r.top1,
                100 * r.top5, static_cast<long long>(r.samples));
    if (!logits_path.empty()) {
      io::ArrayFileWriter out(logits_path);
      out.add("/logits", {r.samples, m.num_classes}, logits.data());
      out.set_attribute("/", "weights", weights);
      out.commit();
    }
    return 0;
  });
}
