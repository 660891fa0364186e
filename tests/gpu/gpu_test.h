// For the GPU suites (tests/gpu/): skip visibly where this machine has no CUDA device, and move
// test data between the host and any backend's memory.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "trainer/backend.h"

// First statement of every GPU test: reported by CTest as skipped, with this reason, where the
// build or the machine has no CUDA device.
#define ALEXNET_REQUIRE_CUDA_DEVICE()                                                          \
  do {                                                                                         \
    if (!::alexnet::trainer::cuda_backend_built()) GTEST_SKIP() << "no CUDA backend in build"; \
    if (::alexnet::trainer::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";        \
  } while (0)

namespace alexnet::trainer::testing {

// A buffer in a backend's memory, filled from and read back to host vectors.
template <typename T = float>
class DeviceArray {
 public:
  DeviceArray(Backend& backend, const std::vector<T>& values)
      : backend_(backend), size_(values.size()), memory_(backend.allocate(bytes())) {
    backend_.copy_to_device(memory_.get(), values.data(), bytes());
  }
  DeviceArray(Backend& backend, size_t size, T fill)
      : DeviceArray(backend, std::vector<T>(size, fill)) {}
  T* get() { return static_cast<T*>(memory_.get()); }
  std::vector<T> read() {
    std::vector<T> values(size_);
    backend_.synchronize();
    backend_.copy_to_host(values.data(), memory_.get(), bytes());
    return values;
  }
  size_t size() const { return size_; }

 private:
  size_t bytes() const { return std::max<size_t>(size_, 1) * sizeof(T); }
  Backend& backend_;
  size_t size_;
  Backend::Memory memory_;
};

}  // namespace alexnet::trainer::testing
