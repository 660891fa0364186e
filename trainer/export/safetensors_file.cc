// Safetensors writing and reading: the JSON header through nlohmann::json, the data as raw bytes.
#include "trainer/export/safetensors_file.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "io/error.h"

namespace alexnet::trainer {
namespace {

// The data is written and read with memcpy: the host must already be little-endian.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

// The Rust reader's limit; a larger header is a corrupt length field, not a real header.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

size_t dtype_bytes(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return 4;
    case SafetensorsDtype::kI64:
      return 8;
    case SafetensorsDtype::kF16:
    case SafetensorsDtype::kBF16:
      return 2;
  }
  return 1;
}

const char* dtype_name(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return "F32";
    case SafetensorsDtype::kI64:
      return "I64";
    case SafetensorsDtype::kF16:
      return "F16";
    case SafetensorsDtype::kBF16:
      return "BF16";
  }
  return "?";
}

// IEEE binary16 to float, exactly (every half is a float).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa x 2^-24
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
  }
  if (exponent == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// The header is an object of objects of arrays of numbers; anything nested deeper is not a
// header, and refusing it while parsing keeps dump() (recursive) off hostile nesting.
constexpr int kMaxHeaderDepth = 4;
struct TooDeep {};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw io::DataError("'" + path + "': safetensors: " + what);
}

// Elements of a shape, or -1 when the product overflows.
int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > std::numeric_limits<int64_t>::max() / d)) return -1;
    n *= d;
  }
  return n;
}

}  // namespace

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  // ordered_json keeps the tensors in the order given (the state_dict's), which is also the data
  // order, so that the header reads like the model.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : file.metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const SafetensorsTensor& t : file.tensors) {
    if (t.name.empty() || t.name == "__metadata__") fail(path, "bad tensor name '" + t.name + "'");
    if (header.contains(t.name)) fail(path, "tensor '" + t.name + "' given twice");
    if (t.dtype != SafetensorsDtype::kF32 && t.dtype != SafetensorsDtype::kI64) {
      fail(path, "tensor '" + t.name + "': only F32 and I64 are written");
    }
    const int64_t n = numel_of(t.shape);
    if (n < 0 || static_cast<size_t>(n) != t.values.size()) {
      fail(path, "tensor '" + t.name + "' has " + std::to_string(t.values.size()) +
                     " values for its shape");
    }
    const uint64_t end = offset + static_cast<uint64_t>(n) * dtype_bytes(t.dtype);
    header[t.name] = {
        {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned

  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot create " + tmp + ": " + std::strerror(errno));
    const uint64_t length = text.size();
    out.write(reinterpret_cast<const char*>(&length), sizeof length);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const SafetensorsTensor& t : file.tensors) {
      if (t.dtype == SafetensorsDtype::kF32) {
        out.write(reinterpret_cast<const char*>(t.values.data()),
                  static_cast<std::streamsize>(t.values.size() * sizeof(float)));
      } else {
        std::vector<int64_t> ints(t.values.size());
        std::transform(t.values.begin(), t.values.end(), ints.begin(),
                       [](float v) { return static_cast<int64_t>(v); });
        out.write(reinterpret_cast<const char*>(ints.data()),
                  static_cast<std::streamsize>(ints.size() * sizeof(int64_t)));
      }
    }
    out.flush();
    if (!out) {
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      fail(path, "writing " + tmp + " failed: " + why);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(path, "renaming " + tmp + " to it failed: " + why);
  }
}

bool looks_like_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char start[9] = {};
  if (!in.read(start, sizeof start)) return false;
  static constexpr char kHdf5Signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  return std::memcmp(start, kHdf5Signature, 8) != 0 && start[8] == '{';
}

std::string printable_name(const std::string& name) {
  constexpr size_t kMax = 80;
  std::string s;
  for (size_t i = 0; i < name.size() && i < kMax; ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    } else {
      s += static_cast<char>(c);
    }
  }
  if (name.size() > kMax) s += "...";
  return s;
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    throw io::DataError("'" + path + "': cannot open: " + std::strerror(errno));
  }
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint64_t length = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&length), sizeof length)) {
    fail(path, "shorter than the 8-byte header length");
  }
  if (length > file_size - 8) {
    fail(path, "header length " + std::to_string(length) + " exceeds the file (" +
                   std::to_string(file_size) + " bytes)");
  }
  if (length > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(length) + " exceeds the format's limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  }
  std::string text(length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length))) fail(path, "header unreadable");
  nlohmann::json header;
  try {
    header =
        nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
          if (depth > kMaxHeaderDepth) throw TooDeep{};
          return true;
        });
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  } catch (const TooDeep&) {
    fail(path, "header nested deeper than a safetensors header");
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  // The tensors in data order, as (begin, end, index into the file's tensors).
  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  SafetensorsFile file;
  std::vector<Span> spans;
  const uint64_t data_size = file_size - 8 - length;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(path, "__metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          fail(path, "__metadata__ value of '" + printable_name(key) + "' is not a string");
        }
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + printable_name(name) + "': ";
    if (!entry.is_object() || entry.size() != 3 || !entry.contains("dtype") ||
        !entry.contains("shape") || !entry.contains("data_offsets")) {
      fail(path, where + "expected an object of dtype, shape and data_offsets");
    }
    SafetensorsTensor t;
    t.name = name;
    const nlohmann::json& dtype = entry["dtype"];
    if (dtype == "F32") {
      t.dtype = SafetensorsDtype::kF32;
    } else if (dtype == "I64") {
      t.dtype = SafetensorsDtype::kI64;
    } else if (dtype == "F16") {
      t.dtype = SafetensorsDtype::kF16;
    } else if (dtype == "BF16") {
      t.dtype = SafetensorsDtype::kBF16;
    } else {
      fail(path, where + "dtype " + printable_name(dtype.dump()) +
                     " is not supported (F32, F16, BF16 or I64)");
    }
    const nlohmann::json& shape = entry["shape"];
    if (!shape.is_array()) fail(path, where + "shape is not an array");
    for (const nlohmann::json& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{1} << 62) {
        fail(path, where + "shape " + printable_name(shape.dump()) + " is not sizes");
      }
      t.shape.push_back(d.get<int64_t>());
    }
    const nlohmann::json& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail(path, where + "data_offsets is not [begin, end]");
    }
    const auto begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      fail(path, where + "data_offsets " + offsets.dump() + " outside the " +
                     std::to_string(data_size) + " bytes of data");
    }
    // Compared by division: the element count times the dtype's size may overflow.
    const int64_t n = numel_of(t.shape);
    const uint64_t bytes = end - begin, size = dtype_bytes(t.dtype);
    if (n < 0 || bytes % size != 0 || bytes / size != static_cast<uint64_t>(n)) {
      fail(path, where + "data_offsets " + offsets.dump() + " do not hold shape " +
                     printable_name(shape.dump()) + " of " + dtype_name(t.dtype));
    }
    spans.push_back({begin, end, file.tensors.size()});
    file.tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      fail(path, "tensors '" + printable_name(file.tensors[spans[i - 1].index].name) + "' and '" +
                     printable_name(file.tensors[spans[i].index].name) + "' overlap");
    }
  }
  // Read in data order, one seek per tensor (an empty tensor reads nothing). The spans lie in
  // the file and do not overlap: what is allocated here is at most twice the file's size.
  const auto data_start = static_cast<std::streamoff>(8 + length);
  for (const Span& s : spans) {
    SafetensorsTensor& t = file.tensors[s.index];
    const size_t n = (s.end - s.begin) / dtype_bytes(t.dtype);
    t.values.resize(n);
    in.seekg(data_start + static_cast<std::streamoff>(s.begin));
    if (t.dtype == SafetensorsDtype::kF32) {
      in.read(reinterpret_cast<char*>(t.values.data()), static_cast<std::streamsize>(n * 4));
    } else if (t.dtype == SafetensorsDtype::kI64) {
      std::vector<int64_t> ints(n);
      in.read(reinterpret_cast<char*>(ints.data()), static_cast<std::streamsize>(n * 8));
      std::transform(ints.begin(), ints.end(), t.values.begin(),
                     [](int64_t v) { return static_cast<float>(v); });
    } else {
      std::vector<uint16_t> halves(n);
      in.read(reinterpret_cast<char*>(halves.data()), static_cast<std::streamsize>(n * 2));
      if (t.dtype == SafetensorsDtype::kF16) {
        std::transform(halves.begin(), halves.end(), t.values.begin(), half_to_float);
      } else {  // bfloat16 is a float's upper half
        std::transform(halves.begin(), halves.end(), t.values.begin(), [](uint16_t v) {
          return std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
        });
      }
    }
    if (!in) fail(path, "tensor '" + printable_name(t.name) + "': data unreadable");
  }
  return file;
}

}  // namespace alexnet::trainer
