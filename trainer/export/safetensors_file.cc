// Safetensors writing and reading: the JSON header through nlohmann::json, the data as raw bytes.
#include "trainer/export/safetensors_file.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
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

size_t dtype_bytes(SafetensorsDtype dtype) { return dtype == SafetensorsDtype::kF32 ? 4 : 8; }

const char* dtype_name(SafetensorsDtype dtype) {
  return dtype == SafetensorsDtype::kF32 ? "F32" : "I64";
}

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
  uint64_t length = 0;
  char first = 0;
  if (!in.read(reinterpret_cast<char*>(&length), sizeof length) || !in.get(first)) return false;
  return length > 0 && length <= kMaxHeaderBytes && first == '{';
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
  if (length > kMaxHeaderBytes || length > file_size - 8) {
    fail(path, "header length " + std::to_string(length) + " exceeds the file (" +
                   std::to_string(file_size) + " bytes)");
  }
  std::string text(length, '\0');
  if (!in.read(text.data(), static_cast<std::streamsize>(length))) fail(path, "header unreadable");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
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
        if (!value.is_string()) fail(path, "__metadata__ value of '" + key + "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
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
    } else {
      fail(path, where + "dtype " + dtype.dump() + " is not supported (F32 or I64)");
    }
    const nlohmann::json& shape = entry["shape"];
    if (!shape.is_array()) fail(path, where + "shape is not an array");
    for (const nlohmann::json& d : shape) {
      if (!d.is_number_unsigned()) fail(path, where + "shape " + shape.dump() + " is not sizes");
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
    const int64_t n = numel_of(t.shape);
    if (n < 0 || end - begin != static_cast<uint64_t>(n) * dtype_bytes(t.dtype)) {
      fail(path, where + "data_offsets " + offsets.dump() + " do not hold shape " + shape.dump() +
                     " of " + dtype.get<std::string>());
    }
    spans.push_back({begin, end, file.tensors.size()});
    file.tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].begin < spans[i - 1].end) {
      fail(path, "tensors '" + file.tensors[spans[i - 1].index].name + "' and '" +
                     file.tensors[spans[i].index].name + "' overlap");
    }
  }
  // Read in data order, one seek per tensor (an empty tensor reads nothing).
  const auto data_start = static_cast<std::streamoff>(8 + length);
  for (const Span& s : spans) {
    SafetensorsTensor& t = file.tensors[s.index];
    const size_t n = (s.end - s.begin) / dtype_bytes(t.dtype);
    t.values.resize(n);
    in.seekg(data_start + static_cast<std::streamoff>(s.begin));
    if (t.dtype == SafetensorsDtype::kF32) {
      in.read(reinterpret_cast<char*>(t.values.data()), static_cast<std::streamsize>(n * 4));
    } else {
      std::vector<int64_t> ints(n);
      in.read(reinterpret_cast<char*>(ints.data()), static_cast<std::streamsize>(n * 8));
      std::transform(ints.begin(), ints.end(), t.values.begin(),
                     [](int64_t v) { return static_cast<float>(v); });
    }
    if (!in) fail(path, "tensor '" + t.name + "': data unreadable");
  }
  return file;
}

}  // namespace alexnet::trainer
