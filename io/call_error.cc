// The failed-call message (io/call_error.h).
#include "io/call_error.h"

#include <stdexcept>

namespace alexnet::io {

std::string failed_call_message(const char* library, const char* call, const char* file, int line,
                                const std::string& context, const std::string& error) {
  return std::string(library) + " call " + call + " failed at " + file + ":" +
         std::to_string(line) + " while " + context + ": " + error;
}

void throw_call_error(const char* library, const char* call, const char* file, int line,
                      const std::string& context, const std::string& error) {
  throw std::runtime_error(failed_call_message(library, call, file, line, context, error));
}

}  // namespace alexnet::io
