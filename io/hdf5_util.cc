// HDF5 helpers: error checks that name the call and the file, RAII handles, attributes.
#include "io/hdf5_util.h"

#include <filesystem>
#include <fstream>
#include <memory>

#include "io/call_error.h"
#include "io/error.h"

namespace alexnet::io::h5 {
namespace {

// Collects HDF5's error stack: the outermost description (what the library was doing) and the
// innermost one (the concrete cause).
herr_t collect_error(unsigned depth, const H5E_error2_t* err, void* data) {
  auto* messages = static_cast<std::vector<std::string>*>(data);
  (void)depth;
  if (err != nullptr && err->desc != nullptr) messages->emplace_back(err->desc);
  return 0;
}

std::string hdf5_error_text() {
  std::vector<std::string> messages;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &messages);
  H5Eclear2(H5E_DEFAULT);
  if (messages.empty()) return "no HDF5 error message";
  if (messages.size() == 1) return messages.front();
  return messages.front() + " (" + messages.back() + ")";
}

void reclaim_vlen(hid_t mem_type, hid_t space, void* buffer) {
#if H5_VERSION_GE(1, 12, 0)
  H5Treclaim(mem_type, space, H5P_DEFAULT, buffer);
#else
  H5Dvlen_reclaim(mem_type, space, H5P_DEFAULT, buffer);
#endif
}

Handle vlen_string_type() {
  Handle type(ALEXNET_H5_CHECK(H5Tcopy(H5T_C_S1), "making a string type"));
  ALEXNET_H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE), "making a string type");
  ALEXNET_H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), "making a string type");
  return type;
}

// Reads a string attribute of `count` elements, fixed or variable length, into std::strings.
std::vector<std::string> read_strings(hid_t attr, hid_t space, size_t count,
                                      const std::string& what, size_t max_bytes) {
  Handle file_type(ALEXNET_H5_CHECK(H5Aget_type(attr), what));
  if (H5Tget_class(file_type.get()) != H5T_STRING) {
    throw DataError(what + ": expected a string attribute, found " + type_name(file_type.get()));
  }
  std::vector<std::string> out;
  out.reserve(count);
  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle mem_type = vlen_string_type();
    std::vector<char*> raw(count, nullptr);
    ALEXNET_H5_CHECK(H5Aread(attr, mem_type.get(), raw.data()), what);
    for (char* s : raw) out.emplace_back(s != nullptr ? s : "");
    reclaim_vlen(mem_type.get(), space, raw.data());
    for (const auto& s : out) {
      if (s.size() > max_bytes) {
        throw DataError(what + ": a string of " + std::to_string(s.size()) +
                        " bytes, more than the limit of " + std::to_string(max_bytes));
      }
    }
  } else {
    size_t size = H5Tget_size(file_type.get());
    if (size == 0 || size > max_bytes) {
      throw DataError(what + ": strings of " + std::to_string(size) +
                      " bytes, outside the limit of 1 to " + std::to_string(max_bytes));
    }
    Handle mem_type(ALEXNET_H5_CHECK(H5Tcopy(H5T_C_S1), what));
    ALEXNET_H5_CHECK(H5Tset_size(mem_type.get(), size), what);
    std::vector<char> raw(count * size);
    ALEXNET_H5_CHECK(H5Aread(attr, mem_type.get(), raw.data()), what);
    for (size_t i = 0; i < count; ++i) {
      const char* begin = raw.data() + i * size;
      size_t len = 0;
      while (len < size && begin[len] != '\0') ++len;
      out.emplace_back(begin, len);
    }
  }
  return out;
}

size_t element_count(hid_t space, const std::string& what) {
  hssize_t n = ALEXNET_H5_CHECK(H5Sget_simple_extent_npoints(space), what);
  return static_cast<size_t>(n);
}

}  // namespace

void quiet_errors() {
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

void check_status(int64_t status, const char* call, const char* file, int line,
                  const std::string& what) {
  if (status >= 0) return;
  throw DataError(failed_call_message("HDF5", call, file, line, what, hdf5_error_text()));
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      H5Idec_ref(id_);
      break;
  }
  id_ = H5I_INVALID_HID;
}

Handle open_file_readonly(const std::string& path) {
  quiet_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw DataError("'" + path + "': no such file");
  if (std::filesystem::is_directory(path, ec)) {
    throw DataError("'" + path + "': is a directory, not an HDF5 file");
  }
  // HDF5 needs to seek: a FIFO or a device is refused before opening it (which could block).
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw DataError("'" + path + "': not a regular file, not an HDF5 file");
  }
  if (!std::ifstream(path).good()) throw DataError("'" + path + "': cannot be read");
  htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) throw DataError("'" + path + "': not an HDF5 file");
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    throw DataError("'" + path + "': cannot open as HDF5 (" + hdf5_error_text() + ")");
  }
  return Handle(file);
}

Handle create_file(const std::string& path) {
  quiet_errors();
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) {
    throw DataError("'" + path + "': cannot create HDF5 file (" + hdf5_error_text() + ")");
  }
  return Handle(file);
}

bool has_link(hid_t loc, const std::string& name) {
  return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0;
}

Handle open_dataset(hid_t file, const std::string& name, const std::string& path, hid_t access) {
  if (!has_link(file, name)) throw DataError("'" + path + "': no dataset '" + name + "'");
  H5O_info_t info;
  ALEXNET_H5_CHECK(H5Oget_info_by_name(file, name.c_str(), &info, H5P_DEFAULT),
                   "inspecting '" + name + "' in '" + path + "'");
  if (info.type != H5O_TYPE_DATASET) {
    throw DataError("'" + path + "': '" + name + "' is not a dataset");
  }
  return Handle(ALEXNET_H5_CHECK(H5Dopen2(file, name.c_str(), access),
                                 "opening '" + name + "' in '" + path + "'"));
}

std::vector<hsize_t> dataset_shape(hid_t dataset, const std::string& what) {
  Handle space(ALEXNET_H5_CHECK(H5Dget_space(dataset), what));
  int rank = ALEXNET_H5_CHECK(H5Sget_simple_extent_ndims(space.get()), what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  ALEXNET_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), what);
  return dims;
}

hsize_t chunk_rows(hid_t dataset, const std::string& what) {
  Handle plist(ALEXNET_H5_CHECK(H5Dget_create_plist(dataset), what));
  if (H5Pget_layout(plist.get()) != H5D_CHUNKED) return 0;
  int rank = ALEXNET_H5_CHECK(H5Pget_chunk(plist.get(), 0, nullptr), what);
  std::vector<hsize_t> chunk(static_cast<size_t>(rank));
  ALEXNET_H5_CHECK(H5Pget_chunk(plist.get(), rank, chunk.data()), what);
  return chunk.empty() ? 0 : chunk[0];
}

std::vector<hsize_t> chunk_shape(hid_t dataset, const std::string& what) {
  Handle plist(ALEXNET_H5_CHECK(H5Dget_create_plist(dataset), what));
  if (H5Pget_layout(plist.get()) != H5D_CHUNKED) return {};
  int rank = ALEXNET_H5_CHECK(H5Pget_chunk(plist.get(), 0, nullptr), what);
  std::vector<hsize_t> chunk(static_cast<size_t>(rank));
  ALEXNET_H5_CHECK(H5Pget_chunk(plist.get(), rank, chunk.data()), what);
  return chunk;
}

hsize_t storage_size(hid_t dataset, const std::string& what) {
  // H5Dget_storage_size returns 0 both for "nothing stored" and for a failure; a failure leaves
  // an error on HDF5's stack.
  H5Eclear2(H5E_DEFAULT);
  hsize_t size = H5Dget_storage_size(dataset);
  if (size == 0 && H5Eget_num(H5E_DEFAULT) > 0) {
    throw DataError("HDF5 call H5Dget_storage_size failed while " + what + ": " +
                    hdf5_error_text());
  }
  return size;
}

bool has_filters(hid_t dataset, const std::string& what) {
  Handle plist(ALEXNET_H5_CHECK(H5Dget_create_plist(dataset), what));
  return ALEXNET_H5_CHECK(H5Pget_nfilters(plist.get()), what) > 0;
}

std::vector<std::string> filter_names(hid_t dataset, const std::string& what) {
  Handle plist(ALEXNET_H5_CHECK(H5Dget_create_plist(dataset), what));
  int n = ALEXNET_H5_CHECK(H5Pget_nfilters(plist.get()), what);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    size_t nvalues = 4;
    unsigned values[4] = {0, 0, 0, 0};
    char name[64] = {0};
    H5Z_filter_t id = H5Pget_filter2(plist.get(), static_cast<unsigned>(i), &flags, &nvalues,
                                     values, sizeof(name), name, &config);
    ALEXNET_H5_CHECK(id, what);
    switch (id) {
      case H5Z_FILTER_DEFLATE:
        names.push_back("gzip(" + std::to_string(nvalues > 0 ? values[0] : 0) + ")");
        break;
      case H5Z_FILTER_SHUFFLE:
        names.emplace_back("shuffle");
        break;
      case H5Z_FILTER_FLETCHER32:
        names.emplace_back("fletcher32");
        break;
      case H5Z_FILTER_SZIP:
        names.emplace_back("szip");
        break;
      default:
        names.push_back(std::string(name) + "(" + std::to_string(id) + ")");
        break;
    }
  }
  return names;
}

std::string type_name(hid_t type) {
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: {
      bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
      return std::string(is_signed ? "int" : "uint") + std::to_string(8 * H5Tget_size(type));
    }
    case H5T_FLOAT:
      return "float" + std::to_string(8 * H5Tget_size(type));
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_OPAQUE:
      return "opaque";
    default:
      return "unknown type";
  }
}

bool has_attribute(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

int64_t read_int_attribute(hid_t obj, const std::string& name, const std::string& what) {
  std::string context = "reading attribute '" + name + "' of " + what;
  Handle attr(ALEXNET_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), context));
  Handle type(ALEXNET_H5_CHECK(H5Aget_type(attr.get()), context));
  Handle space(ALEXNET_H5_CHECK(H5Aget_space(attr.get()), context));
  if (H5Tget_class(type.get()) != H5T_INTEGER || element_count(space.get(), context) != 1) {
    throw DataError(what + ": attribute '" + name + "' must be one integer, found " +
                    type_name(type.get()) + " with " +
                    std::to_string(element_count(space.get(), context)) + " elements");
  }
  int64_t value = 0;
  ALEXNET_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), context);
  return value;
}

std::vector<double> read_float_array_attribute(hid_t obj, const std::string& name,
                                               const std::string& what, size_t max_count) {
  std::string context = "reading attribute '" + name + "' of " + what;
  Handle attr(ALEXNET_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), context));
  Handle type(ALEXNET_H5_CHECK(H5Aget_type(attr.get()), context));
  Handle space(ALEXNET_H5_CHECK(H5Aget_space(attr.get()), context));
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    throw DataError(what + ": attribute '" + name + "' must be numeric, found " +
                    type_name(type.get()));
  }
  const size_t count = element_count(space.get(), context);
  if (count > max_count) {
    throw DataError(what + ": attribute '" + name + "' has " + std::to_string(count) +
                    " values, more than the " + std::to_string(max_count) + " expected");
  }
  std::vector<double> values(count);
  if (!values.empty())
    ALEXNET_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()), context);
  return values;
}

std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& what,
                                  size_t max_bytes) {
  std::string context = "reading attribute '" + name + "' of " + what;
  Handle attr(ALEXNET_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), context));
  Handle space(ALEXNET_H5_CHECK(H5Aget_space(attr.get()), context));
  size_t count = element_count(space.get(), context);
  if (count != 1) {
    throw DataError(what + ": attribute '" + name + "' must be one string, found " +
                    std::to_string(count));
  }
  return read_strings(attr.get(), space.get(), 1, what + " attribute '" + name + "'", max_bytes)
      .front();
}

std::vector<std::string> read_string_array_attribute(hid_t obj, const std::string& name,
                                                     const std::string& what, size_t max_count,
                                                     size_t max_bytes) {
  std::string context = "reading attribute '" + name + "' of " + what;
  Handle attr(ALEXNET_H5_CHECK(H5Aopen(obj, name.c_str(), H5P_DEFAULT), context));
  Handle space(ALEXNET_H5_CHECK(H5Aget_space(attr.get()), context));
  const size_t count = element_count(space.get(), context);
  if (count > max_count) {
    throw DataError(what + ": attribute '" + name + "' has " + std::to_string(count) +
                    " strings, more than the limit of " + std::to_string(max_count));
  }
  return read_strings(attr.get(), space.get(), count, what + " attribute '" + name + "'",
                      max_bytes);
}

void write_int_attribute(hid_t obj, const std::string& name, int64_t value) {
  std::string context = "writing attribute '" + name + "'";
  Handle space(ALEXNET_H5_CHECK(H5Screate(H5S_SCALAR), context));
  Handle attr(ALEXNET_H5_CHECK(
      H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      context));
  ALEXNET_H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), context);
}

void write_float_array_attribute(hid_t obj, const std::string& name,
                                 const std::vector<double>& values) {
  std::string context = "writing attribute '" + name + "'";
  hsize_t dims[1] = {values.size()};
  Handle space(ALEXNET_H5_CHECK(H5Screate_simple(1, dims, nullptr), context));
  Handle attr(ALEXNET_H5_CHECK(
      H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      context));
  ALEXNET_H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()), context);
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value) {
  std::string context = "writing attribute '" + name + "'";
  Handle type = vlen_string_type();
  Handle space(ALEXNET_H5_CHECK(H5Screate(H5S_SCALAR), context));
  Handle attr(ALEXNET_H5_CHECK(
      H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), context));
  const char* data = value.c_str();
  ALEXNET_H5_CHECK(H5Awrite(attr.get(), type.get(), &data), context);
}

void write_string_array_attribute(hid_t obj, const std::string& name,
                                  const std::vector<std::string>& values) {
  std::string context = "writing attribute '" + name + "'";
  Handle type = vlen_string_type();
  hsize_t dims[1] = {values.size()};
  Handle space(ALEXNET_H5_CHECK(H5Screate_simple(1, dims, nullptr), context));
  Handle attr(ALEXNET_H5_CHECK(
      H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), context));
  std::vector<const char*> data;
  data.reserve(values.size());
  for (const auto& v : values) data.push_back(v.c_str());
  ALEXNET_H5_CHECK(H5Awrite(attr.get(), type.get(), data.data()), context);
}

}  // namespace alexnet::io::h5
