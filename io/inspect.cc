// The inspect report.
#include "io/inspect.h"

#include <cstdio>
#include <string>

#include "io/dataset.h"

namespace alexnet::io {
namespace {

std::string format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, a);
  return buf;
}

std::string vector_text(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format("%.3f", v[i]);
  return s + "]";
}

}  // namespace

void inspect_dataset(const std::vector<std::string>& paths_or_globs, std::ostream& out) {
  Dataset ds = Dataset::open(paths_or_globs);
  const DatasetMeta& m = ds.meta();
  const std::string image_dims =
      std::to_string(m.height) + ", " + std::to_string(m.width) + ", " + std::to_string(m.channels);
  for (const auto& s : ds.shards()) {
    std::string filters;
    for (const auto& f : s.filters) filters += (filters.empty() ? "" : "+") + f;
    out << s.path << "\n"
        << "  images  uint8 [" << s.num_samples << ", " << image_dims << "]  chunks "
        << (s.chunk_rows > 0 ? std::to_string(s.chunk_rows) + " rows" : "none (contiguous)")
        << "  filters " << (filters.empty() ? "none" : filters) << "\n"
        << "  labels  int32 [" << s.num_samples << "]\n";
  }
  out << "files: " << ds.shards().size() << "\n"
      << "image: " << m.height << "x" << m.width << "x" << m.channels << " uint8 (HWC)\n"
      << "classes: " << m.num_classes << (m.num_classes_inferred ? " (inferred from labels)" : "")
      << "\n"
      << "mean: " << (m.mean.empty() ? "absent" : vector_text(m.mean)) << "\n"
      << "std: " << (m.std.empty() ? "absent" : vector_text(m.std)) << "\n"
      << "source: " << (m.source.empty() ? "unknown" : m.source) << "\n";
  out << "class histogram:\n";
  auto hist = ds.class_histogram();
  for (size_t c = 0; c < hist.size(); ++c) {
    double pct =
        ds.size() > 0 ? 100.0 * static_cast<double>(hist[c]) / static_cast<double>(ds.size()) : 0.0;
    out << "  " << c << "  " << (c < m.class_names.size() ? m.class_names[c] : std::string("-"))
        << "  " << hist[c] << "  " << format("%.2f%%", pct) << "\n";
  }
  out << "labels: all in [0, " << m.num_classes << ")\n"
      << "total samples: " << ds.size() << "\n";
}

}  // namespace alexnet::io
