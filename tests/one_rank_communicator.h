// Communicators for tests of the job's parts without mpirun: one process that stands for `ranks`
// ranks all holding the same values (a sum over them is ranks x the value; one rank: every
// collective is the identity, as TrainStep's all-reduce of a one-rank job).
#pragma once

#include <cstdlib>
#include <cstring>
#include <string>

#include "comm/communicator.h"

namespace alexnet::test {

class SameOnEveryRank final : public comm::Communicator {
 public:
  explicit SameOnEveryRank(int ranks = 1) : ranks_(ranks) {}
  int rank() const override { return 0; }
  int size() const override { return ranks_; }
  int local_rank() const override { return 0; }
  int local_size() const override { return ranks_; }
  std::string name() const override { return "same on every rank"; }
  void all_reduce(float* data, size_t count, comm::ReduceOp op, comm::WireType) override {
    if (op == comm::ReduceOp::kSum) {
      for (size_t i = 0; i < count; ++i) data[i] *= static_cast<float>(ranks_);
    }
  }
  void all_reduce(double* data, size_t count, comm::ReduceOp op) override {
    if (op == comm::ReduceOp::kSum) {
      for (size_t i = 0; i < count; ++i) data[i] *= ranks_;
    }
  }
  int64_t all_reduce_max(int64_t value) override { return value; }
  void broadcast(void*, size_t, int) override {}
  void all_gather(const void* mine, void* all, size_t bytes) override {
    for (int r = 0; r < ranks_; ++r) std::memcpy(static_cast<char*>(all) + r * bytes, mine, bytes);
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  int ranks_;
};

}  // namespace alexnet::test
