// Decoding JPEG and PNG files into 8-bit RGB pixels (libjpeg-turbo, libpng).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace alexnet::io {

struct DecodedImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3] RGB, HWC
};

// Decodes a JPEG or PNG file, recognized by its content (magic bytes), not its extension, into
// RGB: grayscale is expanded to 3 channels, alpha dropped, 16-bit PNG reduced to 8 bits, palette
// expanded. min_side > 0: a JPEG is decoded at the smallest libjpeg DCT scale (N/8) whose shorter
// side is still >= min_side, which is several times faster for photos much larger than needed.
// Any problem (missing, unreadable, truncated, corrupt, CMYK JPEG, unknown format) throws
// DataError("'<path>': <what is wrong>"). Thread-safe: no state is shared between calls.
DecodedImage decode_image_file(const std::string& path, int64_t min_side = 0);

}  // namespace alexnet::io
