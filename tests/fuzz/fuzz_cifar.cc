// libFuzzer target: a CIFAR-10 or CIFAR-100 batch file imported (io/cifar_import.h) into a
// dataset in the scratch directory; the record size and labels come from the input.
#include <cstdint>
#include <exception>
#include <filesystem>

#include "io/cifar_import.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alexnet::fuzz::write_input("data_batch_1.bin", data, size);
  alexnet::io::ImportOptions options;
  options.out = alexnet::fuzz::scratch_dir() + "/out/cifar";
  options.progress = false;
  options.val_fraction = size % 2 == 0 ? 0.5 : 0.0;  // both the split and the unsplit paths
  std::filesystem::create_directories(alexnet::fuzz::scratch_dir() + "/out");
  for (auto which : {alexnet::io::CifarLabels::kFine, alexnet::io::CifarLabels::kCoarse}) {
    try {
      (void)alexnet::io::import_cifar({path}, which, {}, options);
    } catch (const std::exception&) {
    }
    std::error_code ec;
    std::filesystem::remove_all(alexnet::fuzz::scratch_dir() + "/out", ec);
    std::filesystem::create_directories(alexnet::fuzz::scratch_dir() + "/out");
  }
  return 0;
}
