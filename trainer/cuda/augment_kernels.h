// Data augmentation on the GPU: a stored uint8 batch to the float NHWC batch the model eats, with
// each image's crop, flip, lighting and normalization given (augment_math.h; the same values as
// io's CPU augmentation, io/augment.h).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "trainer/cuda/augment_math.h"

namespace alexnet::trainer::cuda {

// out [N, crop_h, crop_w, C] float = augment(src [N, height, width, C] uint8), with images [N]
// (device memory, e.g. copied from make_augment_image() results). Asynchronous on `stream`.
void augment_batch(const uint8_t* src, const AugmentImage* images, int64_t batch,
                   const AugmentGeometry& geometry, float* out, cudaStream_t stream);

}  // namespace alexnet::trainer::cuda
