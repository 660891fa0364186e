// Checkpoint files: round trip, atomic commit, damage detection, shape checks, h5py readability.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "io/checkpoint_file.h"
#include "io/error.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::TempDir;

std::vector<float> iota_floats(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

void write_sample(const std::string& path, float start) {
  CheckpointWriter w(path);
  auto conv = iota_floats(2 * 3 * 5 * 5, start);
  auto bias = iota_floats(7, -start);
  std::vector<int64_t> rng{1, -2, 1ll << 40};
  std::vector<uint8_t> bytes{0, 255, 7};
  w.add("/model/features.0.weight", {2, 3, 5, 5}, conv.data());
  w.add("/model/classifier.6.bias", {7}, bias.data());
  w.add("/optimizer/momentum/features.0.weight", {2, 3, 5, 5}, conv.data());
  w.add("/rng/state", {3}, rng.data());
  w.add("/rng/bytes", {3}, bytes.data());
  w.set_attribute("/model", "arch", std::string("alexnet-mini"));
  w.set_attribute("/", "step", int64_t{1234});
  w.set_attribute("/train", "lr", 0.01);  // a group that holds no array
  w.set_attribute("/model/classifier.6.bias", "note", std::string("on an array"));
  w.commit();
}

TEST(CheckpointFile, RoundTrip) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  CheckpointReader r(path);
  EXPECT_EQ(r.arrays(), (std::vector<std::string>{
                            "/model/classifier.6.bias", "/model/features.0.weight",
                            "/optimizer/momentum/features.0.weight", "/rng/bytes", "/rng/state"}));
  std::vector<float> conv(150);
  r.read("/model/features.0.weight", {2, 3, 5, 5}, std::span<float>(conv));
  EXPECT_EQ(conv, iota_floats(150, 0.5f));
  std::vector<int64_t> rng(3);
  r.read("/rng/state", {3}, std::span<int64_t>(rng));
  EXPECT_EQ(rng, (std::vector<int64_t>{1, -2, 1ll << 40}));
  std::vector<uint8_t> bytes(3);
  r.read("/rng/bytes", {3}, std::span<uint8_t>(bytes));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0, 255, 7}));
  EXPECT_EQ(r.string_attribute("/model", "arch"), "alexnet-mini");
  EXPECT_EQ(r.int_attribute("/", "step"), 1234);
  EXPECT_DOUBLE_EQ(r.float_attribute("/train", "lr"), 0.01);
  EXPECT_EQ(r.string_attribute("/model/classifier.6.bias", "note"), "on an array");
  EXPECT_TRUE(r.has_attribute("/model", "arch"));
  EXPECT_FALSE(r.has_attribute("/model", "nothing"));
  EXPECT_FALSE(r.has_attribute("/nowhere", "arch"));
  EXPECT_EQ(r.type("/rng/state"), ArrayType::kInt64);
}

TEST(CheckpointFile, ReadChecksShapeTypeAndName) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  CheckpointReader r(path);
  std::vector<float> buf(150);
  try {
    r.read("/model/features.0.weight", {3, 2, 5, 5}, std::span<float>(buf));
    FAIL() << "a shape mismatch was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3, 5, 5]"), std::string::npos) << e.what();
  }
  std::vector<int64_t> ints(7);
  EXPECT_THROW(r.read("/model/classifier.6.bias", {7}, std::span<int64_t>(ints)), DataError);
  EXPECT_THROW(r.read("/model/missing", {7}, std::span<float>(buf.data(), 7)), DataError);
  EXPECT_THROW(r.string_attribute("/model", "missing"), DataError);
}

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CheckpointFile, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  {
    CheckpointWriter w(path);
    auto junk = iota_floats(10, 9.0f);
    w.add("/model/other", {10}, junk.data());
    EXPECT_EQ(names_in(dir.path()).size(), 2u);  // the old file and the temporary
  }                                              // no commit: an error, a signal, a full disk
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ckpt.h5"});
  CheckpointReader r(path);
  EXPECT_TRUE(r.has("/model/features.0.weight"));
  EXPECT_FALSE(r.has("/model/other"));
}

TEST(CheckpointFile, CommitReplacesAtomically) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  write_sample(path, 2.0f);
  CheckpointReader r(path);
  std::vector<float> conv(150);
  r.read("/model/features.0.weight", {2, 3, 5, 5}, std::span<float>(conv));
  EXPECT_EQ(conv[0], 2.0f);
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ckpt.h5"});
}

// Overwrites `count` bytes at `offset` of a file with 0x5A.
void damage(const std::string& path, long offset, size_t count) {
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, offset, SEEK_SET);
  std::vector<char> junk(count, 0x5A);
  std::fwrite(junk.data(), 1, junk.size(), f);
  std::fclose(f);
}

// The raw position of an array's first float in the file: search for its known bytes.
long find_bytes(const std::string& path, const std::vector<float>& values) {
  std::ifstream in(path, std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string needle(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  auto at = content.find(needle);
  return at == std::string::npos ? -1 : static_cast<long>(at);
}

TEST(CheckpointFile, DamagedDataIsRefused) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  long at = find_bytes(path, iota_floats(16, 0.5f));
  ASSERT_GE(at, 0);
  damage(path, at + 8, 4);  // one float of the weights
  try {
    CheckpointReader r(path);
    FAIL() << "a damaged checkpoint was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(CheckpointFile, TruncatedMissingAndForeignFilesAreRefused) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  EXPECT_THROW(CheckpointReader{path}, DataError);
  EXPECT_THROW(CheckpointReader{dir / "none.h5"}, DataError);
  auto shard = testing::write_pattern_dataset(dir / "ds", 4, 3, 3, 1, 2, 0);
  try {
    CheckpointReader r(shard[0]);
    FAIL() << "a dataset shard was accepted as a checkpoint";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not a checkpoint"), std::string::npos) << e.what();
  }
}

TEST(CheckpointFile, WriterRejectsBadNamesAndFolders) {
  TempDir dir;
  EXPECT_THROW(CheckpointWriter(dir / "missing/ckpt.h5"), DataError);
  CheckpointWriter w(dir / "ckpt.h5");
  float x = 1;
  EXPECT_THROW(w.add("relative", {1}, &x), DataError);
  w.add("/a/x", {1}, &x);
  EXPECT_THROW(w.add("/a/x", {1}, &x), DataError);
}

TEST(CheckpointFile, H5pyReadsTheLayout) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  const std::string out = dir / "py.txt";
  const std::string command =
      "/usr/bin/python3 -c \"import h5py, sys; f = h5py.File(sys.argv[1], 'r'); "
      "print(f['/model/features.0.weight'].shape, float(f['/model/features.0.weight'][0, 0, 0, "
      "1]), "
      "f['/model'].attrs['arch'], f.attrs['format'])\" " +
      path + " > " + out + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "python3 with h5py is needed (apt python3-h5py)";
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "(2, 3, 5, 5) 1.5 alexnet-mini alexnet-checkpoint-v1");
}

}  // namespace
}  // namespace alexnet::io
