// The alexnet-data binary end to end: import, inspect, and exit status 2 with one line on stderr
// for bad files, options and commands.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/hdf5_util.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

using testing::pattern_image;
using testing::pattern_label;
using testing::TempDir;
using testing::write_pattern_dataset;

const std::string kBinary = ALEXNET_BIN_DIR "/alexnet-data";

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

// Runs alexnet-data with `args` (already shell-quoted where needed), capturing both streams
// into files in `dir`.
CliResult run_cli(const TempDir& dir, const std::string& args) {
  const std::string out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string command = shell_quote(kBinary) + " " + args + " >" + shell_quote(out) + " 2>" +
                              shell_quote(err) + " </dev/null";
  int status = std::system(command.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Exit status 2 and exactly one newline-terminated line on stderr containing each of `parts`.
void expect_one_line_failure(const CliResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.exit_code, 2) << "stderr: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "stderr is not one line:\n" << r.err;
  for (const auto& part : parts) {
    EXPECT_NE(r.err.find(part), std::string::npos) << "stderr lacks '" << part << "': " << r.err;
  }
}

void put_be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}

// Plain (uncompressed) IDX images and labels of the test pattern.
void write_idx(const std::string& images, const std::string& labels, int64_t n, int64_t h,
               int64_t w, int64_t classes) {
  std::string img{0, 0, 8, 3}, lab{0, 0, 8, 1};
  put_be32(img, static_cast<uint32_t>(n));
  put_be32(img, static_cast<uint32_t>(h));
  put_be32(img, static_cast<uint32_t>(w));
  put_be32(lab, static_cast<uint32_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (uint8_t p : pattern_image(i, h, w, 1)) img.push_back(static_cast<char>(p));
    lab.push_back(static_cast<char>(pattern_label(i, classes)));
  }
  std::ofstream(images, std::ios::binary) << img;
  std::ofstream(labels, std::ios::binary) << lab;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kBinary))
        << kBinary << " not found: build the alexnet-data target first";
  }
  TempDir dir_;
};

TEST_F(Cli, ImportIdxThenInspect) {
  const std::string images = dir_ / "images.idx", labels = dir_ / "labels.idx";
  write_idx(images, labels, 29, 9, 7, 10);
  const std::string prefix = dir_ / "out";
  CliResult imp =
      run_cli(dir_, "import-idx --images " + shell_quote(images) + " --labels " +
                        shell_quote(labels) + " --out " + shell_quote(prefix) + " --quiet");
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_EQ(imp.err, "");  // --quiet: no progress line
  EXPECT_NE(imp.out.find("wrote 29 samples"), std::string::npos) << imp.out;
  const std::string shard = prefix + "-00000.h5";
  ASSERT_TRUE(std::filesystem::exists(shard));
  EXPECT_FALSE(std::filesystem::exists(prefix + "-00001.h5"));
  EXPECT_EQ(Dataset::open({shard}).size(), 29);

  CliResult ins = run_cli(dir_, "inspect " + shell_quote(shard));
  EXPECT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_EQ(ins.err, "");
  auto lines = lines_of(ins.out);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "total samples: 29"), lines.end()) << ins.out;
  EXPECT_NE(std::find(lines.begin(), lines.end(), "image: 9x7x1 uint8 (HWC)"), lines.end())
      << ins.out;

  // A glob, quoted so that alexnet-data expands it rather than the shell.
  CliResult glob = run_cli(dir_, "inspect " + shell_quote(prefix + "-*.h5"));
  EXPECT_EQ(glob.exit_code, 0) << glob.err;
  EXPECT_NE(glob.out.find("total samples: 29\n"), std::string::npos) << glob.out;
}

TEST_F(Cli, ImportIdxOptions) {
  const std::string images = dir_ / "images.idx", labels = dir_ / "labels.idx";
  write_idx(images, labels, 30, 4, 4, 3);
  const std::string prefix = dir_ / "split";
  CliResult r = run_cli(dir_, "import-idx --images " + shell_quote(images) + " --labels " +
                                  shell_quote(labels) + " --out " + shell_quote(prefix) +
                                  " --quiet --val-fraction 0.2 --shard-size 10 --compression gzip"
                                  " --class-names a,b,c --no-shuffle");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Dataset train = Dataset::open({prefix + "-train-*.h5"});
  Dataset val = Dataset::open({prefix + "-val-*.h5"});
  EXPECT_EQ(train.size(), 24);
  EXPECT_EQ(val.size(), 6);
  EXPECT_EQ(train.shards().size(), 3u);
  EXPECT_EQ(train.meta().class_names, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(train.shards()[0].filters, std::vector<std::string>{"gzip(4)"});
}

TEST_F(Cli, InspectMissingFile) {
  const std::string path = dir_ / "missing.h5";
  expect_one_line_failure(run_cli(dir_, "inspect " + shell_quote(path)), {path, "no such file"});
}

TEST_F(Cli, InspectNonHdf5File) {
  const std::string path = dir_ / "text.h5";
  std::ofstream(path) << "not\nan\nHDF5 file\n";
  expect_one_line_failure(run_cli(dir_, "inspect " + shell_quote(path)),
                          {path, "not an HDF5 file"});
}

TEST_F(Cli, InspectLabelOutOfRange) {
  auto paths = write_pattern_dataset(dir_ / "data", 12, 5, 5, 1, 4, 0);
  {
    // Overwrite label 7 in place with one past the last class.
    h5::Handle file(H5Fopen(paths[0].c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    ASSERT_TRUE(file);
    h5::Handle labels(H5Dopen2(file.get(), "labels", H5P_DEFAULT));
    ASSERT_TRUE(labels);
    h5::Handle space(H5Dget_space(labels.get()));
    hsize_t start[1] = {7}, count[1] = {1};
    ASSERT_GE(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr), 0);
    h5::Handle mem(H5Screate_simple(1, count, nullptr));
    const int32_t bad = 4;
    ASSERT_GE(H5Dwrite(labels.get(), H5T_NATIVE_INT32, mem.get(), space.get(), H5P_DEFAULT, &bad),
              0);
  }
  expect_one_line_failure(run_cli(dir_, "inspect " + shell_quote(paths[0])),
                          {paths[0], "label 4", "out of range"});
}

TEST_F(Cli, InspectTruncatedFile) {
  auto paths = write_pattern_dataset(dir_ / "data", 30, 8, 8, 3, 4, 0);
  std::filesystem::resize_file(paths[0], std::filesystem::file_size(paths[0]) / 2);
  expect_one_line_failure(run_cli(dir_, "inspect " + shell_quote(paths[0])),
                          {paths[0], "truncated"});
}

TEST_F(Cli, InspectOneBadShardAmongGoodOnes) {
  auto paths = write_pattern_dataset(dir_ / "data", 30, 4, 4, 1, 4, 10);
  ASSERT_EQ(paths.size(), 3u);
  std::filesystem::resize_file(paths[1], std::filesystem::file_size(paths[1]) / 2);
  expect_one_line_failure(run_cli(dir_, "inspect " + shell_quote(dir_ / "data-*.h5")), {paths[1]});
}

TEST_F(Cli, ImportIdxBadInputWritesNothing) {
  const std::string images = dir_ / "images.idx", labels = dir_ / "labels.idx";
  write_idx(images, labels, 10, 4, 4, 3);
  std::filesystem::resize_file(images, std::filesystem::file_size(images) - 3);
  CliResult r =
      run_cli(dir_, "import-idx --images " + shell_quote(images) + " --labels " +
                        shell_quote(labels) + " --out " + shell_quote(dir_ / "out") + " --quiet");
  expect_one_line_failure(r, {images, "truncated"});
  for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_NE(e.path().filename().string().rfind("out", 0), 0u) << e.path();
  }
}

TEST_F(Cli, UnknownOption) {
  expect_one_line_failure(run_cli(dir_, "import-idx --bogus-option 3"), {"bogus-option"});
  expect_one_line_failure(run_cli(dir_, "inspect --bogus-option x.h5"), {"bogus-option"});
}

TEST_F(Cli, MissingRequiredOption) {
  expect_one_line_failure(run_cli(dir_, "import-idx --images x --labels y"), {"out"});
}

TEST_F(Cli, BadOptionValue) {
  const std::string images = dir_ / "images.idx", labels = dir_ / "labels.idx";
  write_idx(images, labels, 10, 4, 4, 3);
  const std::string base = "import-idx --quiet --images " + shell_quote(images) + " --labels " +
                           shell_quote(labels) + " --out " + shell_quote(dir_ / "out");
  expect_one_line_failure(run_cli(dir_, base + " --compression lzma"), {"lzma"});
  expect_one_line_failure(run_cli(dir_, base + " --shard-size many"), {"shard-size"});
}

TEST_F(Cli, UnknownCommand) {
  CliResult r = run_cli(dir_, "frobnicate --out x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

TEST_F(Cli, NoCommand) {
  CliResult r = run_cli(dir_, "");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("usage"), std::string::npos) << r.out;
}

TEST_F(Cli, Help) {
  for (const char* args : {"--help", "-h", "import-idx --help", "import-cifar --help",
                           "import-folder --help", "inspect --help"}) {
    SCOPED_TRACE(args);
    CliResult r = run_cli(dir_, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("usage: alexnet-data"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace alexnet::io
