// Ends a job that stopped making progress: a rank whose peer died or whose network link was cut
// can wait in an MPI call forever (seen here: over 10 minutes, ignoring SIGTERM), so a thread
// watches a heartbeat that the training loop beats after every step and evaluation batch. When
// none comes for `timeout_seconds` it says so on stderr, naming this rank and what it was doing,
// calls `on_timeout` (MPI_Abort) from a thread of its own, and ends the process itself a few
// seconds later if that did not.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace alexnet::comm {

class Watchdog {
 public:
  // timeout_seconds <= 0: disabled (no thread).
  Watchdog(double timeout_seconds, int rank, int exit_code, std::function<void()> on_timeout);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Progress was made; `doing` (a string literal) names what comes next, for the message.
  void beat(const char* doing);

 private:
  void loop();

  const double timeout_seconds_;
  const int rank_, exit_code_;
  std::function<void()> on_timeout_;
  std::atomic<int64_t> last_beat_ns_;
  std::atomic<const char*> doing_{"starting"};
  std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace alexnet::comm
