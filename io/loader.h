// The training and evaluation input pipeline of one rank, in four stages that overlap:
//   read thread    reads this rank's blocks from HDF5, a window at a time, into one of two window
//                  buffers (one HDF5 caller per loader: the library holds a global lock);
//   gather thread  copies the other window's samples, in shuffled order, into batch slots;
//   workers        augment the slots' uint8 images into float tensors;
//   the trainer    takes finished batches in order from next().
// Every buffer is allocated once, in the constructor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/augment.h"
#include "io/dataset.h"
#include "io/sampler.h"

namespace alexnet::io {

struct LoaderConfig {
  int64_t batch_size = 128;              // per rank
  SamplerConfig sampler;                 // seed, shuffle, window_blocks
  size_t block_bytes = size_t{1} << 20;  // HDF5 read size (rounded to whole chunks)
  bool drop_last = true;                 // drop an epoch's last partial batch (training) or keep it
  AugmentConfig augment;
  bool augment_on_host = true;  // false: deliver raw uint8 batches only (augment on the device)
  int rank = 0, world = 1;
  int workers = 1;          // augmentation threads
  int prefetch = 4;         // batches in flight between the I/O thread and the trainer
  int64_t start_epoch = 0;  // where to start (resume): epoch and step within it
  int64_t start_step = 0;
  int64_t epochs = 1;  // epochs to deliver from start_epoch; 0: without end
};

struct Batch {
  int64_t epoch = 0, step = 0;  // step within the epoch
  int64_t steps_in_epoch = 0;
  int64_t size = 0;                  // samples in this batch (the last one may be short)
  const float* images = nullptr;     // [size, C, h, w] (NCHW) or [size, h, w, C] (NHWC)
  const uint8_t* raw = nullptr;      // [size, H, W, C]: the stored samples, before augmentation
  const int32_t* labels = nullptr;   // [size]
  const int64_t* indices = nullptr;  // [size] global sample indices
};

class Loader {
 public:
  // The dataset must outlive the loader.
  Loader(const Dataset& dataset, LoaderConfig config);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch in order, or nullptr after the last one. The batch stays valid until the
  // next call. Rethrows (as DataError) any error met by the I/O or augmentation threads.
  const Batch* next();

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t sample_elements() const { return sample_elements_; }  // floats per sample
  // Seconds next() spent waiting for data: near zero when the pipeline keeps up.
  double wait_seconds() const { return wait_seconds_; }

 private:
  enum class SlotState { kFree, kFilling, kStaged, kAugmenting, kReady, kInUse };
  struct Slot {
    std::vector<uint8_t> raw;   // [batch, H, W, C]
    std::vector<float> images;  // [batch, sample_elements]; empty without host augmentation
    std::vector<int32_t> labels;
    std::vector<int64_t> indices;
    Batch batch;
    int64_t sequence = -1;  // batches since the loader started
    SlotState state = SlotState::kFree;
  };

  // A window of samples read from HDF5, handed from the read thread to the gather thread.
  struct Window {
    std::vector<uint8_t> data;  // [max window samples, H, W, C]
    std::shared_ptr<const EpochPlan> plan;
    int64_t epoch = 0, lo = 0, hi = 0;  // positions [lo, hi) of plan->order to gather
    int64_t end = 0;                    // positions this epoch delivers
    bool full = false;                  // read, not yet gathered
  };

  void read_main();
  void gather_main();
  void worker_main();
  void notify_all();
  Slot& acquire_slot(int64_t sequence);  // I/O thread: waits until the slot is free
  void fail(std::exception_ptr error);

  const Dataset& dataset_;
  LoaderConfig config_;
  std::vector<Block> blocks_;
  int64_t samples_per_rank_ = 0, steps_per_epoch_ = 0, sample_elements_ = 0;
  Window windows_[2];  // double buffer between the read and gather threads
  std::vector<Slot> slots_;

  std::mutex mutex_;
  std::condition_variable slot_freed_, slot_staged_, slot_ready_;
  std::condition_variable window_filled_, window_emptied_;
  int64_t windows_total_ = -1;  // windows the read thread will deliver, once it is done
  std::vector<size_t> staged_;  // FIFO of staged slots for the workers
  int64_t consumed_ = 0;        // sequence number the trainer takes next
  int64_t produced_end_ = -1;   // total batches, known once the I/O thread is done
  bool stop_ = false;
  std::exception_ptr error_;
  Slot* in_use_ = nullptr;
  double wait_seconds_ = 0;
  std::thread read_thread_, gather_thread_;
  std::vector<std::thread> workers_;
};

}  // namespace alexnet::io
