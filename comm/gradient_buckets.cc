// GradientBuckets: the bucket plan and the communication thread.
#include "comm/gradient_buckets.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace alexnet::comm {

using Clock = std::chrono::steady_clock;

std::vector<Bucket> plan_buckets(const std::vector<Bucket>& spans, size_t bucket_floats) {
  // Spans come last layer first: their offsets decrease. A bucket runs from its lowest span's
  // offset to the start of the bucket before it (the end of the buffer for the first one).
  std::vector<Bucket> buckets;
  if (spans.empty()) return buckets;
  size_t end = spans.front().offset + spans.front().count;
  size_t begin = end;
  for (const Bucket& s : spans) {
    if (s.offset + s.count > begin || s.offset > begin) {
      throw std::invalid_argument("plan_buckets: spans must come in decreasing offset order");
    }
    begin = s.offset;
    if (end - begin >= bucket_floats) {
      buckets.push_back({begin, end - begin});
      end = begin;
    }
  }
  if (end > begin) buckets.push_back({begin, end - begin});
  // The padding before the first span (offset 0 onward) belongs to the last bucket.
  if (!buckets.empty() && buckets.back().offset > 0) {
    buckets.back().count += buckets.back().offset;
    buckets.back().offset = 0;
  }
  return buckets;
}

GradientBuckets::GradientBuckets(Communicator& comm, float* grads,
                                 const std::vector<Bucket>& layer_spans, size_t bucket_floats,
                                 WireType wire, bool overlap)
    : comm_(comm),
      grads_(grads),
      buckets_(plan_buckets(layer_spans, bucket_floats)),
      wire_(wire),
      overlap_(overlap),
      spans_(buckets_.size()),
      remaining_(buckets_.size()),
      queue_(std::max<size_t>(buckets_.size(), 1)),
      done_(buckets_.size()) {
  for (const Bucket& s : layer_spans) ++spans_[bucket_of(s.offset, s.count)];
  if (overlap_ && comm_.size() > 1) thread_ = std::thread([this] { communication_loop(); });
  begin_step();
}

GradientBuckets::~GradientBuckets() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    queued_.notify_all();
    thread_.join();
  }
}

void GradientBuckets::begin_step() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < buckets_.size(); ++i) {
    remaining_[i] = spans_[i];
    done_[i] = 0;
  }
  queue_head_ = queue_tail_ = 0;
  reduce_seconds_ = 0;
  times_ = {};
}

size_t GradientBuckets::bucket_of(size_t offset, size_t count) const {
  // Buckets are in decreasing offset order: the first whose offset is <= offset.
  auto it = std::partition_point(buckets_.begin(), buckets_.end(),
                                 [&](const Bucket& b) { return b.offset > offset; });
  if (it == buckets_.end() || offset + count > it->offset + it->count) {
    throw std::logic_error("gradient span [" + std::to_string(offset) + ", +" +
                           std::to_string(count) + ") is not inside one bucket");
  }
  return static_cast<size_t>(it - buckets_.begin());
}

void GradientBuckets::ready(size_t offset, size_t count) {
  const size_t i = bucket_of(offset, count);
  std::unique_lock<std::mutex> lock(mutex_);
  if (remaining_[i] == 0) throw std::logic_error("a gradient span reported twice in one step");
  if (--remaining_[i] != 0 || !thread_.joinable()) return;
  queue_[queue_tail_++ % queue_.size()] = i;
  lock.unlock();
  queued_.notify_one();
}

void GradientBuckets::reduce(size_t i) {
  const Bucket& b = buckets_[i];
  comm_.all_reduce(grads_ + b.offset, b.count, ReduceOp::kAverage, wire_);
}

void GradientBuckets::communication_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    queued_.wait(lock, [&] { return stopping_ || queue_head_ != queue_tail_; });
    if (stopping_) return;
    const size_t i = queue_[queue_head_++ % queue_.size()];
    lock.unlock();
    const auto start = Clock::now();
    std::exception_ptr failure;
    try {
      reduce(i);
    } catch (...) {
      failure = std::current_exception();
    }
    const auto end = Clock::now();
    if (observer_) observer_(i, start, end);
    const double seconds = std::chrono::duration<double>(end - start).count();
    lock.lock();
    reduce_seconds_ += seconds;
    if (failure && !error_) error_ = failure;
    done_[i] = 1;
    finished_.notify_all();
  }
}

void GradientBuckets::wait(size_t i) {
  const auto start = Clock::now();
  if (!thread_.joinable()) {
    // No overlap (or one rank): reduce in order on this thread; bucket i and those before it.
    for (size_t k = 0; k <= i; ++k) {
      if (done_[k]) continue;
      const auto bucket_start = Clock::now();
      reduce(k);
      if (observer_) observer_(k, bucket_start, Clock::now());
      done_[k] = 1;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    times_.reduce_seconds += seconds;
    times_.exposed_seconds += seconds;
    return;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  finished_.wait(lock, [&] { return done_[i] != 0 || error_ != nullptr; });
  times_.exposed_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  times_.reduce_seconds = reduce_seconds_;
  if (error_) std::rethrow_exception(error_);
}

void GradientBuckets::wait_all() {
  for (size_t i = 0; i < buckets_.size(); ++i) wait(i);
}

}  // namespace alexnet::comm
