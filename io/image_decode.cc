// JPEG (libjpeg-turbo) and PNG (libpng) decoding to RGB. Both libraries report errors by longjmp:
// every setjmp sits in a small function whose locals are all trivially destructible, so a longjmp
// never skips a C++ destructor; the library state is released by guards in the calling frame,
// which turn the message left by the error handler into a DataError.
#include "io/image_decode.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <cstring>
#include <system_error>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "io/error.h"
#include "io/limits.h"

namespace alexnet::io {
namespace {

// A corrupt header can claim 65500 x 65500 pixels; refuse before allocating 12 GiB per thread.
constexpr int64_t kMaxPixels = limits::kMaxSourcePixels;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError("'" + path + "': " + what);
}

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::vector<uint8_t> read_file(const std::string& path) {
  // O_NONBLOCK: a FIFO named like an image must not hang the import (no effect on regular files).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, "cannot open: " + errno_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(path, "cannot stat: " + errno_text(errno));
  if (S_ISDIR(st.st_mode)) fail(path, "is a folder, not an image file");
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if (st.st_size > limits::kMaxSourceFileBytes) {
    fail(path, "file of " + std::to_string(st.st_size) + " bytes, more than the limit of " +
                   std::to_string(limits::kMaxSourceFileBytes) + " for one image");
  }
  // One read (+1 byte to see the end at once); grows only if the file grows meanwhile.
  std::vector<uint8_t> data(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1);
  size_t size = 0;
  for (;;) {
    if (size == data.size()) {
      if (size > static_cast<size_t>(limits::kMaxSourceFileBytes)) {
        fail(path, "grew past the limit of " + std::to_string(limits::kMaxSourceFileBytes) +
                       " bytes while being read");
      }
      data.resize(std::max<size_t>(size * 2, 65536));
    }
    ssize_t n = ::read(fd, data.data() + size, data.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(path, "cannot read: " + errno_text(errno));
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  data.resize(size);
  return data;
}

// The size a header claims, at full resolution, before the decoder allocates for it.
void check_header_size(const std::string& path, const char* format, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0) fail(path, std::string("bad ") + format + ": image has no pixels");
  if (height > limits::kMaxSourceSide || width > limits::kMaxSourceSide ||
      height * width > kMaxPixels) {
    fail(path, std::string(format) + " header claims " + std::to_string(width) + " x " +
                   std::to_string(height) + " pixels, more than the limit of " +
                   std::to_string(kMaxPixels) + " pixels");
  }
}

void check_size(const std::string& path, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0) fail(path, "image has no pixels");
  if (height * width > kMaxPixels) {
    fail(path, "image of " + std::to_string(width) + " x " + std::to_string(height) +
                   " pixels is too large");
  }
}

// ---- JPEG -------------------------------------------------------------------------------------

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg only sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 32];
};

struct JpegDecoder {  // trivially destructible: may live across a longjmp
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  char text[JMSG_LENGTH_MAX];
  cinfo->err->format_message(cinfo, text);
  std::snprintf(err->message, sizeof(err->message), "bad JPEG: %s", text);
  std::longjmp(err->jump, 1);
}

// libjpeg reports damaged data (a truncated file, a bad Huffman code) only as a warning, fills in
// gray and goes on; an importer must not store such an image silently, so these are errors too.
// Warnings that leave every pixel intact are ignored: junk bytes between segments (written by some
// encoders; the entropy-coded data is complete), an unknown JFIF revision or Adobe transform code,
// a bad ICC marker (colour profiles are not applied anyway).
void jpeg_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace output
  switch (cinfo->err->msg_code) {
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
      return;
    default:
      jpeg_fail(cinfo);
  }
}

// Reads the header and chooses the DCT scale: the smallest N/8 whose shorter side is >= min_side.
// Returns false with d->err.message set on any error.
bool jpeg_read_header_guarded(JpegDecoder* d, const uint8_t* data, size_t size, int64_t min_side) {
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);
  // libjpeg's own bound: a progressive JPEG buffers all its coefficients, and an image that would
  // need more than this fails with "Backing store not supported" instead of allocating.
  d->cinfo.mem->max_memory_to_use = static_cast<long>(limits::kMaxJpegMemory);
  jpeg_mem_src(&d->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d->cinfo, TRUE);
  // CMYK (and YCCK) JPEGs, about 22 of ImageNet's training images, decode to CMYK and are
  // converted to RGB row by row; everything else decodes straight to RGB (libjpeg-turbo also
  // expands grayscale).
  const bool cmyk = d->cinfo.jpeg_color_space == JCS_CMYK || d->cinfo.jpeg_color_space == JCS_YCCK;
  d->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  d->cinfo.scale_denom = 8;
  for (unsigned num = min_side > 0 ? 1 : 8; num <= 8; ++num) {
    d->cinfo.scale_num = num;
    jpeg_calc_output_dimensions(&d->cinfo);
    if (std::min(d->cinfo.output_width, d->cinfo.output_height) >= min_side) break;
  }
  return true;
}

// cmyk_row: width * 4 bytes of scratch for CMYK JPEGs, nullptr otherwise.
bool jpeg_read_pixels_guarded(JpegDecoder* d, uint8_t* pixels, JDIMENSION height, JDIMENSION width,
                              uint8_t* cmyk_row) {
  if (setjmp(d->err.jump)) return false;
  jpeg_start_decompress(&d->cinfo);
  const int components = cmyk_row != nullptr ? 4 : 3;
  if (d->cinfo.output_components != components || d->cinfo.output_height != height ||
      d->cinfo.output_width != width) {
    std::snprintf(d->err.message, sizeof(d->err.message),
                  "unexpected output of %u x %u x %d from libjpeg", d->cinfo.output_width,
                  d->cinfo.output_height, d->cinfo.output_components);
    return false;
  }
  // Adobe's CMYK JPEGs (nearly all in the wild) store inverted values: R = C * K / 255.
  const bool inverted = d->cinfo.saw_Adobe_marker;
  while (d->cinfo.output_scanline < height) {
    uint8_t* out = pixels + static_cast<size_t>(d->cinfo.output_scanline) * width * 3;
    JSAMPROW row = cmyk_row != nullptr ? cmyk_row : out;
    jpeg_read_scanlines(&d->cinfo, &row, 1);
    for (JDIMENSION x = 0; cmyk_row != nullptr && x < width; ++x) {
      const uint8_t* p = cmyk_row + 4 * x;
      unsigned k = inverted ? p[3] : 255u - p[3];
      for (int c = 0; c < 3; ++c) {
        unsigned v = inverted ? p[c] : 255u - p[c];
        out[3 * x + c] = static_cast<uint8_t>((v * k + 127) / 255);
      }
    }
  }
  jpeg_finish_decompress(&d->cinfo);
  return true;
}

DecodedImage decode_jpeg(const std::string& path, const std::vector<uint8_t>& data,
                         int64_t min_side) {
  JpegDecoder d{};
  d.cinfo.err = jpeg_std_error(&d.err.pub);
  d.err.pub.error_exit = jpeg_fail;
  d.err.pub.emit_message = jpeg_message;
  struct Destroy {  // also safe on a struct that jpeg_create_decompress never initialized
    JpegDecoder* d;
    ~Destroy() { jpeg_destroy_decompress(&d->cinfo); }
  } destroy{&d};
  if (!jpeg_read_header_guarded(&d, data.data(), data.size(), min_side)) fail(path, d.err.message);
  check_header_size(path, "JPEG", d.cinfo.image_height, d.cinfo.image_width);
  DecodedImage image;
  image.height = d.cinfo.output_height;
  image.width = d.cinfo.output_width;
  check_size(path, image.height, image.width);
  image.pixels.resize(static_cast<size_t>(image.height * image.width * 3));
  std::vector<uint8_t> cmyk_row;
  if (d.cinfo.out_color_space == JCS_CMYK) cmyk_row.resize(static_cast<size_t>(image.width) * 4);
  if (!jpeg_read_pixels_guarded(&d, image.pixels.data(), d.cinfo.output_height,
                                d.cinfo.output_width,
                                cmyk_row.empty() ? nullptr : cmyk_row.data())) {
    fail(path, d.err.message);
  }
  return image;
}

// ---- PNG --------------------------------------------------------------------------------------

struct PngReader {  // trivially destructible: may live across a longjmp
  png_structp png;
  png_infop info;
  const uint8_t* data;
  size_t size, pos;
  size_t raw_row_bytes;  // of the stored rows, before any conversion
  char message[512];
};

[[noreturn]] void png_fail(png_structp png, png_const_charp text) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof(r->message), "bad PNG: %s", text);
  png_longjmp(png, 1);
}

// Warnings are about ancillary data (an odd ICC profile, a bad text chunk), never the pixels.
void png_warn(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (n > r->size - r->pos) png_error(png, "file is truncated");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

// Reads the header and sets up the conversion of every PNG flavour to 8-bit RGB.
bool png_read_header_guarded(PngReader* r) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_set_read_fn(r->png, r, png_read_memory);
  // libpng's own bound on the header's size, checked as it reads IHDR.
  png_set_user_limits(r->png, static_cast<png_uint_32>(limits::kMaxSourceSide),
                      static_cast<png_uint_32>(limits::kMaxSourceSide));
  png_read_info(r->png, r->info);
  r->raw_row_bytes = png_get_rowbytes(r->png, r->info);
  png_set_expand(r->png);       // palette -> RGB, gray < 8 bits -> 8 bits, tRNS -> alpha
  png_set_strip_16(r->png);     // 16 -> 8 bits: the high byte
  png_set_strip_alpha(r->png);  // alpha (also from tRNS) is dropped, not composited
  png_set_gray_to_rgb(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);
  if (png_get_channels(r->png, r->info) != 3 || png_get_bit_depth(r->png, r->info) != 8) {
    std::snprintf(r->message, sizeof(r->message), "unexpected output of %d channels of %d bits",
                  png_get_channels(r->png, r->info), png_get_bit_depth(r->png, r->info));
    return false;
  }
  return true;
}

bool png_read_pixels_guarded(PngReader* r, png_bytepp rows) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_read_image(r->png, rows);
  png_read_end(r->png, nullptr);  // up to IEND: a file cut after the pixels is still truncated
  return true;
}

DecodedImage decode_png(const std::string& path, const std::vector<uint8_t>& data) {
  PngReader r{};
  r.data = data.data();
  r.size = data.size();
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, png_fail, png_warn);
  if (r.png == nullptr) fail(path, "cannot initialize libpng");
  struct Destroy {
    PngReader* r;
    ~Destroy() { png_destroy_read_struct(&r->png, r->info ? &r->info : nullptr, nullptr); }
  } destroy{&r};
  r.info = png_create_info_struct(r.png);
  if (r.info == nullptr) fail(path, "cannot initialize libpng");
  if (!png_read_header_guarded(&r)) fail(path, r.message);
  DecodedImage image;
  image.height = png_get_image_height(r.png, r.info);
  image.width = png_get_image_width(r.png, r.info);
  check_header_size(path, "PNG", image.height, image.width);
  // The pixels are one deflate stream, which expands at most 1032:1: a header that claims more
  // rows than the file can hold is a lie (or a truncation), found before allocating them.
  // (Interlaced rows round up per pass, so one byte a row is left out of this lower bound.)
  const long double raw_bytes =
      static_cast<long double>(image.height) *
      static_cast<long double>(r.raw_row_bytes > 0 ? r.raw_row_bytes - 1 : 0);
  if (raw_bytes > static_cast<long double>(data.size()) * limits::kMaxCompressionRatio) {
    fail(path, "bad PNG: header claims " + std::to_string(image.width) + " x " +
                   std::to_string(image.height) + " pixels, more than a file of " +
                   std::to_string(data.size()) + " bytes can hold");
  }
  check_size(path, image.height, image.width);
  image.pixels.resize(static_cast<size_t>(image.height * image.width * 3));
  std::vector<png_bytep> rows(static_cast<size_t>(image.height));
  for (size_t y = 0; y < rows.size(); ++y) {
    rows[y] = image.pixels.data() + y * static_cast<size_t>(image.width) * 3;
  }
  if (!png_read_pixels_guarded(&r, rows.data())) fail(path, r.message);
  return image;
}

}  // namespace

DecodedImage decode_image_file(const std::string& path, int64_t min_side) {
  std::vector<uint8_t> data = read_file(path);
  if (data.empty()) fail(path, "empty file, not an image");
  if (data.size() >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    return decode_jpeg(path, data, min_side);
  }
  if (data.size() >= 8 && png_sig_cmp(data.data(), 0, 8) == 0) return decode_png(path, data);
  fail(path, "not a JPEG or PNG file");
}

}  // namespace alexnet::io
