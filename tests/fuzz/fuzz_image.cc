// libFuzzer target: JPEG and PNG decoding (io/image_decode.h), by the file's magic bytes, at full
// size and with JPEG's DCT downscaling (min_side) that folder import uses.
#include <cstdint>
#include <exception>

#include "io/image_decode.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alexnet::fuzz::write_input("image", data, size);
  for (int64_t min_side : {0, 16}) {
    try {
      (void)alexnet::io::decode_image_file(path, min_side);
    } catch (const std::exception&) {
    }
  }
  return 0;
}
