// Progress line: rate and ETA.
#include "io/progress.h"

#include <unistd.h>

#include <cstdio>

namespace alexnet::io {

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      enabled_(enabled),
      tty_(::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

void Progress::update(int64_t done) {
  last_done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
  if (now - last_print_ < interval) return;
  last_print_ = now;
  print(done, false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_) print(last_done_, true);
}

void Progress::print(int64_t done, bool final) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  double pct = total_ > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total_) : 100.0;
  constexpr int kWidth = 30;
  int filled = static_cast<int>(pct / 100.0 * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char eta[32] = "";
  if (!final && rate > 0 && total_ > done) {
    auto left = static_cast<long>(static_cast<double>(total_ - done) / rate);
    std::snprintf(eta, sizeof(eta), " ETA %ld:%02ld", left / 60, left % 60);
  }
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s (%.1f%%) %.0f %s/s%s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), static_cast<long long>(done),
               static_cast<long long>(total_), unit_.c_str(), pct, rate, unit_.c_str(), eta,
               final ? (" in " + std::to_string(static_cast<long>(elapsed)) + " s\n").c_str()
                     : (tty_ ? "" : "\n"));
  std::fflush(stderr);
}

}  // namespace alexnet::io
