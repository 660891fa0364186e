// alexnet-data: make datasets from image collections (import-idx, import-cifar, import-folder)
// and check them (inspect). Exit status 0 on success, 2 with a one-line message naming the file or
// option for any bad input or option, 1 for an internal failure (io/cli.h).
#include <boost/program_options.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "io/cifar_import.h"
#include "io/cli.h"
#include "io/error.h"
#include "io/folder_import.h"
#include "io/idx_import.h"
#include "io/inspect.h"
#include "io/limits.h"
#include "io/synthetic_import.h"

namespace po = boost::program_options;
using namespace alexnet::io;

namespace {

constexpr const char* kUsage =
    "usage: alexnet-data COMMAND [options]\n"
    "commands:\n"
    "  import-idx     --images F --labels F --out PREFIX   MNIST / Fashion-MNIST IDX (.gz) files\n"
    "  import-cifar   --batches F... --out PREFIX          CIFAR-10/100 binary batches\n"
    "  import-folder  --root DIR --out PREFIX              one folder per class, JPEG/PNG\n"
    "  synthetic      --out PREFIX --count N --size S      random class patterns plus noise\n"
    "  inspect        FILE...                              schema, counts, histogram, stats\n"
    "Run 'alexnet-data COMMAND --help' for a command's options.\n";

// Presets for --class-names; any other value is a comma-separated list or @FILE (one per line).
std::vector<std::string> class_names_from(const std::string& spec) {
  if (spec.empty()) return {};
  if (spec == "fashion-mnist") {
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  }
  if (spec == "mnist") return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  std::vector<std::string> names;
  // Names go into an HDF5 attribute and every report: bounded in number and length.
  auto add = [&](std::string name, const std::string& where) {
    if (names.size() >= static_cast<size_t>(limits::kMaxClasses)) {
      throw DataError(where + ": more than " + std::to_string(limits::kMaxClasses) +
                      " class names");
    }
    if (name.size() > static_cast<size_t>(limits::kMaxNameBytes)) {
      throw DataError(where + ": class name " + std::to_string(names.size()) + " is longer than " +
                      std::to_string(limits::kMaxNameBytes) + " bytes");
    }
    names.push_back(std::move(name));
  };
  if (spec[0] == '@') {
    const std::string path = spec.substr(1), where = "'" + path + "'";
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      throw DataError(where + ": is a folder, not a file of class names");
    }
    std::ifstream in(path);
    if (!in) throw DataError(where + ": cannot read class names");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) add(std::move(line), where);
    }
    if (in.bad()) throw DataError(where + ": read error");
    if (names.empty()) throw DataError(where + ": no class names in the file");
    return names;
  }
  size_t start = 0;
  for (;;) {
    size_t comma = spec.find(',', start);
    add(spec.substr(start, comma - start), "--class-names");
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

po::options_description output_options(ImportOptions& o, std::string& compression,
                                       std::string& class_names) {
  po::options_description d("output");
  // clang-format off
  d.add_options()
    ("out", po::value(&o.out)->required(), "output prefix: writes PREFIX-00000.h5, ... "
     "(PREFIX-train-* and PREFIX-val-* with --val-fraction)")
    ("shard-size", po::value(&o.shard_size)->default_value(0),
     "samples per shard file (0: about 1 GiB of pixels per shard)")
    ("compression", po::value(&compression)->default_value("none"), "none or gzip")
    ("gzip-level", po::value(&o.gzip_level)->default_value(4), "gzip level 0-9")
    ("val-fraction", po::value(&o.val_fraction)->default_value(0.0),
     "fraction of the samples split off as a validation set")
    ("seed", po::value(&o.seed)->default_value(0), "seed of the write order and the split")
    ("no-shuffle", po::bool_switch(), "write samples in source order (default: shuffled, so "
     "that blocks read together are class-mixed)")
    ("class-names", po::value(&class_names)->default_value(""),
     "class names: comma-separated, @FILE (one per line), or a preset: fashion-mnist, mnist")
    ("quiet", po::bool_switch(), "no progress line")
    ("help,h", "this help");
  // clang-format on
  return d;
}

// Parses a command's options; returns false after printing help.
bool parse(int argc, char** argv, const po::options_description& desc, po::variables_map& vm,
           const char* command, const po::positional_options_description* positional = nullptr) {
  po::command_line_parser parser(argc, argv);
  parser.options(desc);
  if (positional != nullptr) parser.positional(*positional);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: alexnet-data " << command << " [options]\n" << desc;
    return false;
  }
  po::notify(vm);
  return true;
}

// Ranges of the shared options, checked before any file is read.
void finish_options(ImportOptions& o, const po::variables_map& vm, const std::string& compression) {
  o.compression = parse_compression(compression);
  if (o.shard_size < 0) throw OptionError("--shard-size must not be negative");
  if (o.gzip_level < 0 || o.gzip_level > 9) {
    throw OptionError("--gzip-level must be 0-9, got " + std::to_string(o.gzip_level));
  }
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0)) {
    throw OptionError("--val-fraction must be in [0, 1), got " + std::to_string(o.val_fraction));
  }
  o.shuffle = !vm["no-shuffle"].as<bool>();
  o.progress = !vm["quiet"].as<bool>();
}

void report(const ImportResult& r) {
  std::cout << "wrote " << r.train_count << " samples in " << r.train_files.size() << " file(s):";
  for (const auto& f : r.train_files) std::cout << " " << f;
  std::cout << "\n";
  if (!r.val_files.empty()) {
    std::cout << "wrote " << r.val_count << " validation samples in " << r.val_files.size()
              << " file(s):";
    for (const auto& f : r.val_files) std::cout << " " << f;
    std::cout << "\n";
  }
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  --argc;
  ++argv;  // the command's own options follow
  ImportOptions o;
  std::string compression, class_names;
  po::variables_map vm;

  if (command == "import-idx") {
    std::string images, labels;
    int64_t num_classes = 0;
    po::options_description desc = output_options(o, compression, class_names);
    // clang-format off
    desc.add_options()
      ("images", po::value(&images)->required(), "IDX images file (idx3-ubyte, .gz or plain)")
      ("labels", po::value(&labels)->required(), "IDX labels file (idx1-ubyte, .gz or plain)")
      ("num-classes", po::value(&num_classes)->default_value(0),
       "number of classes (0: from --class-names, else max label + 1)");
    // clang-format on
    if (!parse(argc, argv, desc, vm, "import-idx")) return 0;
    finish_options(o, vm, compression);
    if (num_classes < 0 || num_classes > limits::kMaxClasses) {
      throw OptionError("--num-classes must be in [0, " + std::to_string(limits::kMaxClasses) +
                        "], got " + std::to_string(num_classes));
    }
    std::vector<std::string> names = class_names_from(class_names);
    if (!names.empty() && num_classes > 0 && static_cast<int64_t>(names.size()) != num_classes) {
      throw OptionError("--class-names gives " + std::to_string(names.size()) +
                        " names for --num-classes " + std::to_string(num_classes));
    }
    report(import_idx(images, labels, num_classes, names, o));
  } else if (command == "import-cifar") {
    std::vector<std::string> batches;
    std::string labels;
    po::options_description desc = output_options(o, compression, class_names);
    // clang-format off
    desc.add_options()
      ("batches", po::value(&batches)->multitoken()->required(), "CIFAR binary batch files")
      ("labels", po::value(&labels)->default_value("fine"), "CIFAR-100: fine or coarse labels");
    // clang-format on
    if (!parse(argc, argv, desc, vm, "import-cifar")) return 0;
    finish_options(o, vm, compression);
    if (labels != "fine" && labels != "coarse") {
      throw OptionError("--labels must be fine or coarse, got '" + labels + "'");
    }
    report(import_cifar(batches, labels == "fine" ? CifarLabels::kFine : CifarLabels::kCoarse,
                        class_names_from(class_names), o));
  } else if (command == "import-folder") {
    std::string root;
    FolderImportOptions f;
    po::options_description desc = output_options(o, compression, class_names);
    // clang-format off
    desc.add_options()
      ("root", po::value(&root)->required(), "folder with one sub-folder of images per class")
      ("size", po::value(&f.size)->default_value(256),
       "resize the shorter side to SIZE, then center-crop SIZE x SIZE")
      ("threads", po::value(&f.threads)->default_value(0), "decoding threads (0: all cores)")
      ("skip-bad", po::bool_switch(&f.skip_bad), "warn about and leave out unreadable images");
    // clang-format on
    if (!parse(argc, argv, desc, vm, "import-folder")) return 0;
    finish_options(o, vm, compression);
    if (!class_names.empty()) {
      throw OptionError("--class-names: import-folder takes class names from the folders");
    }
    if (f.size < 1 || f.size > limits::kMaxImageSide) {
      throw OptionError("--size must be in [1, " + std::to_string(limits::kMaxImageSide) +
                        "], got " + std::to_string(f.size));
    }
    if (f.threads < 0) throw OptionError("--threads must not be negative");
    report(import_folder(root, f, o));
  } else if (command == "synthetic") {
    SyntheticOptions s;
    po::options_description desc = output_options(o, compression, class_names);
    // clang-format off
    desc.add_options()
      ("count", po::value(&s.count)->default_value(s.count), "samples")
      ("size", po::value(&s.size)->default_value(s.size), "image height and width")
      ("channels", po::value(&s.channels)->default_value(s.channels), "1 or 3")
      ("num-classes", po::value(&s.num_classes)->default_value(s.num_classes), "classes");
    // clang-format on
    if (!parse(argc, argv, desc, vm, "synthetic")) return 0;
    finish_options(o, vm, compression);
    if (!class_names.empty()) throw OptionError("--class-names: synthetic datasets have none");
    if (s.count < 1 || s.count > limits::kMaxShardSamples) {
      throw OptionError("--count must be in [1, " + std::to_string(limits::kMaxShardSamples) + "]");
    }
    if (s.size < 1 || s.size > limits::kMaxImageSide) {
      throw OptionError("--size must be in [1, " + std::to_string(limits::kMaxImageSide) + "]");
    }
    if (!limits::valid_channels(s.channels)) throw OptionError("--channels must be 1 or 3");
    if (s.num_classes < 1 || s.num_classes > limits::kMaxClasses) {
      throw OptionError("--num-classes must be in [1, " + std::to_string(limits::kMaxClasses) +
                        "]");
    }
    report(import_synthetic(s, o));
  } else if (command == "inspect") {
    std::vector<std::string> files;
    po::options_description desc("inspect");
    // clang-format off
    desc.add_options()
      ("files", po::value(&files)->multitoken()->required(), "shard files or globs")
      ("help,h", "this help");
    // clang-format on
    po::positional_options_description positional;
    positional.add("files", -1);
    if (!parse(argc, argv, desc, vm, "inspect FILE...", &positional)) return 0;
    inspect_dataset(files, std::cout);
  } else {
    throw OptionError("unknown command '" + command + "' (see alexnet-data --help)");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return run_cli("alexnet-data", [&] { return run(argc, argv); });
}
