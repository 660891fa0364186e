// Thin RAII and checking layer over the HDF5 C API, shared by the reader, the writers and inspect.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace alexnet::io::h5 {

// Turns off HDF5's automatic error-stack printing for the calling thread (the stack is
// per-thread in thread-safe builds); our checks report errors as one line instead.
void quiet_errors();

// Throws DataError "HDF5 call <call> failed at <file:line> while <what>: <HDF5's message>" (the
// failed-call message of io/call_error.h) when `status` is negative. `what` names the file or
// object being worked on: a failing HDF5 call is most often a damaged or foreign file.
void check_status(int64_t status, const char* call, const char* file, int line,
                  const std::string& what);

// Evaluates an HDF5 call once, throws on failure, and yields its value (an hid_t or herr_t).
#define ALEXNET_H5_CHECK(call, what)                                                         \
  [&]() {                                                                                    \
    auto h5_check_result_ = (call);                                                          \
    ::alexnet::io::h5::check_status(static_cast<int64_t>(h5_check_result_), #call, __FILE__, \
                                    __LINE__, (what));                                       \
    return h5_check_result_;                                                                 \
  }()

// Owns one HDF5 identifier and closes it with the close function matching its type.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  hid_t get() const { return id_; }
  explicit operator bool() const { return id_ >= 0; }
  void reset();  // closes; never throws (used by destructors)

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Files and objects. `path` is used in error messages.
Handle open_file_readonly(const std::string& path);  // DataError if missing or not HDF5
Handle create_file(const std::string& path);         // truncates
bool has_link(hid_t loc, const std::string& name);
Handle open_dataset(hid_t file, const std::string& name, const std::string& path,
                    hid_t access = H5P_DEFAULT);
std::vector<hsize_t> dataset_shape(hid_t dataset, const std::string& what);
// Rows per chunk along axis 0, or 0 for a contiguous or compact dataset.
hsize_t chunk_rows(hid_t dataset, const std::string& what);
// The full chunk shape, empty for a contiguous or compact dataset.
std::vector<hsize_t> chunk_shape(hid_t dataset, const std::string& what);
// Bytes the file stores for a dataset (compressed chunks at their compressed size).
hsize_t storage_size(hid_t dataset, const std::string& what);
bool has_filters(hid_t dataset, const std::string& what);
// Names of the filters on a dataset ("gzip(4)", "shuffle", ...), empty when unfiltered.
std::vector<std::string> filter_names(hid_t dataset, const std::string& what);
// "uint8", "int32", "float32", ... for reports and error messages.
std::string type_name(hid_t type);

// Attributes on any object. Readers convert from any stored numeric or string type.
bool has_attribute(hid_t obj, const std::string& name);
int64_t read_int_attribute(hid_t obj, const std::string& name, const std::string& what);
// A count above max_count, or a string longer than max_bytes, is a DataError (before allocating).
std::vector<double> read_float_array_attribute(hid_t obj, const std::string& name,
                                               const std::string& what,
                                               size_t max_count = SIZE_MAX);
std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& what,
                                  size_t max_bytes = SIZE_MAX);
std::vector<std::string> read_string_array_attribute(hid_t obj, const std::string& name,
                                                     const std::string& what,
                                                     size_t max_count = SIZE_MAX,
                                                     size_t max_bytes = SIZE_MAX);
void write_int_attribute(hid_t obj, const std::string& name, int64_t value);
void write_float_array_attribute(hid_t obj, const std::string& name,
                                 const std::vector<double>& values);
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value);
void write_string_array_attribute(hid_t obj, const std::string& name,
                                  const std::vector<std::string>& values);

}  // namespace alexnet::io::h5
