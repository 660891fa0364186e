// fp32 <-> 16-bit conversions for gradient communication, round to nearest even. bf16 keeps
// fp32's exponent range (no overflow of large gradients), fp16 keeps three more mantissa bits.
#pragma once

#include <cstdint>
#include <cstring>

namespace alexnet::comm {

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The compiler's _Float16 (GCC 12+ on x86-64): correctly rounded conversions, F16C where built
// for it.
inline uint16_t float_to_fp16(float f) {
  const auto h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

inline float fp16_to_float(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}

}  // namespace alexnet::comm
