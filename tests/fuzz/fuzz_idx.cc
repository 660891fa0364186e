// libFuzzer target: IDX images and labels (io/idx_import.h), raw or gzip-compressed, from a file:
// the claimed counts and sizes in the header against what the file holds.
#include <cstdint>
#include <exception>

#include "io/idx_import.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alexnet::fuzz::write_input("input-idx-ubyte", data, size);
  try {
    (void)alexnet::io::read_idx_images(path);
  } catch (const std::exception&) {
  }
  try {
    (void)alexnet::io::read_idx_labels(path);
  } catch (const std::exception&) {
  }
  return 0;
}
