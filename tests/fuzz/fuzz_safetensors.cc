// libFuzzer target: safetensors parsing (trainer/export/safetensors_file.h): the JSON header,
// dtypes, shapes and data offsets of an untrusted file.
#include <cstdint>
#include <exception>

#include "tests/fuzz/fuzz_file.h"
#include "trainer/export/safetensors_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alexnet::fuzz::write_input("model.safetensors", data, size);
  (void)alexnet::trainer::looks_like_safetensors(path);
  try {
    (void)alexnet::trainer::read_safetensors(path);
  } catch (const std::exception&) {
  }
  return 0;
}
