// Precision names (io/numeric/precision.h).
#include "io/numeric/precision.h"

#include <stdexcept>

namespace alexnet::numeric {

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFloat32;
  if (name == "bf16") return Precision::kBFloat16;
  if (name == "fp16") return Precision::kFloat16;
  throw std::invalid_argument("unknown precision '" + name + "' (expected fp32, bf16 or fp16)");
}

const char* precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFloat32:
      return "fp32";
    case Precision::kBFloat16:
      return "bf16";
    case Precision::kFloat16:
      return "fp16";
  }
  return "?";
}

}  // namespace alexnet::numeric
