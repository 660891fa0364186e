// Shared import steps: order, split, write.
#include "io/import_common.h"

#include <cmath>
#include <memory>
#include <numeric>

#include "io/error.h"
#include "io/progress.h"
#include "io/random.h"

namespace alexnet::io {

ImportOrder import_order(int64_t n, const ImportOptions& options) {
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0)) {
    throw DataError("validation fraction must be in [0, 1), got " +
                    std::to_string(options.val_fraction));
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (options.shuffle) {
    CounterRng rng(options.seed, RngPurpose::kImport, 0);
    rng.shuffle(order.data(), order.size());
  }
  auto n_val = static_cast<int64_t>(std::llround(options.val_fraction * static_cast<double>(n)));
  if (options.val_fraction > 0 && (n_val == 0 || n_val == n)) {
    throw DataError("a validation fraction of " + std::to_string(options.val_fraction) + " of " +
                    std::to_string(n) + " samples leaves one part empty");
  }
  ImportOrder out;
  out.train.assign(order.begin(), order.end() - n_val);
  out.val.assign(order.end() - n_val, order.end());
  return out;
}

std::string train_prefix(const ImportOptions& options) {
  return options.val_fraction > 0 ? options.out + "-train" : options.out;
}
std::string val_prefix(const ImportOptions& options) { return options.out + "-val"; }

ShardWriterConfig writer_config(const std::string& prefix, int64_t height, int64_t width,
                                int64_t channels, int64_t num_classes,
                                const std::vector<std::string>& class_names,
                                const std::string& source, const ImportOptions& options) {
  ShardWriterConfig c;
  c.prefix = prefix;
  c.shard_size = options.shard_size;
  c.compression = options.compression;
  c.gzip_level = options.gzip_level;
  c.height = height;
  c.width = width;
  c.channels = channels;
  c.num_classes = num_classes;
  c.class_names = class_names;
  c.source = source;
  return c;
}

ImportResult finish_parts(ShardWriter& train, ShardWriter* val) {
  ImportResult result;
  result.train_files = train.finish();
  result.train_count = train.count();
  if (val != nullptr) {
    result.val_files = val->finish();
    result.val_count = val->count();
  }
  return result;
}

ImportResult write_in_memory(const std::vector<uint8_t>& images, const std::vector<int32_t>& labels,
                             int64_t height, int64_t width, int64_t channels, int64_t num_classes,
                             const std::vector<std::string>& class_names, const std::string& source,
                             const ImportOptions& options) {
  const auto n = static_cast<int64_t>(labels.size());
  const auto sample = static_cast<size_t>(height * width * channels);
  if (images.size() != static_cast<size_t>(n) * sample) {
    throw DataError("'" + source + "': " + std::to_string(images.size()) + " image bytes for " +
                    std::to_string(n) + " labels of " + std::to_string(sample) + " bytes each");
  }
  ImportOrder order = import_order(n, options);
  // Both parts are written in full before either is renamed into place: an error in either
  // leaves no output at all.
  ShardWriter train(writer_config(train_prefix(options), height, width, channels, num_classes,
                                  class_names, source, options));
  std::unique_ptr<ShardWriter> val;
  if (!order.val.empty()) {
    val = std::make_unique<ShardWriter>(writer_config(val_prefix(options), height, width, channels,
                                                      num_classes, class_names, source, options));
  }
  Progress progress("writing " + options.out, n, "img", options.progress);
  int64_t done = 0;
  for (auto k : order.train) {
    train.add(images.data() + static_cast<size_t>(k) * sample, labels[static_cast<size_t>(k)]);
    progress.update(++done);
  }
  for (auto k : order.val) {
    val->add(images.data() + static_cast<size_t>(k) * sample, labels[static_cast<size_t>(k)]);
    progress.update(++done);
  }
  progress.finish();
  return finish_parts(train, val.get());
}

}  // namespace alexnet::io
