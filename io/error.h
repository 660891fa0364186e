// Errors raised by the data layer: one line naming the file and the problem.
#pragma once

#include <stdexcept>
#include <string>

namespace alexnet::io {

// Bad input: a missing or malformed file, a wrong shape, a label out of range, a bad option.
// The message is a single line that names the file (where there is one) and what is wrong with it;
// command-line tools print it and exit with status 2.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace alexnet::io
