// The one place checked CUDA, cuDNN and cuBLAS failures are turned into exceptions.
#include "trainer/cuda/cuda_check.h"

#include <stdexcept>

namespace alexnet::trainer::cuda {

void throw_call_error(const char* library, const char* call, const char* file, int line,
                      const std::string& context, const std::string& error) {
  throw std::runtime_error(std::string(library) + " call " + call + " failed at " + file + ":" +
                           std::to_string(line) + " while " + context + ": " + error);
}

}  // namespace alexnet::trainer::cuda
