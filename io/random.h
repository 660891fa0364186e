// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): the stream for a key is a
// pure function of (seed, purpose, a, b), so shuffles and augmentations reproduce exactly
// whatever the thread count, rank count or order of evaluation. Own implementations of bounded
// integers and shuffles, because std:: distributions differ between standard libraries.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>

namespace alexnet::io {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// What a stream is used for; keeps streams of different purposes independent.
enum class RngPurpose : uint32_t {
  kBlockOrder = 1,
  kWindowShuffle = 2,
  kAugment = 3,
  kImport = 4,
};

// One Philox4x32-10 block: out = bijection_key(counter).
inline void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
  uint32_t k[2] = {key[0], key[1]};
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
    uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
    uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0];
    uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = static_cast<uint32_t>(p1);
    c[2] = n2;
    c[3] = static_cast<uint32_t>(p0);
    k[0] += 0x9E3779B9u;
    k[1] += 0xBB67AE85u;
  }
  for (int i = 0; i < 4; ++i) out[i] = c[i];
}

class CounterRng {
 public:
  CounterRng(uint64_t seed, RngPurpose purpose, uint64_t a, uint64_t b = 0) {
    uint64_t key = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(purpose) ^ splitmix64(b)));
    key_[0] = static_cast<uint32_t>(key);
    key_[1] = static_cast<uint32_t>(key >> 32);
    counter_[1] = static_cast<uint32_t>(a);
    counter_[2] = static_cast<uint32_t>(a >> 32);
    counter_[3] = static_cast<uint32_t>(purpose);
  }

  uint32_t next_u32() {
    if (index_ == 4) refill();
    return block_[index_++];
  }
  uint64_t next_u64() {
    uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform in [0, 1) with 24 random bits.
  float uniform() { return static_cast<float>(next_u32() >> 8) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    if (n <= 0xFFFFFFFFull) {
      uint32_t bound = static_cast<uint32_t>(n);
      uint32_t threshold = static_cast<uint32_t>(-bound) % bound;
      for (;;) {
        uint64_t m = static_cast<uint64_t>(next_u32()) * bound;
        if (static_cast<uint32_t>(m) >= threshold) return m >> 32;
      }
    }
    for (;;) {  // rare: n above 2^32, plain rejection on 64 bits
      uint64_t limit = UINT64_MAX - UINT64_MAX % n;
      uint64_t r = next_u64();
      if (r < limit) return r % n;
    }
  }
  // Standard normal (Box-Muller).
  float normal() {
    float u1 = uniform(), u2 = uniform();
    float r = std::sqrt(-2.0f * std::log(1.0f - u1));  // 1-u1 in (0, 1]: log is finite
    return r * std::cos(6.2831853071795864f * u2);
  }
  // Fisher-Yates shuffle of [first, first + n).
  template <typename T>
  void shuffle(T* first, uint64_t n) {
    for (uint64_t i = n; i > 1; --i) std::swap(first[i - 1], first[below(i)]);
  }

 private:
  void refill() {
    philox4x32_10(counter_, key_, block_);
    ++counter_[0];
    index_ = 0;
  }

  uint32_t key_[2];
  uint32_t counter_[4] = {0, 0, 0, 0};
  uint32_t block_[4] = {0, 0, 0, 0};
  int index_ = 4;
};

}  // namespace alexnet::io
