// Profiler: event storage and the Chrome trace JSON.
#include "trainer/profiler.h"

#include <cstdio>

namespace alexnet::trainer {

Profiler::Profiler(size_t capacity)
    : origin_(Clock::now()),
      // Wall-clock microseconds: the ranks' traces line up when merged (NTP-close across nodes).
      origin_wall_us_(std::chrono::duration<double, std::micro>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count()) {
  events_.reserve(capacity);
}

void Profiler::record(const char* name, const char* category, int tid, Clock::time_point start,
                      Clock::time_point end) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (events_.size() == events_.capacity()) {
    ++dropped_;
    return;
  }
  const auto ns = [&](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t - origin_).count();
  };
  events_.push_back({name, category, tid, ns(start), ns(end) - ns(start)});
}

std::string Profiler::json(int rank) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out = "{\"traceEvents\": [\n";
  char line[512];
  std::snprintf(line, sizeof line,
                "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": %d, \"args\": {\"name\": "
                "\"rank %d\"}},\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": %d, \"tid\": "
                "0, \"args\": {\"name\": \"training\"}},\n{\"name\": \"thread_name\", \"ph\": "
                "\"M\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": \"all-reduce\"}}",
                rank, rank, rank, rank);
  out += line;
  for (const Event& e : events_) {
    std::snprintf(line, sizeof line,
                  ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": %d, \"tid\": %d, "
                  "\"ts\": %.3f, \"dur\": %.3f}",
                  e.name, e.category, rank, e.tid,
                  origin_wall_us_ + static_cast<double>(e.start_ns) * 1e-3,
                  static_cast<double>(e.duration_ns) * 1e-3);
    out += line;
  }
  out += "\n]}\n";
  return out;
}

std::string merge_traces(const std::vector<std::string>& traces) {
  std::string out = "{\"traceEvents\": [\n";
  bool first = true;
  for (const std::string& t : traces) {
    const size_t open = t.find('[');
    const size_t close = t.rfind(']');
    if (open == std::string::npos || close == std::string::npos || close <= open) continue;
    std::string body = t.substr(open + 1, close - open - 1);
    while (!body.empty() && (body.back() == '\n' || body.back() == ' ')) body.pop_back();
    while (!body.empty() && (body.front() == '\n' || body.front() == ' ')) body.erase(0, 1);
    if (body.empty()) continue;
    if (!first) out += ",\n";
    out += body;
    first = false;
  }
  out += "\n]}\n";
  return out;
}

}  // namespace alexnet::trainer
