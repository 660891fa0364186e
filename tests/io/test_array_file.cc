// Array files (io/array_file.h): round trip, atomic commit, damage detection, shape checks, h5py
// readability; the v2 checksum covers every attribute (each edited with h5py is refused) and a
// scalar's name; v1 files (written here by h5py with the v1 rule) still open.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "io/array_file.h"
#include "io/error.h"
#include "tests/io/test_util.h"
#include "tests/subprocess.h"

namespace alexnet::io {
namespace {

using testing::TempDir;

std::vector<float> iota_floats(size_t n, float start) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

void write_sample(const std::string& path, float start) {
  ArrayFileWriter w(path);
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

TEST(ArrayFile, RoundTrip) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  ArrayFileReader r(path);
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

TEST(ArrayFile, ReadChecksShapeTypeAndName) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  ArrayFileReader r(path);
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

TEST(ArrayFile, AbandonedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  {
    ArrayFileWriter w(path);
    auto junk = iota_floats(10, 9.0f);
    w.add("/model/other", {10}, junk.data());
    EXPECT_EQ(names_in(dir.path()).size(), 2u);  // the old file and the temporary
  }                                              // no commit: an error, a signal, a full disk
  EXPECT_EQ(names_in(dir.path()), std::vector<std::string>{"ckpt.h5"});
  ArrayFileReader r(path);
  EXPECT_TRUE(r.has("/model/features.0.weight"));
  EXPECT_FALSE(r.has("/model/other"));
}

TEST(ArrayFile, CommitReplacesAtomically) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 1.0f);
  write_sample(path, 2.0f);
  ArrayFileReader r(path);
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

TEST(ArrayFile, DamagedDataIsRefused) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  long at = find_bytes(path, iota_floats(16, 0.5f));
  ASSERT_GE(at, 0);
  damage(path, at + 8, 4);  // one float of the weights
  try {
    ArrayFileReader r(path);
    FAIL() << "a damaged checkpoint was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ArrayFile, TruncatedMissingAndForeignFilesAreRefused) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  EXPECT_THROW(ArrayFileReader{path}, DataError);
  EXPECT_THROW(ArrayFileReader{dir / "none.h5"}, DataError);
  auto shard = testing::write_pattern_dataset(dir / "ds", 4, 3, 3, 1, 2, 0);
  try {
    ArrayFileReader r(shard[0]);
    FAIL() << "a dataset shard was accepted as a checkpoint";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("not a checkpoint"), std::string::npos) << e.what();
  }
}

TEST(ArrayFile, WriterRejectsBadNamesAndFolders) {
  TempDir dir;
  EXPECT_THROW(ArrayFileWriter(dir / "missing/ckpt.h5"), DataError);
  ArrayFileWriter w(dir / "ckpt.h5");
  float x = 1;
  EXPECT_THROW(w.add("relative", {1}, &x), DataError);
  w.add("/a/x", {1}, &x);
  EXPECT_THROW(w.add("/a/x", {1}, &x), DataError);
}

TEST(ArrayFile, H5pyReadsTheLayout) {
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
  EXPECT_EQ(line, "(2, 3, 5, 5) 1.5 alexnet-mini alexnet-checkpoint-v2");
}

// Runs a Python program (with h5py) given as text; returns its output, failing on a non-zero exit.
std::string python(const TempDir& dir, const std::string& name, const std::string& program,
                   const std::string& args) {
  const std::string script = dir / (name + ".py"), log = dir / (name + ".log");
  std::ofstream(script) << program;
  const int rc = test::run("/usr/bin/python3 " + test::shell_quote(script) + " " + args, log);
  EXPECT_EQ(rc, 0) << name << " failed (python3 with h5py is needed):\n" << test::read_text(log);
  return test::read_text(log);
}

// Writes copies of a checkpoint, each with one attribute changed, deleted, added or retyped; a
// line "PATH refused|same WHAT" each ("same": the value unchanged, stored as another type).
const char* kEditAttributes = R"PY(
import h5py, numpy as np, shutil, sys
src, out = sys.argv[1], sys.argv[2]
attrs = []
with h5py.File(src, "r") as f:
    collect = lambda obj: attrs.extend((obj.name, name) for name in obj.attrs)
    collect(f)
    f.visititems(lambda name, obj: collect(obj))
def changed(v):
    if isinstance(v, (bytes, str)):
        return v + v[:1]
    a = np.asarray(v)
    if a.dtype.kind in "iu":
        return a + 1
    if a.dtype.kind == "f":
        return a * 2 + 1
    sys.exit("unexpected attribute type %r" % a.dtype)
count = 0
def edited(expect, what, edit):
    global count
    path = "%s/edit-%02d.h5" % (out, count)
    count += 1
    shutil.copyfile(src, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    print(path, expect, what)
for obj, name in attrs:
    edited("refused", "changed %s@%s" % (obj, name),
           lambda f: f[obj].attrs.__setitem__(name, changed(f[obj].attrs[name])))
    edited("refused", "deleted %s@%s" % (obj, name), lambda f: f[obj].attrs.__delitem__(name))
edited("refused", "added /model@extra", lambda f: f["/model"].attrs.__setitem__("extra", 1))
edited("refused", "added @extra on an array",
       lambda f: f["/rng/state"].attrs.__setitem__("extra", "x"))
edited("refused", "/@step as float64",
       lambda f: f.attrs.__setitem__("step", np.float64(f.attrs["step"])))
edited("same", "/@step as int32", lambda f: f.attrs.__setitem__("step", np.int32(f.attrs["step"])))
edited("same", "/model@arch rewritten",
       lambda f: f["/model"].attrs.__setitem__("arch", str(f["/model"].attrs["arch"])))
print(len(attrs), "attributes")
)PY";

TEST(ArrayFile, EveryEditedAttributeIsRefused) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  write_sample(path, 0.5f);
  std::istringstream lines(python(dir, "edit", kEditAttributes,
                                  test::shell_quote(path) + " " + test::shell_quote(dir.path())));
  int refused = 0, same = 0;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string file, expect;
    words >> file >> expect;
    if (expect == "same") {
      ++same;
      EXPECT_NO_THROW(ArrayFileReader{file}) << line;
    } else if (expect == "refused") {
      ++refused;
      try {
        ArrayFileReader r(file);
        ADD_FAILURE() << "accepted: " << line;
      } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
        EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      }
    } else {
      EXPECT_EQ(line, "6 attributes");  // the sample's 4, /@format and /@checksum_crc32
    }
  }
  EXPECT_EQ(refused, 2 * 6 + 3);
  EXPECT_EQ(same, 2);
}

TEST(ArrayFile, AScalarArraysNameIsCovered) {
  TempDir dir;
  const std::string path = dir / "ckpt.h5";
  {
    ArrayFileWriter w(path);
    const int64_t count = 7;
    w.add("/rng/count", {}, &count);  // v1 left a scalar's name out of its checksum
    w.commit();
  }
  int64_t count = 0;
  ArrayFileReader(path).read("/rng/count", {}, std::span<int64_t>(&count, 1));
  EXPECT_EQ(count, 7);
  python(dir, "rename",
         "import h5py, sys\nwith h5py.File(sys.argv[1], 'r+') as f: f.move('/rng/count', "
         "'/rng/other')\n",
         test::shell_quote(path));
  EXPECT_THROW(ArrayFileReader{path}, DataError);
}

// A file as alexnet-checkpoint-v1 wrote it: the CRC over the arrays only, computed as the v1
// code did (a scalar's empty shape restarted the running CRC, dropping its name).
const char* kWriteV1 = R"PY(
import h5py, numpy as np, sys, zlib
arrays = {
    "/model/w": np.arange(6, dtype="<f4").reshape(2, 3),
    "/rng/state": np.array([1, -2, 1 << 40], dtype="<i8"),
    "/rng/bytes": np.array([0, 255, 7], dtype="u1"),
    "/scalar": np.array(2.5, dtype="<f4"),
}
with h5py.File(sys.argv[1], "w") as f:
    for name, a in arrays.items():
        f[name] = a
    f["/model"].attrs["arch"] = "alexnet-mini"
    f.attrs["step"] = np.int64(1234)
    f.attrs["format"] = "alexnet-checkpoint-v1"
    entries = {}
    for name, a in arrays.items():
        crc = zlib.crc32(np.array(a.shape, dtype="<i8").tobytes(), zlib.crc32(name.encode()))
        entries[name] = zlib.crc32(a.tobytes(), crc if a.shape else 0)
    crc = 0
    for name in sorted(entries):
        crc = zlib.crc32(np.uint32(entries[name]).tobytes(), crc)
    f.attrs["checksum_crc32"] = np.int64(crc)
)PY";

TEST(ArrayFile, V1FilesStillOpen) {
  TempDir dir;
  const std::string path = dir / "v1.h5";
  python(dir, "v1", kWriteV1, test::shell_quote(path));
  {
    ArrayFileReader r(path);
    EXPECT_EQ(r.arrays(),
              (std::vector<std::string>{"/model/w", "/rng/bytes", "/rng/state", "/scalar"}));
    std::vector<float> w(6);
    r.read("/model/w", {2, 3}, std::span<float>(w));
    EXPECT_EQ(w, iota_floats(6, 0.0f));
    float scalar = 0;
    r.read("/scalar", {}, std::span<float>(&scalar, 1));
    EXPECT_EQ(scalar, 2.5f);
    EXPECT_EQ(r.string_attribute("/model", "arch"), "alexnet-mini");
    EXPECT_EQ(r.int_attribute("/", "step"), 1234);
  }
  // The v1 rule still guards the arrays (attributes it never covered: hence v2).
  python(dir, "damage",
         "import h5py, sys\nwith h5py.File(sys.argv[1], 'r+') as f: f['/model/w'][0, 1] = 9\n",
         test::shell_quote(path));
  try {
    ArrayFileReader r(path);
    FAIL() << "a damaged v1 file was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ArrayFile, WriterRejectsAmbiguousObjectsAndReservedAttributes) {
  TempDir dir;
  ArrayFileWriter w(dir / "ckpt.h5");
  float x = 1;
  w.add("/a/x", {1}, &x);
  EXPECT_THROW(w.set_attribute("a", "n", int64_t{1}), DataError);
  EXPECT_THROW(w.set_attribute("/a/", "n", int64_t{1}), DataError);
  EXPECT_THROW(w.set_attribute("//a", "n", int64_t{1}), DataError);
  EXPECT_THROW(w.add("/b//y", {1}, &x), DataError);
  EXPECT_THROW(w.set_attribute("/", "format", std::string("mine")), DataError);
  EXPECT_THROW(w.set_attribute("/", "checksum_crc32", int64_t{0}), DataError);
  w.set_attribute("/a/x", "n", int64_t{1});
  w.set_attribute("/a/x", "n", int64_t{2});  // replaced: the checksum covers the last value
  w.commit();
  ArrayFileReader r(dir / "ckpt.h5");
  EXPECT_EQ(r.int_attribute("/a/x", "n"), 2);
}

}  // namespace
}  // namespace alexnet::io
