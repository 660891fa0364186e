// libFuzzer target: an HDF5 weights file opened (its arch read) and loaded into a model
// (read_model, trainer/weights_file.h, under open_weights). The model is a tiny hand-made spec,
// so that valid seeds stay a few KB (a real AlexNet's are MBs).
#include <cstdint>
#include <exception>
#include <vector>

#include "io/array_file.h"
#include "tests/fuzz/fuzz_file.h"
#include "tests/fuzz/tiny_spec.h"
#include "trainer/weights_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const alexnet::trainer::ModelSpec spec = alexnet::fuzz::tiny_spec();
  const std::string path = alexnet::fuzz::write_input("weights.h5", data, size);
  try {
    (void)alexnet::io::ArrayFileReader(path).string_attribute("/model", "arch");
  } catch (const std::exception&) {
  }
  try {
    std::vector<float> params, buffers;
    alexnet::trainer::read_model(alexnet::io::ArrayFileReader(path), spec, params, buffers);
  } catch (const std::exception&) {
  }
  return 0;
}
