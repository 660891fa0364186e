// What the all-reduce tests share: every rank's seeded data, the bound of a wire type's rounding,
// and "every rank holds the same bytes".
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "comm/communicator.h"

namespace alexnet::comm::checks {

// Uniform in [-1, 1), seeded by the rank: any rank can make any other rank's data.
inline std::vector<float> rank_data(size_t n, int rank) {
  std::mt19937 rng(1234 + static_cast<uint32_t>(rank));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Small integers (|x| <= 64), exact in fp32, and so is their sum over ranks in any order.
inline std::vector<float> rank_integers(size_t n, int rank) {
  std::mt19937 rng(99 + static_cast<uint32_t>(rank));
  std::uniform_int_distribution<int> d(-64, 64);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(d(rng));
  return v;
}

// The largest error allowed against the exact sum of `ranks` ranks' data in [-1, 1), relative
// to max(1, the largest exact value). fp32: a few roundings of a sum of p terms. 16-bit: one
// rounding per ring hop of values of magnitude up to p (bf16 8 bits, fp16 11 bits of mantissa).
inline double wire_tolerance(WireType wire, int ranks) {
  return wire == WireType::kFloat32   ? 1e-6
         : wire == WireType::kFloat16 ? 2e-3 * ranks
                                      : 1.6e-2 * ranks;
}

// True when every rank holds the same bytes as rank 0.
inline bool same_on_every_rank(Communicator& comm, const std::vector<float>& v) {
  std::vector<float> root = v;
  comm.broadcast(root.data(), root.size() * 4, 0);
  // An empty vector's data() may be null, which memcmp must not see.
  const int64_t differs = !v.empty() && std::memcmp(root.data(), v.data(), v.size() * 4) != 0;
  return comm.all_reduce_max(differs) == 0;
}

}  // namespace alexnet::comm::checks
