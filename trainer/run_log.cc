// RunLog: stdout, metrics.jsonl, TensorBoard.
#include "trainer/run_log.h"

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace alexnet::trainer {
namespace {

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return text;
}

// JSON has no NaN or Infinity: such values are written as null.
std::string number(double v) {
  if (!std::isfinite(v)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

}  // namespace

RunLog::RunLog(const std::string& run_dir, bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  const std::string path = (std::filesystem::path(run_dir) / "metrics.jsonl").string();
  metrics_ = std::fopen(path.c_str(), "a");
  if (metrics_ == nullptr) {
    throw std::runtime_error("cannot open '" + path + "' for appending: " + std::strerror(errno));
  }
  tensorboard_ = std::make_unique<TensorBoardWriter>(
      (std::filesystem::path(run_dir) / "tensorboard").string());
}

RunLog::~RunLog() {
  if (metrics_ != nullptr) std::fclose(metrics_);
}

void RunLog::say(const std::string& line) {
  if (!enabled_) return;
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void RunLog::peer_lost(int rank, const std::string& host, bool process_gone,
                       double seconds_silent) {
  if (!enabled_) return;
  std::string quoted;  // a host name is letters, digits, dots and dashes; anything else dropped
  for (char c : host) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') {
      quoted.push_back(c);
    }
  }
  std::fprintf(metrics_,
               "{\"event\": \"peer_lost\", \"rank\": %d, \"host\": \"%s\", \"process_gone\": %s, "
               "\"seconds_silent\": %s, \"time\": %.3f}\n",
               rank, quoted.c_str(), process_gone ? "true" : "false",
               number(seconds_silent).c_str(), unix_time());
  std::fflush(metrics_);
}

void RunLog::train(const TrainRecord& r) {
  if (!enabled_) return;
  std::printf(
      "epoch %lld step %lld/%lld (%lld/%lld): loss %.4f top-1 %.2f%% lr %.5g | %.1f img/s "
      "(%.1f per rank x %d) | ms/step: fwd %.0f bwd %.0f comm wait %.0f opt %.0f data %.0f | "
      "ETA %s\n",
      static_cast<long long>(r.epoch), static_cast<long long>(r.step_in_epoch),
      static_cast<long long>(r.steps_per_epoch), static_cast<long long>(r.step),
      static_cast<long long>(r.total_steps), r.loss, 100 * r.top1, r.lr, r.images_per_sec,
      r.images_per_sec / r.world_size, r.world_size, 1e3 * r.forward_seconds,
      1e3 * r.backward_seconds, 1e3 * r.comm_wait_seconds, 1e3 * r.optimizer_seconds,
      1e3 * r.data_wait_seconds, duration_text(r.eta_seconds).c_str());
  std::fflush(stdout);
  std::fprintf(
      metrics_,
      "{\"split\": \"train\", \"step\": %lld, \"epoch\": %lld, \"loss\": %s, \"top1\": %s, "
      "\"lr\": %s, \"images_per_sec\": %s, \"images_per_sec_per_rank\": %s, "
      "\"world_size\": %d, \"seconds_forward\": %s, \"seconds_backward\": %s, "
      "\"seconds_comm_wait\": %s, \"seconds_optimizer\": %s, \"seconds_data_wait\": %s, "
      "\"time\": %.3f}\n",
      static_cast<long long>(r.step), static_cast<long long>(r.epoch), number(r.loss).c_str(),
      number(r.top1).c_str(), number(r.lr).c_str(), number(r.images_per_sec).c_str(),
      number(r.images_per_sec / r.world_size).c_str(), r.world_size,
      number(r.forward_seconds).c_str(), number(r.backward_seconds).c_str(),
      number(r.comm_wait_seconds).c_str(), number(r.optimizer_seconds).c_str(),
      number(r.data_wait_seconds).c_str(), unix_time());
  std::fflush(metrics_);
  tensorboard_->add_scalar("train/loss", r.loss, r.step);
  tensorboard_->add_scalar("train/top1", r.top1, r.step);
  tensorboard_->add_scalar("train/lr", r.lr, r.step);
  tensorboard_->add_scalar("train/images_per_sec", r.images_per_sec, r.step);
  tensorboard_->flush();
}

void RunLog::validation(int64_t epoch, int64_t step, const EvalResult& r) {
  if (!enabled_) return;
  std::printf(
      "validation epoch %lld step %lld: loss %.4f top-1 %.2f%% top-5 %.2f%% (%lld images)\n",
      static_cast<long long>(epoch), static_cast<long long>(step), r.loss, 100 * r.top1,
      100 * r.top5, static_cast<long long>(r.samples));
  std::fflush(stdout);
  std::fprintf(metrics_,
               "{\"split\": \"val\", \"step\": %lld, \"epoch\": %lld, \"loss\": %s, \"top1\": %s, "
               "\"top5\": %s, \"samples\": %lld, \"time\": %.3f}\n",
               static_cast<long long>(step), static_cast<long long>(epoch), number(r.loss).c_str(),
               number(r.top1).c_str(), number(r.top5).c_str(), static_cast<long long>(r.samples),
               unix_time());
  std::fflush(metrics_);
  tensorboard_->add_scalar("val/loss", r.loss, step);
  tensorboard_->add_scalar("val/top1", r.top1, step);
  tensorboard_->add_scalar("val/top5", r.top5, step);
  tensorboard_->flush();
}

}  // namespace alexnet::trainer
