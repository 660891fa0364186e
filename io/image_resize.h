// Resizing an image so that its shorter side has a given length, then cropping the centre square.
#pragma once

#include <cstdint>

namespace alexnet::io {

// Resizes so that the shorter side becomes `size` (aspect ratio kept, the longer side rounded),
// then crops the central size x size. Downscaling is antialiased: a separable triangle filter whose
// support widens with the scale factor, as PIL's BILINEAR does when reducing; upscaling is plain
// bilinear. Only the pixels that survive the crop are computed. src is [height, width, channels]
// uint8 (HWC), dst receives [size, size, channels]. An image that already is size x size comes out
// bit-exact. Throws std::invalid_argument for a non-positive dimension.
void resize_shorter_and_center_crop(const uint8_t* src, int64_t height, int64_t width,
                                    int64_t channels, int64_t size, uint8_t* dst);

}  // namespace alexnet::io
