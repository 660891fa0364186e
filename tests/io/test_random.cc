// Counter-based RNG: Philox known answers, bounded integers, determinism of keyed streams.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "io/random.h"

namespace alexnet::io {
namespace {

// Known-answer vectors of Philox4x32-10 from Random123's kat_vectors.
TEST(Philox, MatchesRandom123KnownAnswers) {
  struct Case {
    uint32_t ctr[4], key[2], out[4];
  } cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& c : cases) {
    uint32_t out[4];
    philox4x32_10(c.ctr, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.out[i]) << "word " << i;
  }
}

TEST(CounterRng, SameKeySameStreamOtherKeyOtherStream) {
  CounterRng a(42, RngPurpose::kAugment, 3, 7), b(42, RngPurpose::kAugment, 3, 7);
  CounterRng c(42, RngPurpose::kAugment, 3, 8), d(42, RngPurpose::kWindowShuffle, 3, 7);
  int same_c = 0, same_d = 0;
  for (int i = 0; i < 64; ++i) {
    uint32_t x = a.next_u32();
    EXPECT_EQ(x, b.next_u32());
    same_c += x == c.next_u32();
    same_d += x == d.next_u32();
  }
  EXPECT_LT(same_c, 2);
  EXPECT_LT(same_d, 2);
}

TEST(CounterRng, BelowIsInRangeAndCoversIt) {
  CounterRng rng(1, RngPurpose::kAugment, 0);
  for (uint64_t n : {1ull, 2ull, 3ull, 7ull, 1000ull, (1ull << 33) + 5}) {
    std::vector<int> seen(std::min<uint64_t>(n, 16), 0);
    for (int i = 0; i < 2000; ++i) {
      uint64_t v = rng.below(n);
      ASSERT_LT(v, n);
      if (v < seen.size()) seen[v] = 1;
    }
    if (n <= 16) {
      EXPECT_EQ(std::accumulate(seen.begin(), seen.end(), 0), static_cast<int>(n)) << "n=" << n;
    }
  }
}

TEST(CounterRng, UniformAndNormalMoments) {
  CounterRng rng(9, RngPurpose::kAugment, 1);
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    float u = rng.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    su += u;
    float z = rng.normal();
    ASSERT_TRUE(std::isfinite(z));
    sn += z;
    sn2 += static_cast<double>(z) * z;
  }
  // Tolerances: about 5 standard errors of the estimates at n = 200000.
  EXPECT_NEAR(su / n, 0.5, 0.004);
  EXPECT_NEAR(sn / n, 0.0, 0.012);
  EXPECT_NEAR(sn2 / n, 1.0, 0.02);
}

TEST(CounterRng, ShuffleIsAPermutationAndDeterministic) {
  std::vector<int> a(1000), b(1000);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), 0);
  CounterRng r1(5, RngPurpose::kBlockOrder, 2), r2(5, RngPurpose::kBlockOrder, 2);
  r1.shuffle(a.data(), a.size());
  r2.shuffle(b.data(), b.size());
  EXPECT_EQ(a, b);
  std::vector<int> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  int fixed = 0;
  for (int i = 0; i < 1000; ++i) fixed += a[static_cast<size_t>(i)] == i;
  EXPECT_LT(fixed, 10);  // a uniform permutation has about one fixed point
}

}  // namespace
}  // namespace alexnet::io
