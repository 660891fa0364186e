// Bounds on every size the data layer reads from a file or an option (io/README.md, "Limits").
// A size is checked against these and against what the file can actually hold before anything is
// allocated for it, so that a corrupt or hostile header ends in a one-line DataError, not in an
// allocation of many gigabytes.
#pragma once

#include <cstdint>

namespace alexnet::io::limits {

// Stored images (HDF5 datasets, IDX files, --size): height and width. AlexNet's inputs are
// 227 px; 4096 leaves room for full-resolution crops of most photo collections.
inline constexpr int64_t kMaxImageSide = 4096;
// Channels of a stored image: grayscale or RGB (the only kinds the importers write and the model
// reads).
inline constexpr bool valid_channels(int64_t c) { return c == 1 || c == 3; }
// Classes (num_classes, class names, labels). ImageNet-21k has 21,841.
inline constexpr int64_t kMaxClasses = 100000;
// Bytes of one class name, and of one string attribute such as 'source'.
inline constexpr int64_t kMaxNameBytes = 4096;
inline constexpr int64_t kMaxStringAttributeBytes = int64_t{1} << 20;
// Samples in one shard file or one IDX/CIFAR file: labels are int32 and indices int64, and one
// shard is about 1 GiB by default; 2^31 - 1 is far beyond any real shard.
inline constexpr int64_t kMaxShardSamples = (int64_t{1} << 31) - 1;
// One HDF5 chunk of images: the reader reads whole chunks (about 1 MiB is the recommended size).
inline constexpr int64_t kMaxChunkBytes = int64_t{1} << 30;
// Deflate (gzip, zlib, PNG) expands at most 1032:1; a compressed payload that claims more than
// this times its stored size cannot be there. The same bound is applied to HDF5 datasets with
// any filter.
inline constexpr int64_t kMaxCompressionRatio = 1032;
// Source images for import-folder (JPEG/PNG headers): pixels at full resolution (16384 x 16384),
// and the memory libjpeg may use for one image (progressive JPEGs buffer every coefficient).
inline constexpr int64_t kMaxSourcePixels = int64_t{1} << 28;
inline constexpr int64_t kMaxSourceSide = 65535;
inline constexpr int64_t kMaxJpegMemory = int64_t{2} << 30;
// One source image file, read whole before decoding.
inline constexpr int64_t kMaxSourceFileBytes = int64_t{1} << 30;

}  // namespace alexnet::io::limits
