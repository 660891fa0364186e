// Checkpoint files: named arrays in HDF5, CRC-32 verified, atomic by fsync and rename.
#include "io/checkpoint_file.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>

#include "io/error.h"
#include "io/hdf5_util.h"

namespace alexnet::io {
namespace {

static_assert(std::endian::native == std::endian::little, "checksums are over little-endian bytes");

constexpr const char* kFormat = "alexnet-checkpoint-v1";
constexpr const char* kChecksum = "checksum_crc32";

// One array's CRC-32: over its name, its shape (int64 each) and its bytes.
uint32_t entry_crc(const std::string& name, const std::vector<int64_t>& shape, const void* data,
                   size_t bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(name.data()), static_cast<uInt>(name.size()));
  crc = crc32(crc, reinterpret_cast<const Bytef*>(shape.data()),
              static_cast<uInt>(shape.size() * sizeof(int64_t)));
  const auto* p = static_cast<const Bytef*>(data);
  for (size_t done = 0; done < bytes;) {  // crc32 takes at most 4 GiB a call
    auto piece = static_cast<uInt>(std::min<size_t>(bytes - done, size_t{1} << 30));
    crc = crc32(crc, p + done, piece);
    done += piece;
  }
  return static_cast<uint32_t>(crc);
}

// The file's checksum: CRC-32 of the entries' CRC-32s in name order.
int64_t combine(const std::map<std::string, uint32_t>& entries) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& [name, c] : entries) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(&c), sizeof(c));
  }
  return static_cast<int64_t>(crc);
}

size_t element_count(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

hid_t file_type(ArrayType t) {
  switch (t) {
    case ArrayType::kFloat32:
      return H5T_IEEE_F32LE;
    case ArrayType::kInt64:
      return H5T_STD_I64LE;
    case ArrayType::kUint8:
      return H5T_STD_U8LE;
  }
  return H5T_STD_U8LE;
}
hid_t memory_type(ArrayType t) {
  switch (t) {
    case ArrayType::kFloat32:
      return H5T_NATIVE_FLOAT;
    case ArrayType::kInt64:
      return H5T_NATIVE_INT64;
    case ArrayType::kUint8:
      return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_UINT8;
}
size_t type_size(ArrayType t) {
  return t == ArrayType::kFloat32 ? 4 : t == ArrayType::kInt64 ? 8 : 1;
}

void fsync_path(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    throw DataError("'" + path + "': fsync failed while " + what + ": " + std::strerror(errno));
  }
  ::close(fd);
}

void write_attribute(hid_t obj, const std::string& name, const AttributeValue& value) {
  if (H5Aexists(obj, name.c_str()) > 0) {
    ALEXNET_H5_CHECK(H5Adelete(obj, name.c_str()), "replacing attribute '" + name + "'");
  }
  if (const auto* s = std::get_if<std::string>(&value)) {
    h5::write_string_attribute(obj, name, *s);
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    h5::write_int_attribute(obj, name, *i);
  } else {
    h5::write_float_array_attribute(obj, name, {std::get<double>(value)});
  }
}

}  // namespace

// ---- writer ---------------------------------------------------------------------------------

struct CheckpointWriter::State {
  std::string path, temp;
  h5::Handle file;
  std::map<std::string, uint32_t> entries;
  bool committed = false;
};

CheckpointWriter::CheckpointWriter(std::string path) : state_(std::make_unique<State>()) {
  h5::quiet_errors();
  state_->path = std::move(path);
  state_->temp = state_->path + ".tmp-" + std::to_string(::getpid());
  auto parent = std::filesystem::path(state_->path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent)) {
    throw DataError("'" + state_->path + "': folder '" + parent.string() + "' does not exist");
  }
  state_->file = h5::create_file(state_->temp);
}

CheckpointWriter::~CheckpointWriter() {
  if (state_->committed) return;
  state_->file.reset();
  std::error_code ec;  // never throws
  std::filesystem::remove(state_->temp, ec);
}

namespace {
void add_array(hid_t file, std::map<std::string, uint32_t>& entries, const std::string& temp,
               const std::string& name, const std::vector<int64_t>& shape, ArrayType type,
               const void* data) {
  if (name.empty() || name[0] != '/' || name.back() == '/') {
    throw DataError("checkpoint array name '" + name + "' must be a full path like /group/name");
  }
  if (entries.count(name)) throw DataError("checkpoint array '" + name + "' written twice");
  for (int64_t d : shape) {
    if (d < 0) throw DataError("checkpoint array '" + name + "' has a negative dimension");
  }
  const std::string what = "writing '" + name + "' to '" + temp + "'";
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  h5::Handle space(ALEXNET_H5_CHECK(
      dims.empty() ? H5Screate(H5S_SCALAR)
                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      what));
  h5::Handle links(ALEXNET_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), what));
  ALEXNET_H5_CHECK(H5Pset_create_intermediate_group(links.get(), 1), what);
  h5::Handle dataset(ALEXNET_H5_CHECK(H5Dcreate2(file, name.c_str(), file_type(type), space.get(),
                                                 links.get(), H5P_DEFAULT, H5P_DEFAULT),
                                      what));
  const size_t n = element_count(shape);
  if (n > 0) {
    ALEXNET_H5_CHECK(
        H5Dwrite(dataset.get(), memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what);
  }
  entries[name] = entry_crc(name, shape, data, n * type_size(type));
}
}  // namespace

void CheckpointWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                           const float* data) {
  add_array(state_->file.get(), state_->entries, state_->temp, name, shape, ArrayType::kFloat32,
            data);
}
void CheckpointWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                           const int64_t* data) {
  add_array(state_->file.get(), state_->entries, state_->temp, name, shape, ArrayType::kInt64,
            data);
}
void CheckpointWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                           const uint8_t* data) {
  add_array(state_->file.get(), state_->entries, state_->temp, name, shape, ArrayType::kUint8,
            data);
}

void CheckpointWriter::set_attribute(const std::string& object, const std::string& name,
                                     const AttributeValue& value) {
  const std::string what = "setting attribute '" + name + "' of '" + object + "'";
  if (object != "/" && H5Lexists(state_->file.get(), object.c_str(), H5P_DEFAULT) <= 0) {
    // A group that holds no array yet: create it.
    h5::Handle links(ALEXNET_H5_CHECK(H5Pcreate(H5P_LINK_CREATE), what));
    ALEXNET_H5_CHECK(H5Pset_create_intermediate_group(links.get(), 1), what);
    h5::Handle group(ALEXNET_H5_CHECK(
        H5Gcreate2(state_->file.get(), object.c_str(), links.get(), H5P_DEFAULT, H5P_DEFAULT),
        what));
  }
  h5::Handle obj(ALEXNET_H5_CHECK(H5Oopen(state_->file.get(), object.c_str(), H5P_DEFAULT), what));
  write_attribute(obj.get(), name, value);
}

void CheckpointWriter::commit() {
  if (state_->committed) throw std::logic_error("CheckpointWriter::commit called twice");
  const std::string what = "finishing '" + state_->temp + "'";
  {
    h5::Handle root(ALEXNET_H5_CHECK(H5Gopen2(state_->file.get(), "/", H5P_DEFAULT), what));
    write_attribute(root.get(), "format", std::string(kFormat));
    write_attribute(root.get(), kChecksum, combine(state_->entries));
  }
  ALEXNET_H5_CHECK(H5Fflush(state_->file.get(), H5F_SCOPE_GLOBAL), what);
  state_->file.reset();  // close: HDF5 writes its last metadata now
  fsync_path(state_->temp, "writing the checkpoint");
  std::error_code ec;
  std::filesystem::rename(state_->temp, state_->path, ec);
  if (ec) throw DataError("'" + state_->path + "': cannot rename into place: " + ec.message());
  state_->committed = true;
  auto parent = std::filesystem::path(state_->path).parent_path();
  fsync_path(parent.empty() ? "." : parent.string(), "recording the checkpoint's name");
}

// ---- reader ---------------------------------------------------------------------------------

struct CheckpointReader::State {
  std::string path;
  h5::Handle file;
  struct Entry {
    ArrayType type;
    std::vector<int64_t> shape;
  };
  std::map<std::string, Entry> arrays;
};

namespace {

struct VisitData {
  std::vector<std::string> datasets;
};

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  (void)info;
  H5O_info_t object;
  if (H5Oget_info_by_name(group, name, &object, H5P_DEFAULT) < 0) return -1;
  if (object.type == H5O_TYPE_DATASET) {
    static_cast<VisitData*>(data)->datasets.push_back(std::string("/") + name);
  }
  return 0;
}

ArrayType array_type(hid_t dataset, const std::string& what) {
  h5::Handle type(ALEXNET_H5_CHECK(H5Dget_type(dataset), what));
  if (H5Tget_class(type.get()) == H5T_FLOAT && H5Tget_size(type.get()) == 4) {
    return ArrayType::kFloat32;
  }
  if (H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 8 &&
      H5Tget_sign(type.get()) == H5T_SGN_2) {
    return ArrayType::kInt64;
  }
  if (H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_size(type.get()) == 1 &&
      H5Tget_sign(type.get()) == H5T_SGN_NONE) {
    return ArrayType::kUint8;
  }
  throw DataError(what + ": unsupported type " + h5::type_name(type.get()));
}

void read_raw(hid_t file, const std::string& name, ArrayType type, void* out,
              const std::string& path) {
  const std::string what = "reading '" + name + "' from '" + path + "'";
  h5::Handle dataset(ALEXNET_H5_CHECK(H5Dopen2(file, name.c_str(), H5P_DEFAULT), what));
  ALEXNET_H5_CHECK(H5Dread(dataset.get(), memory_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                   what);
}

}  // namespace

CheckpointReader::CheckpointReader(const std::string& path) : state_(std::make_unique<State>()) {
  state_->path = path;
  state_->file = h5::open_file_readonly(path);
  const std::string what = "'" + path + "'";
  h5::Handle root(ALEXNET_H5_CHECK(H5Gopen2(state_->file.get(), "/", H5P_DEFAULT), what));
  if (!h5::has_attribute(root.get(), "format") ||
      h5::read_string_attribute(root.get(), "format", what) != kFormat) {
    throw DataError(what + ": not a checkpoint (no format attribute '" + kFormat + "')");
  }
  if (!h5::has_attribute(root.get(), kChecksum)) {
    throw DataError(what + ": checkpoint has no checksum (incomplete write?)");
  }
  const int64_t stored = h5::read_int_attribute(root.get(), kChecksum, what);
  VisitData visit;
  ALEXNET_H5_CHECK(H5Lvisit(state_->file.get(), H5_INDEX_NAME, H5_ITER_INC, visit_link, &visit),
                   "listing the arrays of " + what);
  std::map<std::string, uint32_t> entries;
  std::vector<uint8_t> buffer;
  for (const auto& name : visit.datasets) {
    const std::string item = what + " array '" + name + "'";
    h5::Handle dataset(
        ALEXNET_H5_CHECK(H5Dopen2(state_->file.get(), name.c_str(), H5P_DEFAULT), item));
    State::Entry entry;
    entry.type = array_type(dataset.get(), item);
    for (hsize_t d : h5::dataset_shape(dataset.get(), item)) {
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    buffer.resize(element_count(entry.shape) * type_size(entry.type));
    if (!buffer.empty()) read_raw(state_->file.get(), name, entry.type, buffer.data(), path);
    entries[name] = entry_crc(name, entry.shape, buffer.data(), buffer.size());
    state_->arrays[name] = std::move(entry);
  }
  if (combine(entries) != stored) {
    throw DataError(what + ": checksum mismatch: the checkpoint is damaged");
  }
}

CheckpointReader::~CheckpointReader() = default;
CheckpointReader::CheckpointReader(CheckpointReader&&) noexcept = default;

const std::string& CheckpointReader::path() const { return state_->path; }

std::vector<std::string> CheckpointReader::arrays() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : state_->arrays) names.push_back(name);
  return names;
}

bool CheckpointReader::has(const std::string& name) const { return state_->arrays.count(name) > 0; }

namespace {
template <typename Map>
const auto& find_entry(const Map& arrays, const std::string& name, const std::string& path) {
  auto it = arrays.find(name);
  if (it == arrays.end()) throw DataError("'" + path + "': no array '" + name + "'");
  return it->second;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

std::vector<int64_t> CheckpointReader::shape(const std::string& name) const {
  return find_entry(state_->arrays, name, state_->path).shape;
}

ArrayType CheckpointReader::type(const std::string& name) const {
  return find_entry(state_->arrays, name, state_->path).type;
}

namespace {
template <typename T>
void checked_read(const CheckpointReader& reader, hid_t file, const std::string& name,
                  ArrayType want, const std::vector<int64_t>& expected, std::span<T> out) {
  const std::string& path = reader.path();
  if (reader.type(name) != want) {
    throw DataError("'" + path + "': array '" + name + "' has another element type");
  }
  const auto stored = reader.shape(name);
  if (stored != expected) {
    throw DataError("'" + path + "': array '" + name + "' has shape " + shape_text(stored) +
                    ", expected " + shape_text(expected));
  }
  if (out.size() != element_count(expected)) {
    throw std::invalid_argument("checkpoint read of '" + name + "': buffer size mismatch");
  }
  if (!out.empty()) read_raw(file, name, want, out.data(), path);
}
}  // namespace

void CheckpointReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
                            std::span<float> out) const {
  checked_read(*this, state_->file.get(), name, ArrayType::kFloat32, expected_shape, out);
}
void CheckpointReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
                            std::span<int64_t> out) const {
  checked_read(*this, state_->file.get(), name, ArrayType::kInt64, expected_shape, out);
}
void CheckpointReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
                            std::span<uint8_t> out) const {
  checked_read(*this, state_->file.get(), name, ArrayType::kUint8, expected_shape, out);
}

namespace {
h5::Handle open_object(hid_t file, const std::string& object, const std::string& path) {
  if (object != "/" && H5Lexists(file, object.c_str(), H5P_DEFAULT) <= 0) {
    throw DataError("'" + path + "': no object '" + object + "'");
  }
  return h5::Handle(ALEXNET_H5_CHECK(H5Oopen(file, object.c_str(), H5P_DEFAULT),
                                     "opening '" + object + "' in '" + path + "'"));
}
}  // namespace

bool CheckpointReader::has_attribute(const std::string& object, const std::string& name) const {
  if (object != "/" && H5Lexists(state_->file.get(), object.c_str(), H5P_DEFAULT) <= 0) {
    return false;
  }
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  return h5::has_attribute(obj.get(), name);
}

std::string CheckpointReader::string_attribute(const std::string& object,
                                               const std::string& name) const {
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  if (!h5::has_attribute(obj.get(), name)) {
    throw DataError("'" + state_->path + "': '" + object + "' has no attribute '" + name + "'");
  }
  return h5::read_string_attribute(obj.get(), name, "'" + state_->path + "' " + object);
}

int64_t CheckpointReader::int_attribute(const std::string& object, const std::string& name) const {
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  if (!h5::has_attribute(obj.get(), name)) {
    throw DataError("'" + state_->path + "': '" + object + "' has no attribute '" + name + "'");
  }
  return h5::read_int_attribute(obj.get(), name, "'" + state_->path + "' " + object);
}

double CheckpointReader::float_attribute(const std::string& object, const std::string& name) const {
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  if (!h5::has_attribute(obj.get(), name)) {
    throw DataError("'" + state_->path + "': '" + object + "' has no attribute '" + name + "'");
  }
  auto values = h5::read_float_array_attribute(obj.get(), name, "'" + state_->path + "' " + object);
  if (values.size() != 1) {
    throw DataError("'" + state_->path + "': attribute '" + name + "' is not one number");
  }
  return values[0];
}

}  // namespace alexnet::io
