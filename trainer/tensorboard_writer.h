// Scalars (loss, accuracy, learning rate) as a TensorBoard event file, written without
// TensorFlow: `tensorboard --logdir DIR` shows them. The file is a TFRecord stream of
// tensorflow.Event protos (trainer/tensorboard_event.proto holds the wire-compatible subset).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace alexnet::trainer {

// Writes DIR/events.out.tfevents.<unix seconds>.<hostname>.<pid>.alexnet, starting with the
// file_version event TensorBoard expects. Not thread-safe: one writer per process (rank 0).
// Failures (folder, open, write, flush) throw std::runtime_error naming the file.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& directory);
  ~TensorBoardWriter();  // flushes; errors there are dropped (no throwing from a destructor)
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event: wall time now, `step`, and the value as a float (TensorBoard's simple_value).
  // Buffered by stdio; visible to a reader after flush().
  void add_scalar(const std::string& tag, double value, int64_t step);
  void flush();
  const std::string& path() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// CRC-32C (Castagnoli), the checksum of TFRecord framing; exposed for the tests.
uint32_t crc32c(const void* data, size_t size);
// TFRecord stores the CRC masked (rotated and offset), since a CRC over data that itself
// contains CRCs is weak.
uint32_t masked_crc32c(const void* data, size_t size);

}  // namespace alexnet::trainer
