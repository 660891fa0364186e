// CIFAR binary reader and importer: [label(s), 1024 R, 1024 G, 1024 B] records, CHW -> HWC.
#include "io/cifar_import.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/error.h"
#include "io/limits.h"

namespace alexnet::io {
namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kPixels = kSide * kSide * 3;

std::vector<std::string> read_names(const std::filesystem::path& file) {
  std::vector<std::string> names;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

}  // namespace

ImportResult import_cifar(const std::vector<std::string>& batch_files, CifarLabels which,
                          const std::vector<std::string>& class_names,
                          const ImportOptions& options) {
  if (batch_files.empty()) throw DataError("import-cifar: no batch files given");
  int64_t label_bytes = 0;
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  for (const auto& path : batch_files) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (std::filesystem::is_directory(status)) {
      throw DataError("'" + path + "': is a folder, not a CIFAR batch file");
    }
    if (!std::filesystem::is_regular_file(status)) throw DataError("'" + path + "': no such file");
    auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    if (ec) throw DataError("'" + path + "': " + ec.message());
    int64_t record_labels = size > 0 && size % (kPixels + 1) == 0   ? 1
                            : size > 0 && size % (kPixels + 2) == 0 ? 2
                                                                    : 0;
    if (record_labels == 0) {
      throw DataError("'" + path + "': size " + std::to_string(size) +
                      " is not a whole number of CIFAR-10 (3073-byte) or CIFAR-100 (3074-byte) "
                      "records");
    }
    if (label_bytes != 0 && record_labels != label_bytes) {
      throw DataError("'" + path + "': mixes CIFAR-10 and CIFAR-100 batches");
    }
    label_bytes = record_labels;
    const int64_t record = kPixels + label_bytes, n = size / record;
    if (n > limits::kMaxShardSamples - static_cast<int64_t>(labels.size())) {
      throw DataError("'" + path + "': more than " + std::to_string(limits::kMaxShardSamples) +
                      " records in all");
    }
    // Opened before the allocation, so that an unreadable file costs nothing.
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError("'" + path + "': cannot be opened: " + std::strerror(errno));
    std::vector<uint8_t> raw(static_cast<size_t>(size));
    if (!in.read(reinterpret_cast<char*>(raw.data()), size)) {
      throw DataError("'" + path + "': read failed (the file shrank while being read?)");
    }
    const int64_t limit = label_bytes == 1 ? 10 : (which == CifarLabels::kFine ? 100 : 20);
    size_t base = images.size();
    images.resize(base + static_cast<size_t>(n * kPixels));
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* r = raw.data() + i * record;
      int32_t label = label_bytes == 1 ? r[0] : (which == CifarLabels::kFine ? r[1] : r[0]);
      if (label >= limit) {
        throw DataError("'" + path + "': label " + std::to_string(label) + " of record " +
                        std::to_string(i) + " is out of range [0, " + std::to_string(limit) + ")");
      }
      labels.push_back(label);
      const uint8_t* planes = r + label_bytes;
      uint8_t* dst = images.data() + base + static_cast<size_t>(i * kPixels);
      for (int64_t p = 0; p < kSide * kSide; ++p) {
        for (int64_t c = 0; c < 3; ++c) dst[p * 3 + c] = planes[c * kSide * kSide + p];
      }
    }
  }
  const int64_t num_classes = label_bytes == 1 ? 10 : (which == CifarLabels::kFine ? 100 : 20);
  std::vector<std::string> names = class_names;
  if (names.empty()) {
    auto dir = std::filesystem::path(batch_files.front()).parent_path();
    auto meta = label_bytes == 1 ? dir / "batches.meta.txt"
                                 : dir / (which == CifarLabels::kFine ? "fine_label_names.txt"
                                                                      : "coarse_label_names.txt");
    std::error_code ec;
    if (std::filesystem::is_regular_file(meta, ec)) names = read_names(meta);
    if (!names.empty() && static_cast<int64_t>(names.size()) != num_classes) {
      throw DataError("'" + meta.string() + "': " + std::to_string(names.size()) +
                      " class names for " + std::to_string(num_classes) + " classes");
    }
  }
  std::string source =
      std::string(label_bytes == 1 ? "import-cifar CIFAR-10" : "import-cifar CIFAR-100") + " (" +
      std::to_string(batch_files.size()) + " batch files)";
  return write_in_memory(images, labels, kSide, kSide, 3, num_classes, names, source, options);
}

}  // namespace alexnet::io
