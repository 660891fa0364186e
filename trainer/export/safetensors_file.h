// The safetensors format (https://github.com/huggingface/safetensors), written and read by our own
// code: it is a layout, not a library. A file is
//   8 bytes      N, the header's length, unsigned little-endian
//   N bytes      a JSON object: {"<name>": {"dtype": "F32", "shape": [...], "data_offsets":
//                [begin, end]}, ..., "__metadata__": {"<key>": "<string>", ...}}, padded with
//                spaces so that the data starts 8-byte aligned
//   the data     every tensor's bytes, little-endian, row-major; offsets count from the data's
//                start, and the tensors cover it end to end in header order (no gaps: the Rust
//                reader behind safetensors.torch refuses holes)
// Only the dtypes our models need are supported: F32 for parameters and I64 for batch norm's
// num_batches_tracked, which PyTorch's state_dict holds as an int64 scalar.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace alexnet::trainer {

enum class SafetensorsDtype { kF32, kI64 };

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;  // {} for a scalar
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  // The values as floats whatever the dtype: I64 tensors are written from (and read into) floats,
  // exact for the integers our models store (step counts below 2^24).
  std::vector<float> values;
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;       // in file order
  std::map<std::string, std::string> metadata;  // "__metadata__"; string values only
};

// Writes PATH atomically (PATH.tmp-PID, then rename). Throws io::DataError naming the file and
// the problem (a tensor whose values do not match its shape, a failed write).
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Reads and validates a whole file: the header length within the file, strict JSON, every entry
// an object with a known dtype, a shape of non-negative sizes and data offsets inside the data
// that match the shape, no two tensors overlapping, metadata values strings. Anything else throws
// io::DataError("'<path>': safetensors: <what is wrong>").
SafetensorsFile read_safetensors(const std::string& path);

// Whether the file starts like a safetensors file (a plausible header length, then '{'), as
// opposed to HDF5; false for an unreadable file.
bool looks_like_safetensors(const std::string& path);

}  // namespace alexnet::trainer
