// CIFAR-10 and CIFAR-100 binary batches (data_batch_N.bin / test_batch.bin, train.bin / test.bin).
#pragma once

#include <string>
#include <vector>

#include "io/import_common.h"

namespace alexnet::io {

enum class CifarLabels { kFine, kCoarse };  // CIFAR-100 only: which of its two labels to keep

// Imports the given batch files as one dataset. The variant comes from the record size (3073
// bytes: CIFAR-10, 3074: CIFAR-100); all files must agree. Class names are read from
// batches.meta.txt (CIFAR-10) or fine_/coarse_label_names.txt (CIFAR-100) beside the first file
// when present, unless class_names is given.
ImportResult import_cifar(const std::vector<std::string>& batch_files, CifarLabels which,
                          const std::vector<std::string>& class_names,
                          const ImportOptions& options);

}  // namespace alexnet::io
