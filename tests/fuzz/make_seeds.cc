// Writes the fuzzers' seed corpora, OUT_DIR/<target>/..., with our own writers: small valid
// inputs from which libFuzzer's mutations reach past the magic bytes and headers. Run by the
// fuzz_seeds CTest fixture, so no binary seeds are kept in the repository.
#include <cstddef>  // jpeglib.h needs size_t and FILE declared before it
#include <cstdio>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/array_file.h"
#include "io/synthetic_import.h"
#include "tests/fuzz/tiny_spec.h"
#include "trainer/export/safetensors_file.h"
#include "trainer/weights_file.h"

namespace fs = std::filesystem;
using namespace alexnet;

namespace {

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::vector<uint8_t> pattern(size_t n, unsigned seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 37 + seed * 11);
  return v;
}

// Big-endian IDX: magic 0 0 8 dims, dims as uint32, then the bytes.
std::vector<uint8_t> idx(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& body) {
  std::vector<uint8_t> out = {0, 0, 8, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(d >> s));
  }
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void write_gzip(const fs::path& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr || gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) <= 0 ||
      gzclose(f) != Z_OK) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

void write_png(const fs::path& path, int width, int height) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = PNG_FORMAT_RGB;
  const std::vector<uint8_t> pixels = pattern(static_cast<size_t>(width * height * 3), 1);
  if (!png_image_write_to_file(&image, path.c_str(), 0, pixels.data(), 0, nullptr)) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

void write_jpeg(const fs::path& path, int width, int height, bool progressive) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot write " + path.string());
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, f);
  c.image_width = static_cast<JDIMENSION>(width);
  c.image_height = static_cast<JDIMENSION>(height);
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 50, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  const std::vector<uint8_t> pixels = pattern(static_cast<size_t>(width * height * 3), 2);
  while (c.next_scanline < c.image_height) {
    auto* row = const_cast<JSAMPLE*>(pixels.data() + c.next_scanline * width * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path out = argv[1];
  for (const char* t :
       {"dataset", "checkpoint", "weights", "safetensors", "idx", "cifar", "image", "work"}) {
    fs::remove_all(out / t);
    fs::create_directories(out / t);
  }

  // Datasets: plain and gzip-chunked shards of a few 4x4 images.
  for (auto compression : {io::Compression::kNone, io::Compression::kGzip}) {
    io::SyntheticOptions synthetic;
    synthetic.count = 3;
    synthetic.size = 4;
    synthetic.channels = compression == io::Compression::kNone ? 3 : 1;
    synthetic.num_classes = 3;
    io::ImportOptions options;
    options.out =
        (out / "work" / (compression == io::Compression::kNone ? "plain" : "gzip")).string();
    options.compression = compression;
    options.shard_size = 3;  // chunks of 3 rows: a seed of KBs, not of a default 1 MB chunk
    options.progress = false;
    const io::ImportResult r = io::import_synthetic(synthetic, options);
    fs::copy_file(r.train_files.at(0), out / "dataset" / fs::path(r.train_files[0]).filename());
  }

  // A checkpoint of every array type and attribute type.
  {
    io::ArrayFileWriter w((out / "checkpoint" / "checkpoint.h5").string());
    const std::vector<float> f = {1.5f, -2.0f, 0.25f, 3.0f, 0.0f, 1.0f};
    const std::vector<int64_t> i = {7, -1};
    const std::vector<uint8_t> u = {1, 2, 3, 4};
    w.add("/model/features.0.weight", {2, 3}, f.data());
    w.add("/optimizer/steps", {2}, i.data());
    w.add("/rng/state", {4}, u.data());
    w.set_attribute("/", "config", std::string("[train]\nbatch_size = 2\n"));
    w.set_attribute("/", "step", int64_t{12});
    w.set_attribute("/schedule", "lr", 0.01);
    w.commit();
  }

  // Weights of the fuzzer's tiny model.
  {
    const trainer::ModelSpec spec = fuzz::tiny_spec();
    std::vector<float> params(20), buffers(3);
    for (size_t k = 0; k < params.size(); ++k) params[k] = 0.1f * static_cast<float>(k);
    trainer::save_weights((out / "weights" / "weights.h5").string(), spec, params, buffers,
                          "[model]\narch = alexnet-mini\n");
  }

  // safetensors: both dtypes, a scalar, metadata.
  {
    trainer::SafetensorsFile file;
    file.tensors = {{"features.0.weight", {2, 2}, trainer::SafetensorsDtype::kF32, {1, 2, 3, 4}},
                    {"features.1.num_batches_tracked", {}, trainer::SafetensorsDtype::kI64, {5}}};
    file.metadata = {{"format", "pt"}};
    trainer::write_safetensors((out / "safetensors" / "model.safetensors").string(), file);
  }

  // IDX images [2, 3, 3] and labels [2], raw and gzip.
  const std::vector<uint8_t> images = idx({2, 3, 3}, pattern(18, 3));
  const std::vector<uint8_t> labels = idx({2}, {1, 0});
  write_bytes(out / "idx" / "images-idx3-ubyte", images);
  write_bytes(out / "idx" / "labels-idx1-ubyte", labels);
  write_gzip(out / "idx" / "images-idx3-ubyte.gz", images);

  // CIFAR: one CIFAR-10 record (label, 3x32x32), two CIFAR-100 records (coarse, fine, pixels).
  {
    std::vector<uint8_t> ten = pattern(3073, 4), hundred = pattern(2 * 3074, 5);
    ten[0] = 3;
    hundred[0] = 7;
    hundred[1] = 42;
    hundred[3074] = 19;
    hundred[3075] = 99;
    write_bytes(out / "cifar" / "cifar10.bin", ten);
    write_bytes(out / "cifar" / "cifar100.bin", hundred);
  }

  // Images: PNG, baseline and progressive JPEG.
  write_png(out / "image" / "rgb.png", 5, 3);
  write_jpeg(out / "image" / "baseline.jpg", 9, 7, false);
  write_jpeg(out / "image" / "progressive.jpg", 17, 16, true);

  fs::remove_all(out / "work");
  return 0;
}
