// An array file: named arrays and attributes in HDF5, written atomically and verified on load.
// The storage under checkpoints (model weights, optimizer state, RNG states, data position),
// weights files and logits; the callers choose the names, and this file knows nothing of models
// or training. Layout (h5dump / h5py readable):
//   /<group>/<name>  one dataset per array (float32, int64 or uint8), e.g. /model/features.0.weight
//   attributes on any group or on the root, e.g. /model@arch = "alexnet-torchvision"
//   /@format = "alexnet-checkpoint-v2" (named when checkpoints were its only use; existing files
//   carry it, so it stays), /@checksum_crc32: a CRC-32 over one record per array
//   (full name, element type, shape, bytes) and one per attribute (object path, name, type,
//   value; all but the checksum itself, /@format included), in the order of array names and
//   then of object paths and attribute names; checked when the file is opened, so an edited
//   attribute (arch, position, config) is refused like a damaged array. Attribute records hash
//   values, not storage: h5py rewriting the same value as another string or integer type keeps
//   the file valid. Files of "alexnet-checkpoint-v1" (the CRC over arrays only; attributes
//   unchecked) still open, verified by that rule.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace alexnet::io {

using AttributeValue = std::variant<std::string, int64_t, double>;

// Collects arrays, then commit() writes PATH.tmp-PID, flushes and fsyncs it, renames it to PATH
// and fsyncs the folder: a crash or a full disk at any point leaves either the old PATH or the
// new one, never a torn file. Without commit(), the destructor removes the temporary.
class ArrayFileWriter {
 public:
  explicit ArrayFileWriter(std::string path);
  ~ArrayFileWriter();
  ArrayFileWriter(const ArrayFileWriter&) = delete;
  ArrayFileWriter& operator=(const ArrayFileWriter&) = delete;

  // `name` is a full path such as "/model/features.0.weight"; groups are created as needed.
  // The data is written now (nothing is kept by reference after the call).
  void add(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  void add(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data);
  void add(const std::string& name, const std::vector<int64_t>& shape, const uint8_t* data);
  // On a group ("/", "/model") or on an array written before; `object` is "/" or a full path
  // without a trailing slash (the checksum names it so). /@format and /@checksum_crc32 are
  // commit()'s.
  void set_attribute(const std::string& object, const std::string& name,
                     const AttributeValue& value);
  void commit();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

enum class ArrayType { kFloat32, kInt64, kUint8 };

// Opens and verifies an array file: format attribute and checksum (v2: arrays and attributes; v1:
// arrays). A damaged, truncated, edited or foreign file throws DataError naming it.
class ArrayFileReader {
 public:
  explicit ArrayFileReader(const std::string& path);
  ~ArrayFileReader();
  ArrayFileReader(ArrayFileReader&&) noexcept;

  const std::string& path() const;
  std::vector<std::string> arrays() const;  // full names, sorted
  bool has(const std::string& name) const;
  std::vector<int64_t> shape(const std::string& name) const;
  ArrayType type(const std::string& name) const;
  // Reads into out; throws DataError unless the stored shape equals `expected_shape`.
  void read(const std::string& name, const std::vector<int64_t>& expected_shape,
            std::span<float> out) const;
  void read(const std::string& name, const std::vector<int64_t>& expected_shape,
            std::span<int64_t> out) const;
  void read(const std::string& name, const std::vector<int64_t>& expected_shape,
            std::span<uint8_t> out) const;
  bool has_attribute(const std::string& object, const std::string& name) const;
  std::string string_attribute(const std::string& object, const std::string& name) const;
  int64_t int_attribute(const std::string& object, const std::string& name) const;
  double float_attribute(const std::string& object, const std::string& name) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace alexnet::io
