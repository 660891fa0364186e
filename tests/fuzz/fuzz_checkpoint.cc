// libFuzzer target: a checkpoint file opened and every array and attribute read
// (io/array_file.h ArrayFileReader).
#include <cstdint>
#include <exception>
#include <vector>

#include "io/array_file.h"
#include "tests/fuzz/fuzz_file.h"

namespace {

template <typename T>
void read_array(const alexnet::io::ArrayFileReader& r, const std::string& name,
                const std::vector<int64_t>& shape, int64_t n) {
  std::vector<T> out(static_cast<size_t>(n));
  r.read(name, shape, std::span<T>(out));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using alexnet::io::ArrayType;
  const std::string path = alexnet::fuzz::write_input("checkpoint.h5", data, size);
  try {
    const alexnet::io::ArrayFileReader r(path);
    for (const std::string& name : r.arrays()) {
      try {
        const std::vector<int64_t> shape = r.shape(name);
        int64_t n = 1;
        for (int64_t d : shape) n = d > 0 && n <= (int64_t{1} << 20) / d ? n * d : -1;
        if (n < 0) continue;  // the harness's own bound: our buffers, sized from the file
        switch (r.type(name)) {
          case ArrayType::kFloat32:
            read_array<float>(r, name, shape, n);
            break;
          case ArrayType::kInt64:
            read_array<int64_t>(r, name, shape, n);
            break;
          case ArrayType::kUint8:
            read_array<uint8_t>(r, name, shape, n);
            break;
        }
      } catch (const std::exception&) {
      }
    }
    // What the trainer's resume (trainer/checkpoint.cc) and the weights' reader ask for, each
    // attribute as every type: a wrong type must throw.
    for (const char* object : {"/", "/model", "/optimizer", "/schedule"}) {
      for (const char* attr : {"config", "arch", "name", "step", "num_classes", "lr"}) {
        if (!r.has_attribute(object, attr)) continue;
        try {
          (void)r.string_attribute(object, attr);
        } catch (const std::exception&) {
        }
        try {
          (void)r.int_attribute(object, attr);
        } catch (const std::exception&) {
        }
        try {
          (void)r.float_attribute(object, attr);
        } catch (const std::exception&) {
        }
      }
    }
  } catch (const std::exception&) {
  }
  return 0;
}
