// TensorBoardWriter (trainer/tensorboard_writer.h): the TFRecord framing checked byte by byte
// against an independent CRC-32C, the events decoded back, and TensorBoard's own
// EventAccumulator (tests/trainer/read_tensorboard_events.py, in the venv that the
// make_python_venv fixture provides) reading the scalars.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/subprocess.h"
#include "tests/temp_dir.h"
#include "trainer/tensorboard_event.pb.h"
#include "trainer/tensorboard_writer.h"

// Counts every operator new of this binary, to see that add_scalar stops allocating once warm.
namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace
void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// noinline: inlined, GCC 12 sees free() of operator new's pointer (-Wmismatched-new-delete).
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace alexnet::trainer {
namespace {

const std::string kReader = ALEXNET_SOURCE_DIR "/tests/trainer/read_tensorboard_events.py";

using test::TempDir;

// The definition, one bit at a time (reflected Castagnoli polynomial), independent of the
// writer's table.
uint32_t bitwise_crc32c(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

uint32_t bitwise_masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = bitwise_crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

uint64_t get_le(const std::string& bytes, size_t at, int count) {
  uint64_t v = 0;
  for (int i = 0; i < count; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[at + i])) << (8 * i);
  }
  return v;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Splits a TFRecord file into its records, checking the framing of each with the bitwise CRC.
std::vector<std::string> read_records(const std::string& path) {
  const std::string bytes = read_bytes(path);
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_GE(bytes.size() - at, 16u) << "truncated record at byte " << at;
    if (bytes.size() - at < 16) break;
    const uint64_t length = get_le(bytes, at, 8);
    EXPECT_EQ(get_le(bytes, at + 8, 4), bitwise_masked_crc32c(bytes.data() + at, 8))
        << "length CRC of the record at byte " << at;
    EXPECT_LE(length, bytes.size() - at - 16) << "record at byte " << at << " overruns the file";
    if (length > bytes.size() - at - 16) break;
    std::string data = bytes.substr(at + 12, length);
    EXPECT_EQ(get_le(bytes, at + 12 + length, 4), bitwise_masked_crc32c(data.data(), data.size()))
        << "data CRC of the record at byte " << at;
    records.push_back(std::move(data));
    at += 16 + length;
  }
  return records;
}

std::filesystem::path only_file_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files.push_back(entry.path());
  EXPECT_EQ(files.size(), 1u);
  return files.empty() ? std::filesystem::path() : files[0];
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

TEST(TensorBoardCrc32c, KnownCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(bitwise_crc32c(check.data(), check.size()), 0xE3069283u);  // the test's own oracle
  EXPECT_EQ(crc32c(check.data(), check.size()), 0xE3069283u);
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
  // Every table entry is reached by 256 bytes of every value, at every length up to 300.
  std::string bytes;
  for (int i = 0; i < 300; ++i) bytes.push_back(static_cast<char>((i * 167 + 13) & 0xFF));
  for (size_t n = 0; n <= bytes.size(); ++n) {
    ASSERT_EQ(crc32c(bytes.data(), n), bitwise_crc32c(bytes.data(), n)) << "length " << n;
    ASSERT_EQ(masked_crc32c(bytes.data(), n), bitwise_masked_crc32c(bytes.data(), n));
  }
}

TEST(TensorBoardWriter, FileStartsWithFileVersionRecord) {
  TempDir tmp;
  const std::filesystem::path dir = tmp.path() / "runs" / "a";  // created by the writer
  const double before = now_seconds();
  std::string path;
  {
    TensorBoardWriter writer(dir.string());
    path = writer.path();
  }
  EXPECT_EQ(only_file_in(dir), std::filesystem::path(path));
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  const std::string name = std::filesystem::path(path).filename().string();
  const std::string prefix = "events.out.tfevents.";
  std::string suffix = ".";  // appended, not "." + ...: GCC 12 gives a false -Wrestrict there
  suffix += host;
  suffix += '.';
  suffix += std::to_string(::getpid());
  suffix += ".alexnet";
  ASSERT_EQ(name.rfind(prefix, 0), 0u) << name;
  ASSERT_GT(name.size(), prefix.size() + suffix.size()) << name;
  EXPECT_EQ(name.substr(name.size() - suffix.size()), suffix) << name;
  const int64_t stamp =
      std::stoll(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
  EXPECT_NEAR(static_cast<double>(stamp), before, 5.0);

  const std::vector<std::string> records = read_records(path);
  ASSERT_EQ(records.size(), 1u);
  tensorboard::Event event;
  ASSERT_TRUE(event.ParseFromString(records[0]));
  EXPECT_EQ(event.what_case(), tensorboard::Event::kFileVersion);
  EXPECT_EQ(event.file_version(), "brain.Event:2");
  EXPECT_GE(event.wall_time(), before - 1.0);
  EXPECT_LE(event.wall_time(), now_seconds() + 1.0);
}

TEST(TensorBoardWriter, ScalarEventsDecodeBack) {
  TempDir tmp;
  const double before = now_seconds();
  TensorBoardWriter writer(tmp.path().string());
  writer.add_scalar("train/loss", 2.5, 0);
  writer.add_scalar("train/loss", 0.0, 1);  // 0.0 must still be written (oneof presence)
  writer.add_scalar("lr", 0.1, int64_t{1} << 40);
  writer.flush();  // readable while the writer is open

  const std::vector<std::string> records = read_records(writer.path());
  ASSERT_EQ(records.size(), 4u);
  const std::vector<std::pair<std::string, std::pair<float, int64_t>>> expected = {
      {"train/loss", {2.5f, 0}}, {"train/loss", {0.0f, 1}}, {"lr", {0.1f, int64_t{1} << 40}}};
  for (size_t i = 0; i < expected.size(); ++i) {
    tensorboard::Event event;
    ASSERT_TRUE(event.ParseFromString(records[i + 1]));
    ASSERT_EQ(event.what_case(), tensorboard::Event::kSummary) << i;
    ASSERT_EQ(event.summary().value_size(), 1) << i;
    const tensorboard::Summary::Value& v = event.summary().value(0);
    EXPECT_EQ(v.tag(), expected[i].first);
    ASSERT_EQ(v.value_case(), tensorboard::Summary::Value::kSimpleValue) << i;
    EXPECT_EQ(v.simple_value(), expected[i].second.first);
    EXPECT_EQ(event.step(), expected[i].second.second);
    EXPECT_GE(event.wall_time(), before - 1.0);
    EXPECT_LE(event.wall_time(), now_seconds() + 1.0);
  }
}

TEST(TensorBoardWriter, AddScalarDoesNotAllocateOnceWarm) {
  TempDir tmp;
  TensorBoardWriter writer(tmp.path().string());
  writer.add_scalar("a rather long tag, longer than any below", 1.0, 1);
  const std::string long_tag(100, 'x');
  const int64_t before = g_allocations.load();
  for (int64_t step = 2; step < 1000; ++step) {
    writer.add_scalar(step % 2 ? "train/loss" : "train/top1", 1.0 / static_cast<double>(step),
                      step);
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
  // The counter sees protobuf's allocations: a tag longer than all before grows the string.
  writer.add_scalar(long_tag, 1.0, 1000);
  EXPECT_GT(g_allocations.load() - before, 0);
}

TEST(TensorBoardWriter, UnwritableDirectoryThrowsNamingIt) {
  TempDir tmp;
  const std::filesystem::path file = tmp.path() / "a-file";
  std::ofstream(file) << "x";
  const std::string dir = (file / "runs").string();  // a folder under a regular file
  try {
    TensorBoardWriter writer(dir);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(dir), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(TensorBoardWriter, TensorBoardReadsTheScalars) {
  const char* python = std::getenv("ALEXNET_TEST_VENV_PYTHON");
  if (python == nullptr || *python == '\0') {
    GTEST_SKIP() << "ALEXNET_TEST_VENV_PYTHON is not set (run through ctest, whose "
                    "make_python_venv fixture makes the venv with tensorboard)";
  }
  if (!std::filesystem::exists(python)) {
    GTEST_SKIP() << "ALEXNET_TEST_VENV_PYTHON=" << python << " does not exist";
  }
  TempDir tmp;
  const std::filesystem::path dir = tmp.path() / "logs";
  // tag -> step -> value; 0.0 and 0.1 (not a float) included on purpose.
  const std::map<std::string, std::map<int64_t, double>> written = {
      {"train/loss", {{1, 2.302585}, {2, 1.75}, {3, 0.0}, {4, 0.1}, {5, 1e-7}}},
      {"val/top1", {{5, 0.8125}}}};
  {
    TensorBoardWriter writer(dir.string());
    for (int64_t step = 1; step <= 5; ++step) {
      writer.add_scalar("train/loss", written.at("train/loss").at(step), step);
    }
    writer.add_scalar("val/top1", written.at("val/top1").at(5), 5);
  }

  const std::string log = (tmp.path() / "reader.log").string();
  const int status = test::run(test::shell_quote(python) + " " + test::shell_quote(kReader) + " " +
                                   test::shell_quote(dir.string()),
                               log);
  const std::string output = test::read_text(log);
  ASSERT_EQ(status, 0) << output;

  std::map<std::string, std::map<int64_t, double>> read;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    // "TAG STEP VALUE"; anything else (a warning from TensorBoard on stderr) is passed over.
    std::istringstream fields(line);
    std::string tag, value, rest;
    int64_t step = 0;
    if (!(fields >> tag >> step >> value) || (fields >> rest)) continue;
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0') continue;
    EXPECT_TRUE(read[tag].emplace(step, v).second)
        << "two points for " << tag << " at step " << step;
  }
  ASSERT_EQ(read.size(), written.size()) << output;
  for (const auto& [t, points] : written) {
    ASSERT_EQ(read[t].size(), points.size()) << t << "\n" << output;
    for (const auto& [s, v] : points) {
      ASSERT_EQ(read[t].count(s), 1u) << t << " step " << s << "\n" << output;
      // TensorBoard's simple_value is a float: exact after that rounding.
      EXPECT_EQ(read[t][s], static_cast<double>(static_cast<float>(v))) << t << " step " << s;
    }
  }
}

}  // namespace
}  // namespace alexnet::trainer
