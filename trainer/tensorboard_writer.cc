// TensorBoard event files: TFRecord framing of serialized tensorflow.Event protos.
#include "trainer/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "trainer/tensorboard_event.pb.h"

namespace alexnet::trainer {
namespace {

// Debian 12 has no package of Google's crc32c library, and a few records per step do not need
// its hardware path: a byte-at-a-time table of the reflected Castagnoli polynomial 0x82F63B78,
// built at compile time.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    table[i] = crc;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// TFRecord integers are little-endian whatever the host.
void put_le(unsigned char* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

struct TensorBoardWriter::State {
  struct Close {
    void operator()(std::FILE* f) const { std::fclose(f); }  // flushes; errors go unreported
  };
  std::string path;
  // Owned here so that a constructor throwing after fopen still closes it.
  std::unique_ptr<std::FILE, Close> file;
  // Reused across add_scalar calls: protobuf keeps the nested messages and string capacities,
  // and the std::string keeps its capacity, so steady-state logging does not allocate.
  tensorboard::Event event;
  std::string record;

  void fail(const char* what) const {
    throw std::runtime_error("'" + path + "': " + what + ": " + std::strerror(errno));
  }

  // One TFRecord: length, masked CRC of the length bytes, data, masked CRC of the data.
  void write_record(const std::string& data) {
    unsigned char header[12];
    put_le(header, data.size(), 8);
    put_le(header + 8, masked_crc32c(header, 8), 4);
    unsigned char footer[4];
    put_le(footer, masked_crc32c(data.data(), data.size()), 4);
    if (std::fwrite(header, 1, sizeof(header), file.get()) != sizeof(header) ||
        std::fwrite(data.data(), 1, data.size(), file.get()) != data.size() ||
        std::fwrite(footer, 1, sizeof(footer), file.get()) != sizeof(footer)) {
      fail("cannot write");
    }
  }
};

TensorBoardWriter::TensorBoardWriter(const std::string& directory)
    : state_(std::make_unique<State>()) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    throw std::runtime_error("'" + directory + "': cannot create directory: " + ec.message());
  }
  // The name TensorFlow's writers use (TensorBoard lists files matching "tfevents"); the
  // hostname and pid keep ranks and restarts sharing a folder from sharing a file.
  state_->path = (std::filesystem::path(directory) /
                  ("events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + hostname() +
                   "." + std::to_string(::getpid()) + ".alexnet"))
                     .string();
  state_->file.reset(std::fopen(state_->path.c_str(), "ab"));
  if (state_->file == nullptr) state_->fail("cannot open for appending");

  tensorboard::Event version;
  version.set_wall_time(unix_seconds_now());
  version.set_file_version("brain.Event:2");
  version.SerializeToString(&state_->record);
  state_->write_record(state_->record);
  flush();  // a reader polling the folder sees a valid file from the start
}

TensorBoardWriter::~TensorBoardWriter() = default;  // State closes the file, which flushes

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  tensorboard::Event& e = state_->event;
  e.set_wall_time(unix_seconds_now());
  e.set_step(step);
  tensorboard::Summary* summary = e.mutable_summary();
  tensorboard::Summary::Value* v =
      summary->value_size() > 0 ? summary->mutable_value(0) : summary->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  e.SerializeToString(&state_->record);
  state_->write_record(state_->record);
}

void TensorBoardWriter::flush() {
  if (std::fflush(state_->file.get()) != 0) state_->fail("cannot write");
}

const std::string& TensorBoardWriter::path() const { return state_->path; }

}  // namespace alexnet::trainer
