// Dropout's arithmetic, written once for every backend (the reference ops, the oneDNN backend's
// loops and the CUDA kernels). The mask is a pure function of (seed, step, rank, layer, element):
// a counter-based hash (splitmix64 finalizers), identical on the host and in CUDA kernels, so
// every backend and every run draws the same mask for the same key, with no generator state to
// save or restore.
#pragma once

#include <cmath>
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

// p quantized to 24 bits, as dropout_keep's threshold. p = 1 gives 2^24, which no 24-bit draw
// reaches: everything is dropped.
inline uint32_t dropout_threshold(double p) {
  return static_cast<uint32_t>(std::llround(p * 16777216.0));
}

// The factor applied to kept elements, 1 / (1 - p), in double (backends round it to their type
// once). p = 1 scales by 0 rather than inf, as PyTorch, which returns zeros.
inline double dropout_scale(double p) { return p < 1 ? 1 / (1 - p) : 0; }

// A kept element times scale, a dropped one times 0: a multiply, not a select, as PyTorch, so a
// dropped NaN or Inf stays NaN instead of hiding as 0.
template <typename T>
ALEXNET_HOST_DEVICE inline T dropout_apply(T x, bool keep, T scale) {
  return x * (keep ? scale : T(0));
}

}  // namespace alexnet::trainer
