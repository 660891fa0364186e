// Gradient all-reduce in buckets that start while backward is still running.
//
// The flat gradient buffer is cut into buckets of about `bucket_bytes` along layer boundaries,
// from the last layer back (backward's order: AlexNet's FC layers, 58 M of its 61 M parameters,
// come first). Backward reports each layer's finished gradients through ready(); a bucket whose
// layers are all done is handed to a communication thread that averages it over the ranks while
// backward goes on with the earlier layers. The caller then waits for each bucket in turn and
// updates its parameters, so the update of one bucket overlaps the all-reduce of the next.
// Nothing is allocated after construction.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm {

struct Bucket {
  size_t offset = 0, count = 0;  // floats of the flat gradient buffer
};

// Buckets over `spans` (each a layer's parameter range, given in backward order): consecutive
// spans join one bucket until it holds at least bucket_floats; a span is never split. The
// buckets tile [first span's begin ... ) without gaps, padding between spans included.
std::vector<Bucket> plan_buckets(const std::vector<Bucket>& spans, size_t bucket_floats);

struct BucketTimes {
  double reduce_seconds = 0;   // the communication thread's time in all-reduces this step
  double exposed_seconds = 0;  // the caller's time blocked in wait(): communication not hidden
};

class GradientBuckets {
 public:
  // `layer_spans`: every layer's parameter range, in backward order (see plan_buckets).
  // overlap = false: nothing runs during backward; wait() reduces every bucket on the caller's
  // thread (the baseline the overlap is measured against).
  GradientBuckets(Communicator& comm, float* grads, const std::vector<Bucket>& layer_spans,
                  size_t bucket_floats, WireType wire, bool overlap);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Before each backward.
  void begin_step();
  // From backward: one layer's span of gradients, [offset, offset + count), is final.
  void ready(size_t offset, size_t count);
  // Blocks until bucket i (in backward order) is averaged over the ranks; rethrows a
  // communication failure.
  void wait(size_t i);
  // Blocks until every bucket is done: after it the caller may use the communicator itself.
  void wait_all();
  BucketTimes times() const { return times_; }

  // Called on the communication thread after each bucket's all-reduce (profiling); set before
  // the first step.
  using Observer = std::function<void(size_t bucket, std::chrono::steady_clock::time_point start,
                                      std::chrono::steady_clock::time_point end)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  size_t bucket_of(size_t offset, size_t count) const;
  void communication_loop();
  void reduce(size_t i);

  Communicator& comm_;
  float* grads_;
  const std::vector<Bucket> buckets_;
  const WireType wire_;
  const bool overlap_;

  std::mutex mutex_;
  std::condition_variable queued_, finished_;
  std::vector<size_t> spans_;      // layer spans in each bucket
  std::vector<size_t> remaining_;  // spans of each bucket not yet reported ready this step
  std::vector<size_t> queue_;      // bucket indices, a fixed ring of buckets_.size() slots
  size_t queue_head_ = 0, queue_tail_ = 0;
  std::vector<char> done_;
  std::exception_ptr error_;
  bool stopping_ = false;
  double reduce_seconds_ = 0;  // accumulated by the communication thread under mutex_
  BucketTimes times_;
  Observer observer_;
  std::thread thread_;
};

}  // namespace alexnet::comm
