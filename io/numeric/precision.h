// The number formats: fp32, bf16 and fp16, by name, and their host conversions. A backend's
// convolutions and matrix products compute in one of them (trainer/backend_options.h); gradients
// travel in one of them (comm/'s wire types). bf16 keeps fp32's exponent range (no overflow of
// large gradients), fp16 keeps three more mantissa bits.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace alexnet::numeric {

enum class Precision { kFloat32, kBFloat16, kFloat16 };

// "fp32" | "bf16" | "fp16"; throws std::invalid_argument naming the accepted values.
Precision parse_precision(const std::string& name);
const char* precision_name(Precision precision);

// fp32 <-> 16-bit on the host, round to nearest even (the device kernels: io/cuda/cast_kernels.h).
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

}  // namespace alexnet::numeric
