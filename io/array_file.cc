// Array files: named arrays and attributes in HDF5, CRC-32 verified, atomic by fsync and rename.
#include "io/array_file.h"

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

constexpr const char* kFormatV1 = "alexnet-checkpoint-v1";
constexpr const char* kFormatV2 = "alexnet-checkpoint-v2";  // written
constexpr const char* kChecksum = "checksum_crc32";

// ---- v1: arrays only (read, never written) --------------------------------------------------

// One array's CRC-32: over its name, its shape (int64 each) and its bytes. Kept as it was, so that
// old files verify: for a scalar (empty shape) crc32(crc, Z_NULL, 0) returns the initial value,
// so the name drops out of the entry.
uint32_t v1_entry_crc(const std::string& name, const std::vector<int64_t>& shape, const void* data,
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

// The file's checksum (both versions): CRC-32 of the records' CRC-32s in key order.
int64_t combine(const std::map<std::string, uint32_t>& records) {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (const auto& [key, c] : records) {
    crc = crc32(crc, reinterpret_cast<const Bytef*>(&c), sizeof(c));
  }
  return static_cast<int64_t>(crc);
}

// ---- v2: every array and every attribute ----------------------------------------------------

// A running CRC-32 over length-prefixed fields. Empty pieces are skipped: zlib's
// crc32(crc, Z_NULL, 0) would restart the sum.
class Crc {
 public:
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    for (size_t done = 0; done < n;) {  // crc32 takes at most 4 GiB a call
      auto piece = static_cast<uInt>(std::min<size_t>(n - done, size_t{1} << 30));
      crc_ = crc32(crc_, p + done, piece);
      done += piece;
    }
  }
  void u64(uint64_t v) { bytes(&v, sizeof v); }
  void text(const std::string& s) {
    u64(s.size());
    bytes(s.data(), s.size());
  }
  uint32_t value() const { return static_cast<uint32_t>(crc_); }

 private:
  uLong crc_ = crc32(0L, Z_NULL, 0);
};

// Record keys: arrays and attributes never collide ('\0' is in no HDF5 name), and sort by
// object path.
std::string array_key(const std::string& name) { return "A" + name; }
std::string attribute_key(const std::string& object, const std::string& name) {
  return "T" + object + std::string(1, '\0') + name;
}

// Type codes in the records.
enum : uint64_t { kTagArray = 1, kTagAttribute = 2 };
enum : uint64_t { kAttrString = 1, kAttrInt = 2, kAttrFloat = 3, kAttrOther = 4 };

uint32_t v2_array_crc(const std::string& name, ArrayType type, const std::vector<int64_t>& shape,
                      const void* data, size_t bytes) {
  Crc c;
  c.u64(kTagArray);
  c.text(name);
  c.u64(static_cast<uint64_t>(type) + 1);
  c.u64(shape.size());
  for (int64_t d : shape) c.u64(static_cast<uint64_t>(d));
  c.u64(bytes);
  c.bytes(data, bytes);
  return c.value();
}

// An attribute as the writer knows it: one string, integer or float.
uint32_t v2_attribute_crc(const std::string& object, const std::string& name,
                          const AttributeValue& value) {
  Crc c;
  c.u64(kTagAttribute);
  c.text(object);
  c.text(name);
  if (const auto* s = std::get_if<std::string>(&value)) {
    c.u64(kAttrString);
    c.u64(1);
    c.text(std::string(s->c_str()));  // what HDF5 stores: the C string
  } else if (const auto* i = std::get_if<int64_t>(&value)) {
    c.u64(kAttrInt);
    c.u64(1);
    c.u64(static_cast<uint64_t>(*i));
  } else {
    const double d = std::get<double>(value);
    c.u64(kAttrFloat);
    c.u64(1);
    c.bytes(&d, sizeof d);
  }
  return c.value();
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

struct ArrayFileWriter::State {
  std::string path, temp;
  h5::Handle file;
  std::map<std::string, uint32_t> records;  // v2: array_key / attribute_key -> CRC-32
  bool committed = false;
};

ArrayFileWriter::ArrayFileWriter(std::string path) : state_(std::make_unique<State>()) {
  h5::quiet_errors();
  state_->path = std::move(path);
  state_->temp = state_->path + ".tmp-" + std::to_string(::getpid());
  auto parent = std::filesystem::path(state_->path).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent)) {
    throw DataError("'" + state_->path + "': folder '" + parent.string() + "' does not exist");
  }
  state_->file = h5::create_file(state_->temp);
}

ArrayFileWriter::~ArrayFileWriter() {
  if (state_->committed) return;
  state_->file.reset();
  std::error_code ec;  // never throws
  std::filesystem::remove(state_->temp, ec);
}

namespace {
void add_array(hid_t file, std::map<std::string, uint32_t>& records, const std::string& temp,
               const std::string& name, const std::vector<int64_t>& shape, ArrayType type,
               const void* data) {
  if (name.empty() || name[0] != '/' || name.back() == '/') {
    throw DataError("checkpoint array name '" + name + "' must be a full path like /group/name");
  }
  if (name.find("//") != std::string::npos) {
    throw DataError("checkpoint array name '" + name + "' has an empty path component");
  }
  if (records.count(array_key(name))) {
    throw DataError("checkpoint array '" + name + "' written twice");
  }
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
  records[array_key(name)] = v2_array_crc(name, type, shape, data, n * type_size(type));
}
}  // namespace

void ArrayFileWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                          const float* data) {
  add_array(state_->file.get(), state_->records, state_->temp, name, shape, ArrayType::kFloat32,
            data);
}
void ArrayFileWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                          const int64_t* data) {
  add_array(state_->file.get(), state_->records, state_->temp, name, shape, ArrayType::kInt64,
            data);
}
void ArrayFileWriter::add(const std::string& name, const std::vector<int64_t>& shape,
                          const uint8_t* data) {
  add_array(state_->file.get(), state_->records, state_->temp, name, shape, ArrayType::kUint8,
            data);
}

void ArrayFileWriter::set_attribute(const std::string& object, const std::string& name,
                                    const AttributeValue& value) {
  const std::string what = "setting attribute '" + name + "' of '" + object + "'";
  // The checksum names objects by their full path: one spelling for each.
  if (object.empty() || object[0] != '/' || (object.size() > 1 && object.back() == '/') ||
      object.find("//") != std::string::npos) {
    throw DataError("checkpoint object '" + object + "' must be / or a full path like /group");
  }
  if (object == "/" && (name == "format" || name == kChecksum)) {
    throw DataError("checkpoint attribute '/@" + name + "' is written by commit()");
  }
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
  state_->records[attribute_key(object, name)] = v2_attribute_crc(object, name, value);
}

void ArrayFileWriter::commit() {
  if (state_->committed) throw std::logic_error("ArrayFileWriter::commit called twice");
  const std::string what = "finishing '" + state_->temp + "'";
  {
    h5::Handle root(ALEXNET_H5_CHECK(H5Gopen2(state_->file.get(), "/", H5P_DEFAULT), what));
    write_attribute(root.get(), "format", std::string(kFormatV2));
    state_->records[attribute_key("/", "format")] =
        v2_attribute_crc("/", "format", std::string(kFormatV2));
    write_attribute(root.get(), kChecksum, combine(state_->records));
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

struct ArrayFileReader::State {
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
  std::vector<std::string> objects;  // every object, "/" first, by full path
};

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  (void)info;
  H5O_info_t object;
  if (H5Oget_info_by_name(group, name, &object, H5P_DEFAULT) < 0) return -1;
  auto* visit = static_cast<VisitData*>(data);
  if (object.type == H5O_TYPE_DATASET) visit->datasets.push_back(std::string("/") + name);
  visit->objects.push_back(std::string("/") + name);
  return 0;
}

herr_t collect_attribute(hid_t location, const char* name, const H5A_info_t* info, void* data) {
  (void)location;
  (void)info;
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

// An attribute as stored, hashed as v2_attribute_crc() hashes the writer's value: strings,
// integers (as int64) and floats (as float64) by value, whatever their storage type; anything
// else by its type's name, which no writer's record matches.
uint32_t stored_attribute_crc(hid_t obj, const std::string& object, const std::string& name,
                              const std::string& what) {
  const std::string context = "reading attribute '" + name + "' of '" + object + "' in " + what;
  h5::Handle attr(ALEXNET_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), context));
  h5::Handle type(ALEXNET_H5_CHECK(H5Aget_type(attr.get()), context));
  h5::Handle space(ALEXNET_H5_CHECK(H5Aget_space(attr.get()), context));
  const auto count =
      static_cast<size_t>(ALEXNET_H5_CHECK(H5Sget_simple_extent_npoints(space.get()), context));
  Crc c;
  c.u64(kTagAttribute);
  c.text(object);
  c.text(name);
  switch (ALEXNET_H5_CHECK(H5Tget_class(type.get()), context)) {
    case H5T_STRING: {
      c.u64(kAttrString);
      c.u64(count);
      for (const std::string& v : h5::read_string_array_attribute(obj, name, what)) c.text(v);
      break;
    }
    case H5T_INTEGER: {
      std::vector<int64_t> values(count);
      if (count > 0) {
        ALEXNET_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()), context);
      }
      c.u64(kAttrInt);
      c.u64(count);
      for (int64_t v : values) c.u64(static_cast<uint64_t>(v));
      break;
    }
    case H5T_FLOAT: {
      std::vector<double> values(count);
      if (count > 0) {
        ALEXNET_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()), context);
      }
      c.u64(kAttrFloat);
      c.u64(count);
      for (double v : values) c.bytes(&v, sizeof v);
      break;
    }
    default:
      c.u64(kAttrOther);
      c.text(h5::type_name(type.get()));
      break;
  }
  return c.value();
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

ArrayFileReader::ArrayFileReader(const std::string& path) : state_(std::make_unique<State>()) {
  state_->path = path;
  state_->file = h5::open_file_readonly(path);
  const std::string what = "'" + path + "'";
  h5::Handle root(ALEXNET_H5_CHECK(H5Gopen2(state_->file.get(), "/", H5P_DEFAULT), what));
  const std::string format = h5::has_attribute(root.get(), "format")
                                 ? h5::read_string_attribute(root.get(), "format", what)
                                 : std::string();
  const bool v1 = format == kFormatV1;
  if (!v1 && format != kFormatV2) {
    throw DataError(what + ": not a checkpoint (no format attribute '" + kFormatV2 + "' or '" +
                    kFormatV1 + "')");
  }
  if (!h5::has_attribute(root.get(), kChecksum)) {
    throw DataError(what + ": checkpoint has no checksum (incomplete write?)");
  }
  const int64_t stored = h5::read_int_attribute(root.get(), kChecksum, what);
  VisitData visit;
  visit.objects.push_back("/");
  ALEXNET_H5_CHECK(H5Lvisit(state_->file.get(), H5_INDEX_NAME, H5_ITER_INC, visit_link, &visit),
                   "listing the arrays of " + what);
  std::map<std::string, uint32_t> records;  // v1: name -> CRC; v2: as the writer's
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
    records[v1 ? name : array_key(name)] =
        v1 ? v1_entry_crc(name, entry.shape, buffer.data(), buffer.size())
           : v2_array_crc(name, entry.type, entry.shape, buffer.data(), buffer.size());
    state_->arrays[name] = std::move(entry);
  }
  if (!v1) {  // v2 also covers every attribute but the checksum itself
    for (const std::string& object : visit.objects) {
      const std::string item = what + " object '" + object + "'";
      h5::Handle obj(
          ALEXNET_H5_CHECK(H5Oopen(state_->file.get(), object.c_str(), H5P_DEFAULT), item));
      std::vector<std::string> names;
      ALEXNET_H5_CHECK(
          H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect_attribute, &names),
          "listing the attributes of " + item);
      for (const std::string& name : names) {
        if (object == "/" && name == kChecksum) continue;
        records[attribute_key(object, name)] = stored_attribute_crc(obj.get(), object, name, what);
      }
    }
  }
  if (combine(records) != stored) {
    throw DataError(what + ": checksum mismatch: the checkpoint is damaged");
  }
}

ArrayFileReader::~ArrayFileReader() = default;
ArrayFileReader::ArrayFileReader(ArrayFileReader&&) noexcept = default;

const std::string& ArrayFileReader::path() const { return state_->path; }

std::vector<std::string> ArrayFileReader::arrays() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : state_->arrays) names.push_back(name);
  return names;
}

bool ArrayFileReader::has(const std::string& name) const { return state_->arrays.count(name) > 0; }

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

std::vector<int64_t> ArrayFileReader::shape(const std::string& name) const {
  return find_entry(state_->arrays, name, state_->path).shape;
}

ArrayType ArrayFileReader::type(const std::string& name) const {
  return find_entry(state_->arrays, name, state_->path).type;
}

namespace {
template <typename T>
void checked_read(const ArrayFileReader& reader, hid_t file, const std::string& name,
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

void ArrayFileReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
                           std::span<float> out) const {
  checked_read(*this, state_->file.get(), name, ArrayType::kFloat32, expected_shape, out);
}
void ArrayFileReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
                           std::span<int64_t> out) const {
  checked_read(*this, state_->file.get(), name, ArrayType::kInt64, expected_shape, out);
}
void ArrayFileReader::read(const std::string& name, const std::vector<int64_t>& expected_shape,
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

bool ArrayFileReader::has_attribute(const std::string& object, const std::string& name) const {
  if (object != "/" && H5Lexists(state_->file.get(), object.c_str(), H5P_DEFAULT) <= 0) {
    return false;
  }
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  return h5::has_attribute(obj.get(), name);
}

std::string ArrayFileReader::string_attribute(const std::string& object,
                                              const std::string& name) const {
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  if (!h5::has_attribute(obj.get(), name)) {
    throw DataError("'" + state_->path + "': '" + object + "' has no attribute '" + name + "'");
  }
  return h5::read_string_attribute(obj.get(), name, "'" + state_->path + "' " + object);
}

int64_t ArrayFileReader::int_attribute(const std::string& object, const std::string& name) const {
  h5::Handle obj = open_object(state_->file.get(), object, state_->path);
  if (!h5::has_attribute(obj.get(), name)) {
    throw DataError("'" + state_->path + "': '" + object + "' has no attribute '" + name + "'");
  }
  return h5::read_int_attribute(obj.get(), name, "'" + state_->path + "' " + object);
}

double ArrayFileReader::float_attribute(const std::string& object, const std::string& name) const {
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
