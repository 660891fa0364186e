// libFuzzer target: an HDF5 dataset shard opened, read and inspected (io/dataset.h, io/inspect.h).
// Malformed files must end in an exception, never a crash, hang or huge allocation.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <sstream>
#include <vector>

#include "io/dataset.h"
#include "io/inspect.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = alexnet::fuzz::write_input("shard.h5", data, size);
  try {
    const auto ds = alexnet::io::Dataset::open({path});
    (void)ds.class_histogram();
    if (!ds.shards().empty() && ds.shards()[0].num_samples > 0) {
      const int64_t count = std::min<int64_t>(ds.shards()[0].num_samples, 2);
      std::vector<uint8_t> pixels(static_cast<size_t>(count) * ds.sample_bytes());
      ds.read_images(0, 0, count, pixels.data());
    }
  } catch (const std::exception&) {
  }
  try {
    std::ostringstream out;
    alexnet::io::inspect_dataset({path}, out);
  } catch (const std::exception&) {
  }
  return 0;
}
