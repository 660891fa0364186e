// Watchdog: the heartbeat thread.
#include "comm/watchdog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace alexnet::comm {
namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Watchdog::Watchdog(double timeout_seconds, int rank, int exit_code,
                   std::function<void()> on_timeout)
    : timeout_seconds_(timeout_seconds),
      rank_(rank),
      exit_code_(exit_code),
      on_timeout_(std::move(on_timeout)),
      last_beat_ns_(now_ns()) {
  if (timeout_seconds_ > 0) thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
}

void Watchdog::beat(const char* doing) {
  doing_.store(doing, std::memory_order_relaxed);
  last_beat_ns_.store(now_ns(), std::memory_order_relaxed);
}

void Watchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto period = std::chrono::milliseconds(
      std::max<int64_t>(50, std::min<int64_t>(1000, static_cast<int64_t>(timeout_seconds_ * 100))));
  while (!stop_.wait_for(lock, period, [&] { return stopping_; })) {
    const double idle = static_cast<double>(now_ns() - last_beat_ns_.load()) * 1e-9;
    if (idle < timeout_seconds_) continue;
    std::fprintf(stderr,
                 "alexnet-train: rank %d: no progress for %.0f s while %s (comm.timeout_s = %g): "
                 "a peer rank is dead or unreachable; ending the job\n",
                 rank_, idle, doing_.load(), timeout_seconds_);
    std::fflush(stderr);
    if (on_timeout_) std::thread([f = on_timeout_] { f(); }).detach();
    // MPI_Abort itself can block on a cut link: give it a few seconds, then leave anyway.
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::_Exit(exit_code_);
  }
}

}  // namespace alexnet::comm
