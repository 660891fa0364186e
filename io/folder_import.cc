// Folder import: scan the class folders, decode and resize on worker threads into a bounded ring
// of slots, write the slots strictly in import order on the calling thread.
#include "io/folder_import.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/error.h"
#include "io/image_decode.h"
#include "io/image_resize.h"
#include "io/limits.h"
#include "io/progress.h"
#include "io/shard_writer.h"

namespace alexnet::io {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMaxThreads = 256;

struct ImageList {
  std::vector<std::string> class_names;
  std::vector<std::string> paths;  // class by class, sorted within a class
  std::vector<int32_t> labels;     // per path
};

bool is_hidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name[0] == '.';
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  for (char& ch : ext) ch = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

ImageList scan_tree(const std::string& root) {
  std::error_code ec;
  const fs::file_status root_status = fs::status(root, ec);
  if (root_status.type() == fs::file_type::not_found) throw DataError("'" + root + "': not found");
  if (root_status.type() == fs::file_type::none) throw DataError("'" + root + "': " + ec.message());
  if (!fs::is_directory(root_status)) throw DataError("'" + root + "': not a folder");
  ImageList list;
  try {
    for (const auto& entry : fs::directory_iterator(root)) {
      if (!is_hidden(entry.path()) && entry.is_directory()) {
        list.class_names.push_back(entry.path().filename().string());
      }
    }
    std::sort(list.class_names.begin(), list.class_names.end());
    if (list.class_names.empty()) {
      throw DataError("'" + root + "': no class folders (expected ROOT/<class>/<images>)");
    }
    for (size_t label = 0; label < list.class_names.size(); ++label) {
      const fs::path folder = fs::path(root) / list.class_names[label];
      std::vector<std::string> images;
      for (auto it = fs::recursive_directory_iterator(folder); it != fs::end(it); ++it) {
        if (is_hidden(it->path())) {
          it.disable_recursion_pending();
        } else if (!it->is_directory() && has_image_extension(it->path())) {
          // Anything but a regular file (a FIFO, a device, a dangling link) is listed too, and
          // then refused by the decoder with its name, rather than silently left out.
          images.push_back(it->path().string());
        }
      }
      if (images.empty()) {
        throw DataError("'" + folder.string() +
                        "': class folder has no .jpg, .jpeg or .png images");
      }
      std::sort(images.begin(), images.end());
      list.paths.insert(list.paths.end(), images.begin(), images.end());
      list.labels.insert(list.labels.end(), images.size(), static_cast<int32_t>(label));
    }
  } catch (const fs::filesystem_error& e) {
    throw DataError("'" + e.path1().string() + "': " + e.code().message());
  }
  return list;
}

// Decodes the images of a write sequence on worker threads. Worker t takes positions t,
// t + threads, ...; position p goes to slot p % slots, which it may fill only once position
// p - slots has been written and released, so at most `slots` decoded images exist at a time
// and their buffers are allocated once. The caller takes the positions strictly in order.
class DecodePipeline {
 public:
  enum class State { kFree, kReady, kBad, kFailed };
  struct Slot {
    State state = State::kFree;
    std::vector<uint8_t> pixels;   // size * size * 3, when kReady
    std::string error;             // kBad: the DataError message naming the file
    std::exception_ptr exception;  // kFailed: anything else (out of memory, ...)
  };

  // paths[sequence[p]] is the image of position p; both must outlive the pipeline.
  DecodePipeline(const std::vector<std::string>& paths, const std::vector<int64_t>& sequence,
                 int threads, int64_t size)
      : paths_(paths), sequence_(sequence), size_(size), threads_(threads) {
    slots_.resize(static_cast<size_t>(4 * threads_));
    for (auto& slot : slots_) slot.pixels.resize(static_cast<size_t>(size_ * size_ * 3));
    try {
      for (int t = 0; t < threads_; ++t) workers_.emplace_back([this, t] { work(t); });
    } catch (...) {
      stop();
      throw;
    }
  }
  ~DecodePipeline() { stop(); }
  DecodePipeline(const DecodePipeline&) = delete;
  DecodePipeline& operator=(const DecodePipeline&) = delete;

  // Waits for position p, the one after the last released; rethrows a worker's unexpected error.
  const Slot& wait(int64_t p) {
    Slot& slot = slot_of(p);
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return slot.state != State::kFree; });
    if (slot.state == State::kFailed) std::rethrow_exception(slot.exception);
    return slot;
  }

  // Position p has been written: its slot may take position p + slots.
  void release(int64_t p) {
    {
      std::lock_guard lock(mutex_);
      slot_of(p).state = State::kFree;
      released_ = p + 1;
    }
    free_.notify_all();
  }

  // Stops the workers after their current image and joins them; idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    free_.notify_all();
    for (auto& worker : workers_) {
      if (worker.joinable()) worker.join();
    }
  }

 private:
  Slot& slot_of(int64_t p) { return slots_[static_cast<size_t>(p) % slots_.size()]; }

  void work(int t) {
    const auto n = static_cast<int64_t>(sequence_.size());
    const auto ring = static_cast<int64_t>(slots_.size());
    for (int64_t p = t; p < n; p += threads_) {
      {
        std::unique_lock lock(mutex_);
        free_.wait(lock, [&] { return stopping_ || p < released_ + ring; });
        if (stopping_) return;
      }
      // The slot is this worker's alone until it is marked ready.
      Slot& slot = slot_of(p);
      State state = State::kReady;
      try {
        const std::string& path = paths_[static_cast<size_t>(sequence_[static_cast<size_t>(p)])];
        DecodedImage image = decode_image_file(path, size_);
        resize_shorter_and_center_crop(image.pixels.data(), image.height, image.width, 3, size_,
                                       slot.pixels.data());
      } catch (const DataError& e) {
        state = State::kBad;
        slot.error = e.what();
      } catch (...) {
        state = State::kFailed;
        slot.exception = std::current_exception();
      }
      {
        std::lock_guard lock(mutex_);
        slot.state = state;
      }
      // Only the writing thread waits on ready_; a missed wake-up cannot happen because the
      // state is changed under the mutex it waits with.
      ready_.notify_one();
    }
  }

  const std::vector<std::string>& paths_;
  const std::vector<int64_t>& sequence_;
  const int64_t size_;
  const int threads_;
  std::vector<Slot> slots_;
  std::mutex mutex_;
  std::condition_variable ready_, free_;
  int64_t released_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;  // last: started after, joined before the rest is destroyed
};

}  // namespace

ImportResult import_folder(const std::string& root, const FolderImportOptions& folder,
                           const ImportOptions& options) {
  if (folder.size <= 0 || folder.size > limits::kMaxImageSide) {
    throw DataError("image size must be in [1, " + std::to_string(limits::kMaxImageSide) +
                    "], got " + std::to_string(folder.size));
  }
  ImageList list = scan_tree(root);
  if (static_cast<int64_t>(list.class_names.size()) > limits::kMaxClasses) {
    throw DataError("'" + root + "': " + std::to_string(list.class_names.size()) +
                    " class folders, more than the limit of " +
                    std::to_string(limits::kMaxClasses));
  }
  const auto n = static_cast<int64_t>(list.paths.size());
  const auto num_classes = static_cast<int64_t>(list.class_names.size());
  ImportOrder order = import_order(n, options);

  // The write sequence: the training part, then the validation part.
  std::vector<int64_t> sequence = order.train;
  sequence.insert(sequence.end(), order.val.begin(), order.val.end());
  const auto train_n = static_cast<int64_t>(order.train.size());

  const std::string source = "import-folder " + root;
  const int64_t size = folder.size;
  // Both parts are written in full before either is renamed into place: an error in either
  // leaves no output at all.
  ShardWriter train(writer_config(train_prefix(options), size, size, 3, num_classes,
                                  list.class_names, source, options));
  std::unique_ptr<ShardWriter> val;
  if (!order.val.empty()) {
    val = std::make_unique<ShardWriter>(writer_config(
        val_prefix(options), size, size, 3, num_classes, list.class_names, source, options));
  }

  int threads =
      folder.threads > 0 ? folder.threads : static_cast<int>(std::thread::hardware_concurrency());
  // Each thread has 4 slots of size x size x 3 bytes: more threads than cores buy nothing.
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, std::min<int64_t>(n, kMaxThreads)));
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  Progress progress("importing " + root, n, "img", options.progress);
  DecodePipeline pipeline(list.paths, sequence, threads, size);
  int64_t skipped = 0;
  for (int64_t p = 0; p < n; ++p) {
    const DecodePipeline::Slot& slot = pipeline.wait(p);
    if (slot.state == DecodePipeline::State::kBad) {
      if (!folder.skip_bad) throw DataError(slot.error);
      // On a terminal, first clear the progress line that is being redrawn in place.
      std::fprintf(stderr, "%swarning: skipping %s\n", tty ? "\r\033[K" : "", slot.error.c_str());
      ++skipped;
    } else {
      const int32_t label = list.labels[static_cast<size_t>(sequence[static_cast<size_t>(p)])];
      (p < train_n ? train : *val).add(slot.pixels.data(), label);
    }
    pipeline.release(p);
    progress.update(p + 1);
  }
  pipeline.stop();
  progress.finish();
  if (skipped > 0) {
    std::fprintf(stderr, "warning: left out %lld unreadable of %lld images\n",
                 static_cast<long long>(skipped), static_cast<long long>(n));
  }
  // Checked before either part is finished, so that an empty part leaves no output at all.
  if (train.count() == 0 || (val && val->count() == 0)) {
    throw DataError("'" + root + "': no readable images " +
                    (train.count() == 0 ? std::string("for the training part")
                                        : std::string("for the validation part")) +
                    " after leaving out " + std::to_string(skipped) + " bad ones");
  }
  return finish_parts(train, val.get());
}

}  // namespace alexnet::io
