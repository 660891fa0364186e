// IDX reader and importer.
#include "io/idx_import.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "io/error.h"
#include "io/limits.h"

namespace alexnet::io {
namespace {

// gzread reads plain files transparently, so .gz and uncompressed IDX both work.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found) {
      throw DataError("'" + path + "': no such file");
    }
    if (std::filesystem::is_directory(status)) {
      throw DataError("'" + path + "': is a folder, not an IDX file");
    }
    // Before gzopen: a throw from the constructor would not run the destructor's gzclose.
    size_ = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    if (ec) size_ = -1;  // not a regular file (a pipe): no bound from the size
    if (size_ == 0) throw DataError("'" + path + "': empty file, not an IDX file");
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      throw DataError("'" + path + "': cannot be opened" +
                      (errno != 0 ? ": " + std::string(std::strerror(errno)) : std::string()));
    }
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
        // zlib reports a gzip stream cut short only as an end of input with Z_BUF_ERROR.
        int errnum = 0;
        gzerror(file_, &errnum);
        throw DataError("'" + path_ + "': truncated" +
                        (errnum == Z_BUF_ERROR ? std::string(" gzip stream") : std::string()) +
                        ": " + what + " needs " + std::to_string(n) + " bytes, found " +
                        std::to_string(done));
      }
      done += static_cast<size_t>(got);
    }
  }
  bool at_end() {
    uint8_t byte;
    return gzread(file_, &byte, 1) == 0;
  }

  // Throws before `payload` bytes (after a header of `header` bytes) are allocated when the file
  // cannot hold them: a plain file must be exactly that long, a gzip file at least 1/1032 of it
  // (deflate's largest expansion).
  void check_payload(int64_t header, long double payload, const std::string& what) {
    if (size_ < 0) return;
    const auto stored = static_cast<long double>(size_);
    if (gzdirect(file_) == 1) {
      if (header + payload > stored) {
        throw DataError("'" + path_ + "': truncated: header claims " + what + " (" +
                        std::to_string(static_cast<long long>(payload)) + " bytes), file has " +
                        std::to_string(size_ - header) + " after the header");
      }
    } else if (payload > stored * limits::kMaxCompressionRatio) {
      throw DataError("'" + path_ + "': truncated: header claims " + what + " (" +
                      std::to_string(static_cast<long long>(payload)) +
                      " bytes), more than a gzip file of " + std::to_string(size_) +
                      " bytes can hold");
    }
  }

  // Reads `total` bytes, growing the buffer as data arrives, so that even a size within the
  // bounds above is only allocated as far as the data really goes.
  std::vector<uint8_t> read_payload(size_t total, const std::string& what) {
    std::vector<uint8_t> out;
    constexpr size_t kPiece = size_t{64} << 20;
    while (out.size() < total) {
      size_t done = out.size(), piece = std::min(kPiece, total - done);
      out.resize(done + piece);
      read(out.data() + done, piece, what);
    }
    return out;
  }

 private:
  std::string path_;
  gzFile file_ = nullptr;
  int64_t size_ = -1;
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
  if (dims[0] > limits::kMaxShardSamples) {
    throw DataError("'" + path + "': header claims " + std::to_string(dims[0]) +
                    " items, more than the limit of " + std::to_string(limits::kMaxShardSamples));
  }
  return dims;
}

// expected_count >= 0: the number of labels, checked against the header before any pixel is read.
IdxImages read_images(const std::string& path, int64_t expected_count,
                      const std::string& labels_path) {
  GzFile f(path);
  auto dims = read_header(f, path, 3);
  IdxImages images{dims[0], dims[1], dims[2], {}};
  if (images.height == 0 || images.width == 0) throw DataError("'" + path + "': empty images");
  if (images.height > limits::kMaxImageSide || images.width > limits::kMaxImageSide) {
    throw DataError("'" + path + "': header claims images of " + std::to_string(images.height) +
                    "x" + std::to_string(images.width) + ", larger than the limit of " +
                    std::to_string(limits::kMaxImageSide) + " per side");
  }
  const int64_t total = dims[0] * dims[1] * dims[2];  // < 2^31 * 2^24: fits
  f.check_payload(16, static_cast<long double>(total),
                  std::to_string(dims[0]) + " images of " + std::to_string(dims[1]) + "x" +
                      std::to_string(dims[2]));
  if (expected_count >= 0 && images.count != expected_count) {
    throw DataError("'" + labels_path + "': " + std::to_string(expected_count) + " labels for " +
                    std::to_string(images.count) + " images in '" + path + "'");
  }
  images.pixels = f.read_payload(static_cast<size_t>(total), "the image data");
  if (!f.at_end()) throw DataError("'" + path + "': extra bytes after the image data");
  return images;
}

}  // namespace

IdxImages read_idx_images(const std::string& path) { return read_images(path, -1, ""); }

std::vector<int32_t> read_idx_labels(const std::string& path) {
  GzFile f(path);
  auto dims = read_header(f, path, 1);
  f.check_payload(8, static_cast<long double>(dims[0]), std::to_string(dims[0]) + " labels");
  std::vector<uint8_t> raw = f.read_payload(static_cast<size_t>(dims[0]), "the labels");
  if (!f.at_end()) throw DataError("'" + path + "': extra bytes after the labels");
  return {raw.begin(), raw.end()};
}

ImportResult import_idx(const std::string& images_path, const std::string& labels_path,
                        int64_t num_classes, const std::vector<std::string>& class_names,
                        const ImportOptions& options) {
  // Labels first: they are small, and their count is checked against the images' header before
  // the pixels are read.
  std::vector<int32_t> labels = read_idx_labels(labels_path);
  IdxImages images = read_images(images_path, static_cast<int64_t>(labels.size()), labels_path);
  if (images.count == 0) throw DataError("'" + images_path + "': no images");
  if (num_classes > limits::kMaxClasses) {
    throw DataError("number of classes " + std::to_string(num_classes) + " is above the limit of " +
                    std::to_string(limits::kMaxClasses));
  }
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
