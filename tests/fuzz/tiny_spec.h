// A two-layer model description of a few floats, for the weights fuzzer and its seed: what
// read_model reads (state_dict names, shapes, offsets) without a real AlexNet's size.
#pragma once

#include "trainer/model_spec.h"

namespace alexnet::fuzz {

inline trainer::ModelSpec tiny_spec() {
  trainer::ModelSpec spec;
  spec.arch = "alexnet-mini";
  spec.num_classes = 2;
  spec.in_channels = 1;
  spec.height = spec.width = 4;
  trainer::LayerSpec conv;
  conv.kind = trainer::LayerKind::kConv;
  conv.name = "features.0";
  conv.params = {{.name = "features.0.weight", .shape = {2, 1, 3, 3}, .offset = 0},
                 {.name = "features.0.bias", .shape = {2}, .offset = 18}};
  trainer::LayerSpec bn;
  bn.kind = trainer::LayerKind::kBatchNorm;
  bn.name = "features.1";
  bn.params = {
      {.name = "features.1.running_mean", .shape = {2}, .offset = 0, .is_buffer = true},
      {.name = "features.1.num_batches_tracked", .shape = {}, .offset = 2, .is_buffer = true}};
  spec.layers = {conv, bn};
  spec.param_floats = 20;
  spec.buffer_floats = 3;
  return spec;
}

}  // namespace alexnet::fuzz
