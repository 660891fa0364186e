// IDX reader and importer.
#include "io/idx_import.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "io/error.h"

namespace alexnet::io {
namespace {

// gzread reads plain files transparently, so .gz and uncompressed IDX both work.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    if (!std::filesystem::exists(path)) throw DataError("'" + path + "': no such file");
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw DataError("'" + path + "': cannot be opened");
    gzbuffer(file_, 1 << 20);
  }
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads exactly n bytes or throws naming what was being read.
  void read(void* dst, size_t n, const std::string& what) {
    auto* out = static_cast<uint8_t*>(dst);
    size_t done = 0;
    while (done < n) {
      unsigned ask = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
      int got = gzread(file_, out + done, ask);
      if (got < 0) {
        int errnum = 0;
        const char* msg = gzerror(file_, &errnum);
        throw DataError("'" + path_ + "': corrupt gzip data while reading " + what + " (" +
                        (msg ? msg : "?") + ")");
      }
      if (got == 0) {
        throw DataError("'" + path_ + "': truncated: " + what + " needs " + std::to_string(n) +
                        " bytes, found " + std::to_string(done));
      }
      done += static_cast<size_t>(got);
    }
  }
  bool at_end() {
    uint8_t byte;
    return gzread(file_, &byte, 1) == 0;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

// Header: 0, 0, type (0x08: unsigned byte), number of dimensions; then big-endian uint32 sizes.
std::vector<int64_t> read_header(GzFile& f, const std::string& path, int expected_dims) {
  uint8_t magic[4];
  f.read(magic, 4, "the IDX header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08) {
    throw DataError("'" + path + "': not an unsigned-byte IDX file (bad magic number)");
  }
  if (magic[3] != expected_dims) {
    throw DataError("'" + path + "': IDX file has " + std::to_string(magic[3]) +
                    " dimensions, expected " + std::to_string(expected_dims));
  }
  std::vector<int64_t> dims;
  for (int i = 0; i < expected_dims; ++i) {
    uint8_t b[4];
    f.read(b, 4, "the IDX dimensions");
    dims.push_back((int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3]);
  }
  return dims;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) {
  GzFile f(path);
  auto dims = read_header(f, path, 3);
  IdxImages images{dims[0], dims[1], dims[2], {}};
  if (images.height == 0 || images.width == 0) throw DataError("'" + path + "': empty images");
  // Grow the buffer as data arrives instead of trusting the header's size: a corrupt header
  // ends as "truncated", not as an allocation of many gigabytes. (Each dimension is < 2^32, so
  // the product fits in 96 bits; checked in long double.)
  long double claimed = static_cast<long double>(dims[0]) * dims[1] * dims[2];
  if (claimed > static_cast<long double>(int64_t{1} << 40)) {
    throw DataError("'" + path + "': header claims " + std::to_string(dims[0]) + " images of " +
                    std::to_string(dims[1]) + "x" + std::to_string(dims[2]) +
                    ", more than 1 TiB: not a valid IDX file");
  }
  const auto total = static_cast<size_t>(dims[0] * dims[1] * dims[2]);
  constexpr size_t kPiece = size_t{64} << 20;
  while (images.pixels.size() < total) {
    size_t done = images.pixels.size(), piece = std::min(kPiece, total - done);
    images.pixels.resize(done + piece);
    f.read(images.pixels.data() + done, piece, "the image data");
  }
  if (!f.at_end()) throw DataError("'" + path + "': extra bytes after the image data");
  return images;
}

std::vector<int32_t> read_idx_labels(const std::string& path) {
  GzFile f(path);
  auto dims = read_header(f, path, 1);
  std::vector<uint8_t> raw(static_cast<size_t>(dims[0]));
  f.read(raw.data(), raw.size(), "the labels");
  if (!f.at_end()) throw DataError("'" + path + "': extra bytes after the labels");
  return {raw.begin(), raw.end()};
}

ImportResult import_idx(const std::string& images_path, const std::string& labels_path,
                        int64_t num_classes, const std::vector<std::string>& class_names,
                        const ImportOptions& options) {
  IdxImages images = read_idx_images(images_path);
  std::vector<int32_t> labels = read_idx_labels(labels_path);
  if (static_cast<int64_t>(labels.size()) != images.count) {
    throw DataError("'" + labels_path + "': " + std::to_string(labels.size()) + " labels for " +
                    std::to_string(images.count) + " images in '" + images_path + "'");
  }
  if (images.count == 0) throw DataError("'" + images_path + "': no images");
  int32_t max_label = *std::max_element(labels.begin(), labels.end());
  if (num_classes <= 0) {
    num_classes = class_names.empty() ? max_label + 1 : static_cast<int64_t>(class_names.size());
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      throw DataError("'" + labels_path + "': label " + std::to_string(labels[i]) + " at index " +
                      std::to_string(i) + " is out of range [0, " + std::to_string(num_classes) +
                      ")");
    }
  }
  std::string source = "import-idx " + std::filesystem::path(images_path).filename().string() +
                       " " + std::filesystem::path(labels_path).filename().string();
  return write_in_memory(images.pixels, labels, images.height, images.width, 1, num_classes,
                         class_names, source, options);
}

}  // namespace alexnet::io
