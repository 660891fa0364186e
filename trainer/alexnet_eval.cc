// alexnet-eval: loss, top-1 and top-5 of a weights file on a dataset, optionally the logits.
// Exit status: 0 done; 2 bad input or options; 1 any other failure.
#include <boost/program_options.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "io/checkpoint_file.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/loader.h"
#include "trainer/backend.h"
#include "trainer/evaluate.h"
#include "trainer/model.h"
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
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    if (vm.count("help")) {
      std::cout << "usage: alexnet-eval --weights W --data FILES... [--logits OUT.h5]\n" << d;
      return 0;
    }
    po::notify(vm);
    if (batch < 1) throw std::invalid_argument("--batch must be at least 1");
    io::Dataset dataset = io::Dataset::open(data);
    const io::DatasetMeta& m = dataset.meta();
    const std::string stored = weights_arch(weights);
    if (arch.empty()) arch = stored;
    const bool mini = arch == "alexnet-mini";
    ModelSpec spec =
        build_model(arch, m.num_classes, m.channels, mini ? m.height : 0, mini ? m.width : 0);
    std::vector<float> params, buffers;
    load_weights(weights, spec, params, buffers);
    std::unique_ptr<Backend> backend = make_backend(backend_name);
    Model model(spec, *backend, batch);
    backend->copy_to_device(model.params(), params.data(), params.size() * 4);
    backend->copy_to_device(model.buffers(), buffers.data(), buffers.size() * 4);
    io::Loader loader(dataset, eval_loader_config(model, dataset, *backend, workers));
    std::vector<float> logits;
    EvalResult r = evaluate(model, *backend, loader, logits_path.empty() ? nullptr : &logits);
    std::printf("loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)\n", r.loss, 100 * r.top1,
                100 * r.top5, static_cast<long long>(r.samples));
    if (!logits_path.empty()) {
      io::CheckpointWriter w(logits_path);
      w.add("/logits", {r.samples, m.num_classes}, logits.data());
      w.set_attribute("/", "weights", weights);
      w.commit();
    }
    return 0;
  } catch (const io::DataError& e) {
    std::cerr << "alexnet-eval: error: " << e.what() << "\n";
    return 2;
  } catch (const po::error& e) {
    std::cerr << "alexnet-eval: bad option: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "alexnet-eval: bad option: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "alexnet-eval: error: " << e.what() << "\n";
    return 1;
  }
}
