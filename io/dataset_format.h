// Names of the datasets and attributes of one HDF5 shard (documented in io/README.md).
#pragma once

namespace alexnet::io::format {

inline constexpr const char* kImages = "images";  // uint8 [N, H, W, C], chunked
inline constexpr const char* kLabels = "labels";  // int32 [N] (any integer type is accepted)

// Attributes on the root group "/". Only num_classes is needed by the trainer, and even it is
// inferred from the labels where absent, so that a minimal h5py file is a valid dataset.
inline constexpr const char* kNumClasses = "num_classes";  // integer
inline constexpr const char* kClassNames = "class_names";  // string [num_classes]
inline constexpr const char* kMean = "mean";               // float64 [C], pixel units (0-255)
inline constexpr const char* kStd = "std";                 // float64 [C], pixel units (0-255)
inline constexpr const char* kSource = "source";           // string: where the data came from
inline constexpr const char* kFormat = "format";           // string: kFormatName
inline constexpr const char* kFormatName = "alexnet-hdf5-v1";

}  // namespace alexnet::io::format
