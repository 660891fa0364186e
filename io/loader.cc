// Loader: I/O thread -> batch slots -> augmentation threads -> trainer, with bounded prefetch.
#include "io/loader.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

#include "io/error.h"

namespace alexnet::io {

Loader::Loader(const Dataset& dataset, LoaderConfig config)
    : dataset_(dataset), config_(std::move(config)) {
  const DatasetMeta& m = dataset_.meta();
  if (config_.batch_size < 1) throw DataError("batch size must be at least 1");
  if (config_.world < 1 || config_.rank < 0 || config_.rank >= config_.world) {
    throw DataError("rank " + std::to_string(config_.rank) + " is outside a world of " +
                    std::to_string(config_.world));
  }
  if (config_.workers < 1) throw DataError("the loader needs at least one worker thread");
  if (config_.prefetch < 1) throw DataError("prefetch must be at least 1 batch");
  if (config_.sampler.window_blocks < 1) throw DataError("shuffle window must be at least 1 block");
  if (config_.start_epoch < 0 || config_.start_step < 0) {
    throw DataError("start epoch and step must not be negative");
  }
  validate(config_.augment, m.height, m.width, m.channels);

  blocks_ = make_blocks(dataset_.shards(), dataset_.sample_bytes(), config_.block_bytes);
  samples_per_rank_ =
      samples_for_rank(dataset_.size(), config_.sampler.shuffle, config_.rank, config_.world);
  steps_per_epoch_ = config_.drop_last
                         ? samples_per_rank_ / config_.batch_size
                         : (samples_per_rank_ + config_.batch_size - 1) / config_.batch_size;
  if (steps_per_epoch_ == 0) {
    throw DataError(
        "rank " + std::to_string(config_.rank) + " has " + std::to_string(samples_per_rank_) +
        " samples per epoch, fewer than one batch of " + std::to_string(config_.batch_size));
  }
  if (config_.start_step >= steps_per_epoch_) {
    throw DataError("start step " + std::to_string(config_.start_step) + " is past the " +
                    std::to_string(steps_per_epoch_) + " steps of an epoch");
  }
  sample_elements_ = config_.augment.crop_height * config_.augment.crop_width * m.channels;

  // All memory up front: two window buffers and `prefetch` batch slots, touched now so that no
  // page fault lands in the training loop.
  const auto batch = static_cast<size_t>(config_.batch_size);
  for (Window& w : windows_) {
    w.data.assign(
        static_cast<size_t>(max_window_samples(blocks_, config_.sampler)) * dataset_.sample_bytes(),
        0);
  }
  slots_.resize(static_cast<size_t>(config_.prefetch));
  for (Slot& s : slots_) {
    s.raw.assign(batch * dataset_.sample_bytes(), 0);
    if (config_.augment_on_host)
      s.images.assign(batch * static_cast<size_t>(sample_elements_), 0.0f);
    s.labels.assign(batch, 0);
    s.indices.assign(batch, 0);
  }
  staged_.reserve(slots_.size());

  read_thread_ = std::thread([this] { read_main(); });
  gather_thread_ = std::thread([this] { gather_main(); });
  for (int i = 0; i < config_.workers; ++i) workers_.emplace_back([this] { worker_main(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  notify_all();
  if (read_thread_.joinable()) read_thread_.join();
  if (gather_thread_.joinable()) gather_thread_.join();
  for (auto& w : workers_) w.join();
}

void Loader::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = error;
    stop_ = true;
  }
  notify_all();
}

void Loader::notify_all() {
  slot_freed_.notify_all();
  slot_staged_.notify_all();
  slot_ready_.notify_all();
  window_filled_.notify_all();
  window_emptied_.notify_all();
}

Loader::Slot& Loader::acquire_slot(int64_t sequence) {
  Slot& slot = slots_[static_cast<size_t>(sequence % config_.prefetch)];
  std::unique_lock<std::mutex> lock(mutex_);
  slot_freed_.wait(lock, [&] { return stop_ || slot.state == SlotState::kFree; });
  if (!stop_) {
    slot.state = SlotState::kFilling;
    slot.sequence = sequence;
  }
  return slot;
}

void Loader::read_main() {
  try {
    const size_t sample_bytes = dataset_.sample_bytes();
    const int64_t batch = config_.batch_size;
    int64_t windows_read = 0;
    for (int64_t e = config_.start_epoch;
         config_.epochs <= 0 || e < config_.start_epoch + config_.epochs; ++e) {
      auto plan = std::make_shared<const EpochPlan>(
          plan_epoch(blocks_, dataset_.size(), config_.sampler, e, config_.rank, config_.world));
      const int64_t first_step = e == config_.start_epoch ? config_.start_step : 0;
      const int64_t begin = first_step * batch;
      const int64_t end = std::min<int64_t>(steps_per_epoch_ * batch, samples_per_rank_);
      for (const auto& w : plan->windows) {
        if (w.first_position + w.samples <= begin) continue;  // resuming: skip whole windows
        if (w.first_position >= end) break;
        Window& window = windows_[static_cast<size_t>(windows_read % 2)];
        {
          std::unique_lock<std::mutex> lock(mutex_);
          window_emptied_.wait(lock, [&] { return stop_ || !window.full; });
          if (stop_) return;
        }
        for (size_t r = w.first_read; r < w.end_read; ++r) {
          const auto& read = plan->reads[r];
          dataset_.read_images(
              read.shard, read.row, read.count,
              window.data.data() + static_cast<size_t>(read.window_offset) * sample_bytes);
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          window.plan = plan;
          window.epoch = e;
          window.lo = std::max(begin, w.first_position);
          window.hi = std::min(end, w.first_position + w.samples);
          window.end = end;
          window.full = true;
        }
        window_filled_.notify_one();
        ++windows_read;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      windows_total_ = windows_read;
    }
    window_filled_.notify_one();
  } catch (...) {
    fail(std::current_exception());
  }
}

void Loader::gather_main() {
  try {
    const size_t sample_bytes = dataset_.sample_bytes();
    const int64_t batch = config_.batch_size;
    const std::span<const int32_t> labels = dataset_.labels();
    int64_t sequence = 0;
    Slot* slot = nullptr;
    for (int64_t gathered = 0;; ++gathered) {
      Window& window = windows_[static_cast<size_t>(gathered % 2)];
      {
        std::unique_lock<std::mutex> lock(mutex_);
        window_filled_.wait(lock, [&] {
          return stop_ || window.full || (windows_total_ >= 0 && gathered == windows_total_);
        });
        if (stop_) return;
        if (!window.full) break;  // every window gathered
      }
      const EpochPlan& plan = *window.plan;
      for (int64_t k = window.lo; k < window.hi; ++k) {
        const int64_t in_batch = k % batch;
        if (in_batch == 0) {
          slot = &acquire_slot(sequence);
          {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stop_) return;
          }
          const int64_t step = k / batch;
          slot->batch = Batch{window.epoch,
                              step,
                              steps_per_epoch_,
                              std::min(batch, window.end - step * batch),
                              config_.augment_on_host ? slot->images.data() : nullptr,
                              slot->raw.data(),
                              slot->labels.data(),
                              slot->indices.data()};
        }
        const int64_t index = plan.order[static_cast<size_t>(k)];
        std::memcpy(slot->raw.data() + static_cast<size_t>(in_batch) * sample_bytes,
                    window.data.data() +
                        static_cast<size_t>(plan.slot[static_cast<size_t>(k)]) * sample_bytes,
                    sample_bytes);
        slot->labels[static_cast<size_t>(in_batch)] = labels[static_cast<size_t>(index)];
        slot->indices[static_cast<size_t>(in_batch)] = index;
        if (in_batch + 1 == slot->batch.size) {
          {
            std::lock_guard<std::mutex> lock(mutex_);
            slot->state = SlotState::kStaged;
            staged_.push_back(static_cast<size_t>(slot - slots_.data()));
          }
          slot_staged_.notify_one();
          ++sequence;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        window.full = false;
        window.plan.reset();
      }
      window_emptied_.notify_one();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      produced_end_ = sequence;
    }
    slot_ready_.notify_all();
    slot_staged_.notify_all();
  } catch (...) {
    fail(std::current_exception());
  }
}

void Loader::worker_main() {
  try {
    const DatasetMeta& m = dataset_.meta();
    const size_t sample_bytes = dataset_.sample_bytes();
    for (;;) {
      Slot* slot = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        slot_staged_.wait(lock, [&] { return stop_ || !staged_.empty() || produced_end_ >= 0; });
        if (stop_ || staged_.empty()) return;
        slot = &slots_[staged_.front()];
        staged_.erase(staged_.begin());
        slot->state = SlotState::kAugmenting;
      }
      const Batch& b = slot->batch;
      for (int64_t i = 0; config_.augment_on_host && i < b.size; ++i) {
        const auto n = static_cast<size_t>(i);
        AugmentDraw draw = draw_augmentation(config_.augment, m.height, m.width, m.channels,
                                             config_.sampler.seed, b.epoch, slot->indices[n]);
        augment_image(slot->raw.data() + n * sample_bytes, m.height, m.width, m.channels,
                      config_.augment, draw,
                      slot->images.data() + n * static_cast<size_t>(sample_elements_));
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        slot->state = SlotState::kReady;
      }
      slot_ready_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

const Batch* Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (in_use_ != nullptr) {
    in_use_->state = SlotState::kFree;
    in_use_ = nullptr;
    slot_freed_.notify_one();
  }
  Slot& slot = slots_[static_cast<size_t>(consumed_ % config_.prefetch)];
  auto ready = [&] {
    return error_ || stop_ || (slot.sequence == consumed_ && slot.state == SlotState::kReady) ||
           (produced_end_ >= 0 && consumed_ >= produced_end_);
  };
  if (!ready()) {
    auto start = std::chrono::steady_clock::now();
    slot_ready_.wait(lock, ready);
    wait_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (error_) {
    try {
      std::rethrow_exception(error_);
    } catch (const DataError&) {
      throw;
    } catch (const std::exception& e) {
      throw DataError(std::string("data loader: ") + e.what());
    }
  }
  if (stop_ || (produced_end_ >= 0 && consumed_ >= produced_end_)) return nullptr;
  slot.state = SlotState::kInUse;
  in_use_ = &slot;
  ++consumed_;
  return &slot.batch;
}

}  // namespace alexnet::io
