// A progress line on standard error for long work: done/total, rate and ETA. Redrawn in place on
// a terminal (at most 5 times a second), a plain line every 10 seconds otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace alexnet::io {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
  void update(int64_t done);  // cheap when nothing is due
  void finish();              // prints the final line with the average rate

 private:
  void print(int64_t done, bool final);
  std::string label_, unit_;
  int64_t total_;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  int64_t last_done_ = 0;
};

}  // namespace alexnet::io
