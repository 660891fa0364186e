// ProgressWindow: a log line's sums over every rank.
#include "trainer/progress_window.h"

namespace alexnet::trainer {

void ProgressWindow::add(const LossResult& loss, int64_t samples, const StepTimes& times,
                         double data_wait_seconds) {
  sums_.loss += loss.loss * static_cast<double>(samples);
  sums_.top1 += static_cast<double>(loss.top1);
  sums_.samples += static_cast<double>(samples);
  sums_.forward += times.forward;
  sums_.backward += times.backward;
  sums_.comm_wait += times.comm_wait;
  sums_.optimizer += times.optimizer;
  sums_.data_wait += data_wait_seconds;
  ++steps_;
}

TrainRecord ProgressWindow::close(comm::Communicator& comm, TrainRecord record) {
  Sums all = sums_;
  all_reduce_sum(comm, all);
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const auto steps = static_cast<double>(std::max<int64_t>(steps_, 1));
  record.world_size = comm.size();
  if (all.samples > 0) {
    record.loss = all.loss / all.samples;
    record.top1 = all.top1 / all.samples;
  }
  record.images_per_sec = seconds > 0 ? all.samples / seconds : 0;
  record.eta_seconds = seconds / steps * static_cast<double>(record.total_steps - record.step);
  const double per_step = 1.0 / (comm.size() * steps);  // and rank
  record.forward_seconds = all.forward * per_step;
  record.backward_seconds = all.backward * per_step;
  record.comm_wait_seconds = all.comm_wait * per_step;
  record.optimizer_seconds = all.optimizer * per_step;
  record.data_wait_seconds = all.data_wait * per_step;
  restart();
  return record;
}

void ProgressWindow::restart() {
  sums_ = {};
  steps_ = 0;
  start_ = Clock::now();
}

}  // namespace alexnet::trainer
