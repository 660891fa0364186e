// alexnet-data inspect: a dataset's schema, counts, class histogram and statistics.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace alexnet::io {

// Opens (and so fully validates) the dataset and prints the report. Throws DataError on any
// malformed file.
void inspect_dataset(const std::vector<std::string>& paths_or_globs, std::ostream& out);

}  // namespace alexnet::io
