// Backends by name.
#include <stdexcept>

#include "trainer/backend.h"

namespace alexnet::trainer {

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "reference") return make_reference_backend();
  if (name == "onednn") return make_onednn_backend();
  throw std::invalid_argument("unknown backend '" + name + "' (reference, onednn)");
}

}  // namespace alexnet::trainer
