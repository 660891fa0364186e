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
// num_batches_tracked, which PyTorch's state_dict holds as an int64 scalar; F16 and BF16 (a
// model saved after .half() or .bfloat16()) are read, widened to float exactly, never written.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace alexnet::trainer {

enum class SafetensorsDtype { kF32, kI64, kF16, kBF16 };

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;  // {} for a scalar
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  // The values as floats whatever the dtype: I64 tensors are written from (and read into) floats,
  // exact for the integers our models store (step counts below 2^24); F16 and BF16 widen exactly.
  std::vector<float> values;
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;       // in file order
  std::map<std::string, std::string> metadata;  // "__metadata__"; string values only
};

// Writes PATH atomically (PATH.tmp-PID, then rename). Throws io::DataError naming the file and
// the problem (a tensor whose values do not match its shape, an F16/BF16 tensor, a failed write).
void write_safetensors(const std::string& path, const SafetensorsFile& file);

// Reads and validates a whole file: the header length within the file (and at most 100 MB, the
// Rust reader's limit), strict JSON nested no deeper than the format's, every entry an object
// with a known dtype, a shape of non-negative sizes and data offsets inside the data that match
// the shape (products checked for overflow), no two tensors overlapping, metadata values strings.
// Every size is checked before anything is allocated for it, so that nothing allocated exceeds
// the file's own size (a hostile header cannot cause bad_alloc). Anything else throws
// io::DataError("'<path>': safetensors: <what is wrong>"), one line.
SafetensorsFile read_safetensors(const std::string& path);

// Whether the file is meant as safetensors: byte 8 is '{' (the header's start) and the file does
// not start with HDF5's signature. The header length is not judged here, so that an implausible
// one is reported by read_safetensors rather than as "not an HDF5 file". False when unreadable.
bool looks_like_safetensors(const std::string& path);

// NAME fit for a one-line message: control characters as \xNN, cut after 80 characters (tensor
// names come from the file and may be anything).
std::string printable_name(const std::string& name);

}  // namespace alexnet::trainer
