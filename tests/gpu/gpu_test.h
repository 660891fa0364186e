// For the GPU suites (tests/gpu/): skip visibly where this machine has no CUDA device. Buffers in
// a backend's memory (DeviceArray) are the backend tests' common helper (backend_test_util.h).
#pragma once

#include <gtest/gtest.h>

#include "tests/trainer/backend_test_util.h"
#include "trainer/backend.h"

// First statement of every GPU test: reported by CTest as skipped, with this reason, where the
// build or the machine has no CUDA device.
#define ALEXNET_REQUIRE_CUDA_DEVICE()                                                          \
  do {                                                                                         \
    if (!::alexnet::trainer::cuda_backend_built()) GTEST_SKIP() << "no CUDA backend in build"; \
    if (::alexnet::trainer::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";        \
  } while (0)
