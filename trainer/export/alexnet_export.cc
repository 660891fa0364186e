// alexnet-export: a weights file or training checkpoint as ONNX (for onnxruntime and other
// inference engines) or safetensors (PyTorch state_dict names, for torch and for --init.from).
// Exit status (io/cli.h): 0 done; 2 bad input or options (a damaged file, an unknown arch, what
// cannot be exported); 1 an internal failure.
#include <boost/program_options.hpp>

#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include "io/cli.h"
#include "io/error.h"
#include "trainer/export/onnx_export.h"
#include "trainer/export/safetensors_file.h"
#include "trainer/export/stored_model.h"

namespace po = boost::program_options;
using namespace alexnet;
using namespace alexnet::trainer;

int main(int argc, char** argv) {
  std::string checkpoint, format, out, batch_dim, mean, std;
  std::vector<std::string> data;
  bool with_preprocessing = false;
  po::options_description d("alexnet-export options");
  // clang-format off
  d.add_options()
    ("checkpoint", po::value(&checkpoint)->required(),
     "weights file (run.dir/weights.h5) or training checkpoint")
    ("format", po::value(&format)->required(), "onnx | safetensors")
    ("out", po::value(&out)->required(), "the file to write")
    ("with-preprocessing", po::bool_switch(&with_preprocessing),
     "onnx: the graph takes 0-255 pixel values and normalizes them (Sub mean, Div std)")
    ("batch-dim", po::value(&batch_dim)->default_value("dynamic"),
     "onnx: dynamic (dim_param \"batch\") or a fixed batch size")
    ("data", po::value(&data)->multitoken(),
     "dataset shards to take mean, std and class names from (default: the training data named "
     "in the file's config, when it can be opened)")
    ("mean", po::value(&mean), "per-channel mean in pixel units, comma-separated (overrides)")
    ("std", po::value(&std), "per-channel std in pixel units, comma-separated (overrides)")
    ("help,h", "this help");
  // clang-format on
  return io::run_cli("alexnet-export", [&] {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, d), vm);
    if (vm.count("help")) {
      std::cout << "usage: alexnet-export --checkpoint FILE --format onnx|safetensors --out FILE\n"
                << d;
      return 0;
    }
    po::notify(vm);
    if (format != "onnx" && format != "safetensors") {
      throw io::OptionError("--format '" + format + "': expected onnx or safetensors");
    }
    OnnxExportOptions options;
    options.with_preprocessing = with_preprocessing;
    if (batch_dim != "dynamic") {
      size_t used = 0;
      try {
        options.batch = std::stoll(batch_dim, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      // ONNX runtimes take int32 dimensions.
      if (used != batch_dim.size() || options.batch < 1 ||
          options.batch > std::numeric_limits<int32_t>::max()) {
        throw io::OptionError("--batch-dim '" + batch_dim +
                              "': expected dynamic or a batch size in [1, 2147483647]");
      }
    }
    if (format == "safetensors" && (with_preprocessing || batch_dim != "dynamic")) {
      throw io::OptionError("--with-preprocessing and --batch-dim apply to onnx only");
    }
    StoredModel model = load_stored_model(checkpoint);
    if (!data.empty()) set_data_from(model, data);
    set_normalization(model, mean, std);
    if (format == "onnx") {
      export_onnx(out, model, options);
    } else {
      write_safetensors(out, to_safetensors(model));
    }
    std::cout << "wrote " << out << ": " << model.spec.arch << ", " << model.spec.num_classes
              << " classes, input " << model.spec.in_channels << " x " << model.spec.height << " x "
              << model.spec.width << "\n";
    return 0;
  });
}
