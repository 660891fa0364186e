// The training progress between two log lines: every rank adds its steps, and at a log step all
// ranks sum their windows (one all-reduce of named fields) into the record rank 0 writes
// (trainer/run_log.h): mean loss and accuracy over every rank's samples, images per second of
// the whole job, and where a step's time went, per step and rank.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "comm/communicator.h"
#include "trainer/backend.h"
#include "trainer/run_log.h"
#include "trainer/train_step.h"

namespace alexnet::trainer {

// Sums `fields`, a struct of doubles only, over every rank, in place (each rank calls it at the
// same point): named fields in, one all-reduce on the wire.
template <class Fields>
void all_reduce_sum(comm::Communicator& comm, Fields& fields) {
  static_assert(std::is_trivially_copyable_v<Fields> && sizeof(Fields) % sizeof(double) == 0);
  std::array<double, sizeof(Fields) / sizeof(double)> values;
  std::memcpy(values.data(), &fields, sizeof fields);
  comm.all_reduce(values.data(), values.size(), comm::ReduceOp::kSum);
  std::memcpy(static_cast<void*>(&fields), values.data(), sizeof fields);
}

class ProgressWindow {
 public:
  using Clock = std::chrono::steady_clock;

  // This rank's step: its loss and top-1 hits over `samples` images, the step's times and the
  // wait for its batch.
  void add(const LossResult& loss, int64_t samples, const StepTimes& times,
           double data_wait_seconds);
  int64_t steps() const { return steps_; }

  // The window over every rank (a collective: every rank calls it at the same step), into the
  // loss, accuracy, speed, ETA and time fields of `record` (whose step and total_steps say what
  // is left); then a new window starts.
  TrainRecord close(comm::Communicator& comm, TrainRecord record);
  // A new window from now, what was added so far dropped (after validation, so that the next
  // line's speed is training's alone).
  void restart();

 private:
  struct Sums {
    double loss = 0;  // loss x samples
    double top1 = 0;  // hits
    double samples = 0;
    double forward = 0, backward = 0, comm_wait = 0, optimizer = 0, data_wait = 0;  // seconds
  };
  Sums sums_;
  int64_t steps_ = 0;
  Clock::time_point start_ = Clock::now();
};

}  // namespace alexnet::trainer
