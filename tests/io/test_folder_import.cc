// Tests of JPEG/PNG decoding, resizing and the folder importer, on images written here with
// libjpeg and libpng so that every pixel that should come out is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "io/dataset.h"
#include "io/error.h"
#include "io/folder_import.h"
#include "io/image_decode.h"
#include "io/image_resize.h"
#include "tests/io/test_util.h"

namespace alexnet::io {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// ---- writing test images -----------------------------------------------------------------------

std::vector<uint8_t> encode_jpeg(const std::vector<uint8_t>& pixels, int width, int height,
                                 int components, J_COLOR_SPACE color_space, int quality = 95) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);  // exits on error: none is expected when encoding
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(width);
  cinfo.image_height = static_cast<JDIMENSION>(height);
  cinfo.input_components = components;
  cinfo.in_color_space = color_space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row =
        const_cast<uint8_t*>(pixels.data()) +
        static_cast<size_t>(cinfo.next_scanline) * static_cast<size_t>(width * components);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  jpeg_destroy_compress(&cinfo);
  return out;
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_jpeg(const std::string& path, const std::vector<uint8_t>& rgb, int width, int height) {
  write_bytes(path, encode_jpeg(rgb, width, height, 3, JCS_RGB));
}

// data: rows of width * channels samples, 16-bit ones big-endian as PNG stores them.
void write_png(const std::string& path, int width, int height, int color_type, int bit_depth,
               const std::vector<uint8_t>& data, bool interlaced = false,
               const std::vector<png_color>& palette = {}) {
  FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height),
               bit_depth, color_type, interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty()) {
    png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  }
  png_write_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  ASSERT_EQ(row_bytes * static_cast<size_t>(height), data.size());
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (size_t y = 0; y < rows.size(); ++y)
    rows[y] = const_cast<uint8_t*>(data.data()) + y * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

// An RGB image whose every pixel depends on (id, y, x, c): shows which image it is, and any shift.
std::vector<uint8_t> rgb_pattern(int64_t id, int64_t height, int64_t width) {
  return testing::pattern_image(id, height, width, 3);
}

std::vector<uint8_t> constant_rgb(int64_t height, int64_t width, uint8_t r, uint8_t g, uint8_t b) {
  std::vector<uint8_t> img(static_cast<size_t>(height * width * 3));
  for (size_t i = 0; i < img.size(); i += 3) {
    img[i] = r;
    img[i + 1] = g;
    img[i + 2] = b;
  }
  return img;
}

std::vector<uint8_t> noise(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (auto& v : bytes) v = static_cast<uint8_t>(rng() & 0xFF);
  return bytes;
}

int max_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  EXPECT_EQ(a.size(), b.size());
  int worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i])));
  }
  return worst;
}

// The DataError message that f throws ("" and a test failure when it throws none).
template <typename F>
std::string data_error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << "not one line: " << message;
    return message;
  }
  ADD_FAILURE() << "no DataError thrown";
  return "";
}

// ---- reading the imported dataset ---------------------------------------------------------------

struct Loaded {
  DatasetMeta meta;
  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  size_t sample = 0;
  std::vector<uint8_t> image(size_t i) const {
    return {images.begin() + static_cast<std::ptrdiff_t>(i * sample),
            images.begin() + static_cast<std::ptrdiff_t>((i + 1) * sample)};
  }
};

Loaded load(const std::vector<std::string>& files) {
  Dataset ds = Dataset::open(files);
  Loaded out;
  out.meta = ds.meta();
  out.sample = ds.sample_bytes();
  out.images.resize(static_cast<size_t>(ds.size()) * out.sample);
  for (size_t s = 0; s < ds.shards().size(); ++s) {
    const ShardInfo& shard = ds.shards()[s];
    ds.read_images(s, 0, shard.num_samples,
                   out.images.data() + static_cast<size_t>(shard.first_index) * out.sample);
  }
  out.labels.assign(ds.labels().begin(), ds.labels().end());
  return out;
}

std::vector<std::string> files_under(const fs::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    names.push_back(entry.path().string());
  }
  return names;
}

ImportOptions quiet_options(const std::string& out) {
  ImportOptions options;
  options.out = out;
  options.progress = false;
  options.seed = 7;
  return options;
}

// ---- resize ------------------------------------------------------------------------------------

TEST(ImageResize, SameSizeIsBitExact) {
  for (int64_t channels : {1, 3, 4}) {
    std::vector<uint8_t> src = noise(static_cast<size_t>(17 * 17 * channels), 1);
    std::vector<uint8_t> dst(src.size(), 0);
    resize_shorter_and_center_crop(src.data(), 17, 17, channels, 17, dst.data());
    EXPECT_EQ(src, dst) << channels << " channels";
  }
}

TEST(ImageResize, ShorterSideAlreadyRightOnlyCrops) {
  // 20 x 30 to 20: no resampling at all, just the central 20 columns (offset 5).
  std::vector<uint8_t> src = rgb_pattern(3, 20, 30);
  std::vector<uint8_t> dst(20 * 20 * 3);
  resize_shorter_and_center_crop(src.data(), 20, 30, 3, 20, dst.data());
  for (int64_t y = 0; y < 20; ++y) {
    for (int64_t x = 0; x < 20; ++x) {
      for (int64_t c = 0; c < 3; ++c) {
        ASSERT_EQ(dst[static_cast<size_t>((y * 20 + x) * 3 + c)],
                  src[static_cast<size_t>((y * 30 + x + 5) * 3 + c)]);
      }
    }
  }
}

TEST(ImageResize, DownscaledConstantStaysConstant) {
  std::vector<uint8_t> src = constant_rgb(64, 64, 37, 200, 5);
  std::vector<uint8_t> dst(32 * 32 * 3);
  resize_shorter_and_center_crop(src.data(), 64, 64, 3, 32, dst.data());
  EXPECT_EQ(dst, constant_rgb(32, 32, 37, 200, 5));
  // Also at a non-integer factor, with the antialiasing filter several pixels wide.
  std::vector<uint8_t> big = constant_rgb(331, 517, 250, 0, 128);
  resize_shorter_and_center_crop(big.data(), 331, 517, 3, 32, dst.data());
  EXPECT_EQ(dst, constant_rgb(32, 32, 250, 0, 128));
}

TEST(ImageResize, HorizontalGradientStaysMonotonic) {
  const int64_t h = 100, w = 200, size = 50;
  std::vector<uint8_t> src(static_cast<size_t>(h * w));
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x)
      src[static_cast<size_t>(y * w + x)] = static_cast<uint8_t>(x * 255 / (w - 1));
  }
  std::vector<uint8_t> dst(static_cast<size_t>(size * size));
  resize_shorter_and_center_crop(src.data(), h, w, 1, size, dst.data());
  for (int64_t y = 0; y < size; ++y) {
    for (int64_t x = 1; x < size; ++x) {
      ASSERT_LE(dst[static_cast<size_t>(y * size + x - 1)], dst[static_cast<size_t>(y * size + x)]);
    }
    // Every row alike (the gradient is horizontal) and the crop keeps the middle half of x.
    ASSERT_EQ(0, std::memcmp(dst.data(), dst.data() + y * size, static_cast<size_t>(size)));
  }
  EXPECT_GT(dst[0], 50);
  EXPECT_LT(dst[size - 1], 205);
  EXPECT_GT(dst[size - 1], dst[0] + 100);
}

TEST(ImageResize, TallImageIsResizedThenCenterCropped) {
  // 300 x 200 (H x W) to 100: resized to 150 x 100, rows 25..124 kept = input rows 50..250.
  // Bands of 0 / 128 / 255 of 100 rows each: the crop starts in the first, ends in the last.
  const int64_t h = 300, w = 200, size = 100;
  std::vector<uint8_t> src(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y) {
    uint8_t v = y < 100 ? 0 : (y < 200 ? 128 : 255);
    std::fill_n(src.begin() + y * w * 3, w * 3, v);
  }
  std::vector<uint8_t> dst(static_cast<size_t>(size * size * 3) + 64, 77);  // + a guard zone
  resize_shorter_and_center_crop(src.data(), h, w, 3, size, dst.data());
  for (size_t i = static_cast<size_t>(size * size * 3); i < dst.size(); ++i) ASSERT_EQ(dst[i], 77);
  auto at = [&](int64_t y, int64_t x) { return dst[static_cast<size_t>((y * size + x) * 3)]; };
  EXPECT_EQ(at(0, 0), 0);
  EXPECT_EQ(at(50, 50), 128);
  EXPECT_EQ(at(99, 99), 255);
  EXPECT_EQ(at(20, 0), 0);    // input rows ~90: still the first band
  EXPECT_EQ(at(80, 0), 255);  // input rows ~210: the last band
}

TEST(ImageResize, UpscaleKeepsCornersAndRange) {
  const std::vector<uint8_t> src = {10, 200, 60, 90};  // 2 x 2 gray
  std::vector<uint8_t> dst(8 * 8);
  resize_shorter_and_center_crop(src.data(), 2, 2, 1, 8, dst.data());
  EXPECT_EQ(dst[0], 10);
  EXPECT_EQ(dst[7], 200);
  EXPECT_EQ(dst[56], 60);
  EXPECT_EQ(dst[63], 90);
  for (uint8_t v : dst) {
    EXPECT_GE(v, 10);
    EXPECT_LE(v, 200);
  }
}

TEST(ImageResize, RejectsBadDimensions) {
  uint8_t pixel[3] = {0, 0, 0};
  EXPECT_THROW(resize_shorter_and_center_crop(pixel, 0, 1, 3, 1, pixel), std::invalid_argument);
  EXPECT_THROW(resize_shorter_and_center_crop(pixel, 1, 1, 3, 0, pixel), std::invalid_argument);
}

// ---- decode ------------------------------------------------------------------------------------

TEST(ImageDecode, PngFlavoursBecomeRgb) {
  TempDir dir;
  const int w = 12, h = 9;
  const std::vector<uint8_t> rgb = rgb_pattern(5, h, w);

  write_png(dir / "rgb.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb);
  write_png(dir / "interlaced.png", w, h, PNG_COLOR_TYPE_RGB, 8, rgb, /*interlaced=*/true);
  std::vector<uint8_t> gray(static_cast<size_t>(w * h)), expanded_gray;
  for (size_t i = 0; i < gray.size(); ++i) {
    gray[i] = static_cast<uint8_t>(i * 3);
    expanded_gray.insert(expanded_gray.end(), 3, gray[i]);
  }
  write_png(dir / "gray.png", w, h, PNG_COLOR_TYPE_GRAY, 8, gray);
  std::vector<uint8_t> rgba;
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgba.insert(rgba.end(), {rgb[i], rgb[i + 1], rgb[i + 2], static_cast<uint8_t>(i % 251)});
  }
  write_png(dir / "rgba.png", w, h, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  std::vector<uint8_t> rgb16;
  for (uint8_t v : rgb)
    rgb16.insert(rgb16.end(), {v, static_cast<uint8_t>(255 - v)});  // big-endian
  write_png(dir / "rgb16.png", w, h, PNG_COLOR_TYPE_RGB, 16, rgb16);
  std::vector<png_color> palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {9, 99, 199}};
  std::vector<uint8_t> indices(static_cast<size_t>(w * h)), expanded_palette;
  for (size_t i = 0; i < indices.size(); ++i) {
    indices[i] = static_cast<uint8_t>(i % 4);
    const png_color& p = palette[indices[i]];
    expanded_palette.insert(expanded_palette.end(), {p.red, p.green, p.blue});
  }
  write_png(dir / "palette.png", w, h, PNG_COLOR_TYPE_PALETTE, 8, indices, false, palette);
  std::vector<uint8_t> gray_alpha;
  for (uint8_t v : gray) gray_alpha.insert(gray_alpha.end(), {v, static_cast<uint8_t>(~v)});
  write_png(dir / "gray_alpha.png", w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, gray_alpha);
  // 1-bit gray: 12 pixels in 2 bytes per row, most significant bit first; 1 becomes 255.
  std::vector<uint8_t> bits, expanded_bits;
  for (int y = 0; y < h; ++y) {
    uint8_t row[2] = {0, 0};
    for (int x = 0; x < w; ++x) {
      const bool on = (x + y) % 3 == 0;
      if (on) row[x / 8] = static_cast<uint8_t>(row[x / 8] | (0x80 >> (x % 8)));
      expanded_bits.insert(expanded_bits.end(), 3, on ? 255 : 0);
    }
    bits.insert(bits.end(), row, row + 2);
  }
  write_png(dir / "bits.png", w, h, PNG_COLOR_TYPE_GRAY, 1, bits);

  for (const auto& [name, expected] :
       std::vector<std::pair<std::string, std::vector<uint8_t>>>{{"rgb.png", rgb},
                                                                 {"interlaced.png", rgb},
                                                                 {"gray.png", expanded_gray},
                                                                 {"rgba.png", rgb},
                                                                 {"rgb16.png", rgb},
                                                                 {"palette.png", expanded_palette},
                                                                 {"gray_alpha.png", expanded_gray},
                                                                 {"bits.png", expanded_bits}}) {
    DecodedImage image = decode_image_file(dir / name);
    EXPECT_EQ(image.height, h) << name;
    EXPECT_EQ(image.width, w) << name;
    EXPECT_EQ(image.pixels, expected) << name;
  }
}

TEST(ImageDecode, JpegRgbAndGrayscale) {
  TempDir dir;
  write_jpeg(dir / "c.jpg", constant_rgb(24, 40, 200, 60, 30), 40, 24);
  DecodedImage color = decode_image_file(dir / "c.jpg");
  EXPECT_EQ(color.height, 24);
  EXPECT_EQ(color.width, 40);
  EXPECT_LE(max_abs_diff(color.pixels, constant_rgb(24, 40, 200, 60, 30)), 3);

  std::vector<uint8_t> gray(16 * 16, 100);
  write_bytes(dir / "g.jpg", encode_jpeg(gray, 16, 16, 1, JCS_GRAYSCALE));
  DecodedImage expanded = decode_image_file(dir / "g.jpg");
  ASSERT_EQ(expanded.pixels.size(), 16u * 16u * 3u);
  EXPECT_LE(max_abs_diff(expanded.pixels, constant_rgb(16, 16, 100, 100, 100)), 2);
}

TEST(ImageDecode, FormatComesFromContentNotExtension) {
  TempDir dir;
  write_png(dir / "really_png.jpg", 4, 3, PNG_COLOR_TYPE_RGB, 8, rgb_pattern(1, 3, 4));
  write_jpeg(dir / "really_jpeg.png", constant_rgb(8, 8, 10, 20, 30), 8, 8);
  EXPECT_EQ(decode_image_file(dir / "really_png.jpg").pixels, rgb_pattern(1, 3, 4));
  EXPECT_EQ(decode_image_file(dir / "really_jpeg.png").width, 8);
}

TEST(ImageDecode, JpegDctScalingKeepsShorterSideAtLeastMinSide) {
  TempDir dir;
  write_jpeg(dir / "big.jpg", constant_rgb(600, 800, 90, 90, 90), 800, 600);
  DecodedImage full = decode_image_file(dir / "big.jpg");
  EXPECT_EQ(full.height, 600);
  EXPECT_EQ(full.width, 800);
  DecodedImage half = decode_image_file(dir / "big.jpg", 256);  // 3/8 gives 225 < 256; 4/8 fits
  EXPECT_EQ(half.height, 300);
  EXPECT_EQ(half.width, 400);
  DecodedImage eighth = decode_image_file(dir / "big.jpg", 10);
  EXPECT_EQ(eighth.height, 75);
  EXPECT_EQ(eighth.width, 100);
  DecodedImage larger = decode_image_file(dir / "big.jpg", 1000);  // never upscaled by libjpeg
  EXPECT_EQ(larger.height, 600);
  EXPECT_LE(max_abs_diff(half.pixels, constant_rgb(300, 400, 90, 90, 90)), 3);
}

TEST(ImageDecode, ProblemsThrowDataErrorNamingTheFile) {
  TempDir dir;
  auto expect_error = [&](const std::string& name, const std::string& what) {
    std::string message = data_error_of([&] { decode_image_file(dir / name); });
    EXPECT_NE(message.find("'" + (dir / name) + "'"), std::string::npos) << message;
    EXPECT_NE(message.find(what), std::string::npos) << message;
  };
  expect_error("missing.jpg", "No such file");
  write_bytes(dir / "empty.png", {});
  expect_error("empty.png", "empty");
  std::vector<uint8_t> junk = noise(5000, 2);
  junk[0] = 'x';
  write_bytes(dir / "junk.jpg", junk);
  expect_error("junk.jpg", "not a JPEG or PNG");
  std::vector<uint8_t> fake_jpeg = junk;
  fake_jpeg[0] = 0xFF, fake_jpeg[1] = 0xD8, fake_jpeg[2] = 0xFF;
  write_bytes(dir / "fake.jpg", fake_jpeg);
  expect_error("fake.jpg", "JPEG");

  std::vector<uint8_t> jpeg = encode_jpeg(noise(64 * 64 * 3, 3), 64, 64, 3, JCS_RGB, 90);
  jpeg.resize(jpeg.size() * 6 / 10);
  write_bytes(dir / "truncated.jpg", jpeg);
  expect_error("truncated.jpg", "Premature end");

  write_png(dir / "full.png", 64, 64, PNG_COLOR_TYPE_RGB, 8, noise(64 * 64 * 3, 4));
  std::vector<uint8_t> png = read_bytes(dir / "full.png");
  png.resize(png.size() / 2);
  write_bytes(dir / "truncated.png", png);
  expect_error("truncated.png", "PNG");
  png = read_bytes(dir / "full.png");
  png.resize(png.size() - 6);  // only the end of IEND is missing
  write_bytes(dir / "no_iend.png", png);
  expect_error("no_iend.png", "truncated");

  fs::create_directory(dir / "folder.jpg");
  expect_error("folder.jpg", "folder");
}

// Headers that claim more pixels than the file holds, or than the limits allow, fail before the
// pixels are allocated; a legitimately well-compressed image still decodes.
TEST(ImageDecode, HeadersThatLieAboutTheirSize) {
  TempDir dir;
  auto expect_error = [&](const std::string& name, const std::vector<std::string>& parts) {
    std::string message = data_error_of([&] { decode_image_file(dir / name, 32); });
    EXPECT_NE(message.find("'" + (dir / name) + "'"), std::string::npos) << message;
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  // JPEG: the frame header (SOF0) holds height and width, big-endian, 5 bytes after the marker.
  const std::vector<uint8_t> jpeg = encode_jpeg(noise(16 * 16 * 3, 5), 16, 16, 3, JCS_RGB);
  auto jpeg_claiming = [&](int width, int height) {
    std::vector<uint8_t> j = jpeg;
    for (size_t i = 0; i + 9 < j.size(); ++i) {
      if (j[i] == 0xFF && j[i + 1] == 0xC0) {
        j[i + 5] = static_cast<uint8_t>(height >> 8), j[i + 6] = static_cast<uint8_t>(height);
        j[i + 7] = static_cast<uint8_t>(width >> 8), j[i + 8] = static_cast<uint8_t>(width);
        return j;
      }
    }
    ADD_FAILURE() << "no SOF0 marker";
    return j;
  };
  write_bytes(dir / "huge.jpg", jpeg_claiming(65000, 65000));
  expect_error("huge.jpg", {"65000 x 65000", "limit"});
  write_bytes(dir / "lie.jpg", jpeg_claiming(4000, 4000));  // within the limits: libjpeg's check
  expect_error("lie.jpg", {"bad JPEG"});

  // PNG: IHDR's width and height, then its CRC, which libpng checks.
  write_png(dir / "small.png", 16, 16, PNG_COLOR_TYPE_RGB, 8, noise(16 * 16 * 3, 6));
  const std::vector<uint8_t> png = read_bytes(dir / "small.png");
  auto png_claiming = [&](uint32_t width, uint32_t height) {
    std::vector<uint8_t> p = png;
    for (int k = 0; k < 4; ++k) {
      p[16 + k] = static_cast<uint8_t>(width >> (24 - 8 * k));
      p[20 + k] = static_cast<uint8_t>(height >> (24 - 8 * k));
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0, p.data() + 12, 17));
    for (int k = 0; k < 4; ++k) p[29 + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
    return p;
  };
  write_bytes(dir / "lie.png", png_claiming(16000, 16000));
  expect_error("lie.png", {"16000 x 16000", "can hold"});
  write_bytes(dir / "huge.png", png_claiming(70000, 16));  // libpng's own user limit
  expect_error("huge.png", {"bad PNG"});

  // A constant 1-bit PNG compresses about 500:1 and is no lie: the bound uses the stored rows.
  constexpr int kSide = 2048;
  write_png(dir / "flat.png", kSide, kSide, PNG_COLOR_TYPE_GRAY, 1,
            std::vector<uint8_t>(kSide / 8 * kSide, 0xFF));
  DecodedImage flat = decode_image_file(dir / "flat.png");
  EXPECT_EQ(flat.width, kSide);
  EXPECT_EQ(flat.pixels.front(), 255);
}

TEST(ImageDecode, AdobeCmykJpegBecomesRgb) {
  TempDir dir;
  // libjpeg writes CMYK with an Adobe marker, whose convention is inverted ink: R = C * K / 255.
  std::vector<uint8_t> cmyk;
  for (int i = 0; i < 16 * 16; ++i) cmyk.insert(cmyk.end(), {200, 100, 50, 255});
  write_bytes(dir / "cmyk.jpg", encode_jpeg(cmyk, 16, 16, 4, JCS_CMYK));
  DecodedImage image = decode_image_file(dir / "cmyk.jpg");
  ASSERT_EQ(image.height, 16);
  ASSERT_EQ(image.width, 16);
  for (size_t i = 0; i < image.pixels.size(); i += 3) {
    // JPEG is lossy even on flat colour: a few levels of error at quality 95.
    ASSERT_NEAR(image.pixels[i], 200, 4);
    ASSERT_NEAR(image.pixels[i + 1], 100, 4);
    ASSERT_NEAR(image.pixels[i + 2], 50, 4);
  }
}

// ---- folder import -----------------------------------------------------------------------------

class FolderImport : public ::testing::Test {
 protected:
  FolderImport() {
    fs::create_directories(dir_ / "tree");
    fs::create_directories(dir_ / "out");
  }
  std::string root() const { return dir_ / "tree"; }
  std::string out() const { return dir_ / "out/ds"; }
  std::string image_path(const std::string& relative) const {
    std::string path = dir_ / ("tree/" + relative);
    fs::create_directories(fs::path(path).parent_path());
    return path;
  }
  // Nothing at all in the output folder: neither shards nor temporaries.
  void expect_no_output() const {
    EXPECT_EQ(files_under(dir_.path() / "out"), std::vector<std::string>{});
  }
  // Classes c0, c1, c2; image i is a size x size pattern PNG (exact after import) in c(i % 3).
  void write_pattern_tree(int64_t n, int64_t size) const {
    for (int64_t i = 0; i < n; ++i) {
      char name[64];
      std::snprintf(name, sizeof(name), "c%lld/img%03lld.png", static_cast<long long>(i % 3),
                    static_cast<long long>(i));
      write_png(image_path(name), static_cast<int>(size), static_cast<int>(size),
                PNG_COLOR_TYPE_RGB, 8, rgb_pattern(i, size, size));
    }
  }
  // Which pattern image (0..n-1) this is; -1 for none.
  static int64_t pattern_id(const std::vector<uint8_t>& image, int64_t n, int64_t size) {
    for (int64_t i = 0; i < n; ++i) {
      if (image == rgb_pattern(i, size, size)) return i;
    }
    return -1;
  }

  TempDir dir_;
};

TEST_F(FolderImport, ImportsEveryFlavourWithLabelsAndClassNames) {
  const int64_t size = 32;
  // cat: an RGB PNG of exactly size x size, an RGBA PNG of the same size.
  const std::vector<uint8_t> pattern = rgb_pattern(11, size, size);
  write_png(image_path("cat/pattern.png"), size, size, PNG_COLOR_TYPE_RGB, 8, pattern);
  const std::vector<uint8_t> alpha_pattern = rgb_pattern(12, size, size);
  std::vector<uint8_t> rgba;
  for (size_t i = 0; i < alpha_pattern.size(); i += 3) {
    rgba.insert(rgba.end(), {alpha_pattern[i], alpha_pattern[i + 1], alpha_pattern[i + 2],
                             static_cast<uint8_t>(i)});
  }
  write_png(image_path("cat/alpha.PNG"), size, size, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba);
  // dog: a grayscale PNG, a 16-bit PNG (in a subfolder), both size x size.
  std::vector<uint8_t> gray(static_cast<size_t>(size * size)), gray_rgb;
  for (size_t i = 0; i < gray.size(); ++i) {
    gray[i] = static_cast<uint8_t>(i * 7);
    gray_rgb.insert(gray_rgb.end(), 3, gray[i]);
  }
  write_png(image_path("dog/gray.png"), size, size, PNG_COLOR_TYPE_GRAY, 8, gray);
  const std::vector<uint8_t> deep_pattern = rgb_pattern(13, size, size);
  std::vector<uint8_t> rgb16;
  for (uint8_t v : deep_pattern) rgb16.insert(rgb16.end(), {v, static_cast<uint8_t>(~v)});
  write_png(image_path("dog/more/deep.png"), size, size, PNG_COLOR_TYPE_RGB, 16, rgb16);
  // eel: a larger non-square JPEG of one colour (DCT-scaled, then resized and cropped).
  write_jpeg(image_path("eel/photo.JPEG"), constant_rgb(64, 96, 200, 60, 30), 96, 64);
  // Ignored: other files, hidden files and folders, files directly under the root.
  write_bytes(image_path("eel/notes.txt"), {'h', 'i'});
  write_bytes(image_path("eel/.hidden.jpg"), {'x'});
  write_png(image_path(".ipynb_checkpoints/x.png"), 4, 4, PNG_COLOR_TYPE_GRAY, 8,
            std::vector<uint8_t>(16));
  write_bytes(image_path("README.jpg"), {'x'});

  FolderImportOptions folder;
  folder.size = size;
  folder.threads = 8;  // more threads than images
  ImportResult result = import_folder(root(), folder, quiet_options(out()));
  EXPECT_EQ(result.train_count, 5);
  EXPECT_EQ(result.val_count, 0);
  EXPECT_TRUE(result.val_files.empty());
  ASSERT_EQ(result.train_files, std::vector<std::string>{out() + "-00000.h5"});

  Loaded ds = load(result.train_files);
  EXPECT_EQ(ds.meta.height, size);
  EXPECT_EQ(ds.meta.width, size);
  EXPECT_EQ(ds.meta.channels, 3);
  EXPECT_EQ(ds.meta.num_classes, 3);
  EXPECT_EQ(ds.meta.class_names, (std::vector<std::string>{"cat", "dog", "eel"}));
  EXPECT_EQ(ds.meta.source, "import-folder " + root());
  ASSERT_EQ(ds.labels.size(), 5u);
  std::multiset<int32_t> labels(ds.labels.begin(), ds.labels.end());
  EXPECT_EQ(labels, (std::multiset<int32_t>{0, 0, 1, 1, 2}));

  int found = 0;
  for (size_t i = 0; i < ds.labels.size(); ++i) {
    const std::vector<uint8_t> image = ds.image(i);
    const int32_t label = ds.labels[i];
    if (image == pattern || image == alpha_pattern) {
      EXPECT_EQ(label, 0);
      ++found;
    } else if (image == gray_rgb || image == deep_pattern) {
      EXPECT_EQ(label, 1);
      ++found;
    } else {
      EXPECT_EQ(label, 2);
      EXPECT_LE(max_abs_diff(image, constant_rgb(size, size, 200, 60, 30)), 3);
      ++found;
    }
  }
  EXPECT_EQ(found, 5);
  // Each of the four exact images appears (the loop above only checked labels).
  const std::vector<const std::vector<uint8_t>*> exact = {&pattern, &alpha_pattern, &gray_rgb,
                                                          &deep_pattern};
  for (const auto* expected : exact) {
    int copies = 0;
    for (size_t i = 0; i < ds.labels.size(); ++i) copies += ds.image(i) == *expected ? 1 : 0;
    EXPECT_EQ(copies, 1);
  }
}

TEST_F(FolderImport, SplitCoversEveryImageExactlyOnce) {
  const int64_t n = 30, size = 16;
  write_pattern_tree(n, size);
  FolderImportOptions folder;
  folder.size = size;
  folder.threads = 3;
  ImportOptions options = quiet_options(out());
  options.val_fraction = 0.2;
  options.shard_size = 7;  // several shards per part
  ImportResult result = import_folder(root(), folder, options);
  EXPECT_EQ(result.train_count, 24);
  EXPECT_EQ(result.val_count, 6);
  ASSERT_EQ(result.train_files.size(), 4u);
  ASSERT_EQ(result.val_files.size(), 1u);
  EXPECT_EQ(result.train_files[0], out() + "-train-00000.h5");
  EXPECT_EQ(result.val_files[0], out() + "-val-00000.h5");

  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (const auto* files : {&result.train_files, &result.val_files}) {
    Loaded ds = load(*files);
    EXPECT_EQ(ds.meta.class_names, (std::vector<std::string>{"c0", "c1", "c2"}));
    for (size_t i = 0; i < ds.labels.size(); ++i) {
      int64_t id = pattern_id(ds.image(i), n, size);
      ASSERT_GE(id, 0) << "sample " << i << " is none of the images";
      EXPECT_EQ(ds.labels[i], id % 3);
      ++seen[static_cast<size_t>(id)];
    }
  }
  EXPECT_EQ(seen, std::vector<int>(static_cast<size_t>(n), 1));
}

TEST_F(FolderImport, OutputDoesNotDependOnThreadCount) {
  const int64_t n = 25, size = 8;
  write_pattern_tree(n, size);
  FolderImportOptions folder;
  folder.size = size;
  folder.threads = 1;
  ImportResult one = import_folder(root(), folder, quiet_options(dir_ / "out/one"));
  folder.threads = 4;
  ImportResult four = import_folder(root(), folder, quiet_options(dir_ / "out/four"));
  Loaded a = load(one.train_files), b = load(four.train_files);
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.images, b.images);
  // Shuffled by the seed: not simply the sorted order.
  std::vector<int64_t> ids;
  for (size_t i = 0; i < a.labels.size(); ++i) ids.push_back(pattern_id(a.image(i), n, size));
  EXPECT_FALSE(std::is_sorted(ids.begin(), ids.end()));
}

TEST_F(FolderImport, CorruptImageFailsAndLeavesNoOutput) {
  write_pattern_tree(12, 8);
  std::vector<uint8_t> junk = noise(3000, 9);
  junk[0] = 'x';
  // Unshuffled, the bad file (last of the last class) comes last, in the validation part: the
  // training part's shards are all written (as temporaries) by then, and must go away too.
  const std::string bad = image_path("c2/zz.jpg");
  write_bytes(bad, junk);
  FolderImportOptions folder;
  folder.size = 8;
  folder.threads = 2;
  ImportOptions options = quiet_options(out());
  options.val_fraction = 0.25;
  options.shuffle = false;
  options.shard_size = 2;
  std::string message = data_error_of([&] { import_folder(root(), folder, options); });
  EXPECT_NE(message.find("'" + bad + "'"), std::string::npos) << message;
  expect_no_output();
}

TEST_F(FolderImport, TruncatedJpegFailsAndLeavesNoOutput) {
  write_pattern_tree(6, 8);
  std::vector<uint8_t> jpeg = encode_jpeg(noise(64 * 48 * 3, 10), 64, 48, 3, JCS_RGB, 90);
  jpeg.resize(jpeg.size() / 2);
  const std::string bad = image_path("c2/cut.jpeg");
  write_bytes(bad, jpeg);
  FolderImportOptions folder;
  folder.size = 8;
  std::string message = data_error_of([&] { import_folder(root(), folder, quiet_options(out())); });
  EXPECT_NE(message.find("'" + bad + "'"), std::string::npos) << message;
  expect_no_output();
}

TEST_F(FolderImport, SkipBadLeavesBadImagesOut) {
  const int64_t n = 12, size = 8;
  write_pattern_tree(n, size);
  std::vector<uint8_t> junk = noise(3000, 11);
  junk[0] = 'x';
  write_bytes(image_path("c0/x.jpg"), junk);
  std::vector<uint8_t> jpeg = encode_jpeg(noise(64 * 48 * 3, 12), 64, 48, 3, JCS_RGB, 90);
  jpeg.resize(jpeg.size() / 2);
  write_bytes(image_path("c2/cut.jpg"), jpeg);
  FolderImportOptions folder;
  folder.size = size;
  folder.skip_bad = true;
  ImportOptions options = quiet_options(out());
  options.val_fraction = 0.25;  // of 14 files: 4 in validation, whichever of them are bad
  ::testing::internal::CaptureStderr();
  ImportResult result = import_folder(root(), folder, options);
  std::string warnings = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(result.train_count + result.val_count, n);
  EXPECT_NE(warnings.find("x.jpg"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("cut.jpg"), std::string::npos) << warnings;
  std::vector<int> seen(static_cast<size_t>(n), 0);
  for (const auto* files : {&result.train_files, &result.val_files}) {
    Loaded ds = load(*files);
    for (size_t i = 0; i < ds.labels.size(); ++i) {
      int64_t id = pattern_id(ds.image(i), n, size);
      ASSERT_GE(id, 0);
      ++seen[static_cast<size_t>(id)];
    }
  }
  EXPECT_EQ(seen, std::vector<int>(static_cast<size_t>(n), 1));
}

TEST_F(FolderImport, SkipBadWithNothingGoodLeftFails) {
  write_bytes(image_path("a/x.jpg"), {'x', 'y', 'z'});
  write_bytes(image_path("b/y.png"), {0x89, 'P', 'N', 'G'});
  FolderImportOptions folder;
  folder.size = 8;
  folder.skip_bad = true;
  ::testing::internal::CaptureStderr();
  std::string message = data_error_of([&] { import_folder(root(), folder, quiet_options(out())); });
  ::testing::internal::GetCapturedStderr();
  EXPECT_NE(message.find(root()), std::string::npos) << message;
  expect_no_output();
}

TEST_F(FolderImport, EmptyClassFolderFails) {
  write_pattern_tree(3, 8);
  fs::create_directories(dir_ / "tree/empty");
  write_bytes(image_path("empty/readme.txt"), {'x'});
  FolderImportOptions folder;
  folder.size = 8;
  std::string message = data_error_of([&] { import_folder(root(), folder, quiet_options(out())); });
  EXPECT_NE(message.find("empty"), std::string::npos) << message;
  expect_no_output();
}

TEST_F(FolderImport, BadRootsFail) {
  FolderImportOptions folder;
  folder.size = 8;
  const std::string missing = dir_ / "nowhere";
  std::string message =
      data_error_of([&] { import_folder(missing, folder, quiet_options(out())); });
  EXPECT_NE(message.find("'" + missing + "'"), std::string::npos) << message;

  const std::string file = dir_ / "file";
  write_bytes(file, {'x'});
  message = data_error_of([&] { import_folder(file, folder, quiet_options(out())); });
  EXPECT_NE(message.find("not a folder"), std::string::npos) << message;

  write_bytes(image_path("loose.jpg"), {'x'});  // a file, but no class folder
  message = data_error_of([&] { import_folder(root(), folder, quiet_options(out())); });
  EXPECT_NE(message.find("no class folders"), std::string::npos) << message;
  expect_no_output();
}

}  // namespace
}  // namespace alexnet::io
