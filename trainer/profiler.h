// A Chrome trace of a few training steps (chrome://tracing, Perfetto): every layer's forward and
// backward, each gradient bucket's all-reduce, the optimizer and the data wait, per rank.
// Events go into memory reserved up front (recording allocates nothing); write() turns them
// into JSON at the end of the profiled steps.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace alexnet::trainer {

class Profiler {
 public:
  using Clock = std::chrono::steady_clock;

  // Room for `capacity` events; later ones are dropped (and counted).
  explicit Profiler(size_t capacity);

  bool enabled() const { return enabled_; }
  void set_enabled(bool on) { enabled_ = on; }

  // `name` must outlive the profiler (layer names of the ModelSpec, string literals).
  // tid: 0 the training thread, 1 the communication thread. Thread-safe.
  void record(const char* name, const char* category, int tid, Clock::time_point start,
              Clock::time_point end);

  // Chrome's JSON object format, pid = rank; process and thread names included.
  std::string json(int rank) const;
  size_t dropped() const { return dropped_; }

 private:
  struct Event {
    const char* name;
    const char* category;
    int tid;
    int64_t start_ns, duration_ns;
  };
  bool enabled_ = false;
  Clock::time_point origin_;
  double origin_wall_us_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  size_t dropped_ = 0;
};

// Merges per-rank traces ({"traceEvents": [...]}) into one file.
std::string merge_traces(const std::vector<std::string>& traces);

}  // namespace alexnet::trainer
