// The dropout mask as a pure function of (seed, step, rank, layer, element): a counter-based
// hash (splitmix64 finalizers), identical on the host and in CUDA kernels, so every backend and
// every run draws the same mask for the same key, with no generator state to save or restore.
#pragma once

#include <cstdint>

#include "trainer/host_device.h"

namespace alexnet::trainer {

ALEXNET_HOST_DEVICE inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A per-(seed, step, rank, layer) stream key; computed once per layer and step.
ALEXNET_HOST_DEVICE inline uint64_t dropout_stream(uint64_t seed, uint64_t step, uint32_t rank,
                                                   uint32_t layer) {
  return mix64(mix64(seed ^ mix64(step)) ^ ((static_cast<uint64_t>(rank) << 32) | layer));
}

// Whether element i is kept under drop probability p, given as threshold = p * 2^24 (rounded).
ALEXNET_HOST_DEVICE inline bool dropout_keep(uint64_t stream, uint64_t i, uint32_t threshold) {
  return static_cast<uint32_t>(mix64(stream ^ mix64(i)) >> 40) >= threshold;
}

}  // namespace alexnet::trainer
