// The GPU input path (trainer/cuda/device_augmenter.h) against the CPU loader's: the same raw
// batches augmented on the device must equal, bit for bit, what the loader's workers make on the
// host with the same seed (random crops, flips, padding, lighting, normalization).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "io/dataset.h"
#include "io/loader.h"
#include "io/synthetic_import.h"
#include "tests/gpu/gpu_test.h"
#include "tests/temp_dir.h"
#include "trainer/backend.h"
#ifdef ALEXNET_WITH_CUDA
#include "trainer/cuda/cuda_backend.h"
#include "trainer/cuda/device_augmenter.h"
#endif

namespace alexnet::trainer {
namespace {

TEST(DeviceInput, AugmentedBatchesEqualTheHostLoadersBitForBit) {
  ALEXNET_REQUIRE_CUDA_DEVICE();
#ifdef ALEXNET_WITH_CUDA
  test::TempDir dir;
  io::SyntheticOptions s;
  s.count = 96;
  s.size = 40;
  s.channels = 3;
  s.num_classes = 5;
  io::ImportOptions o;
  o.out = dir / "syn";
  o.progress = false;
  const io::Dataset ds = io::Dataset::open(io::import_synthetic(s, o).train_files);

  io::LoaderConfig c;
  c.batch_size = 16;
  c.sampler.seed = 11;
  c.sampler.shuffle = true;
  c.epochs = 2;
  c.workers = 2;
  c.augment.crop_height = 32;
  c.augment.crop_width = 32;
  c.augment.random_crop = true;
  c.augment.flip = true;
  c.augment.pad = 2;
  c.augment.lighting_std = 0.1f;
  c.augment.mean = {120.0f, 121.0f, 122.0f};
  c.augment.std = {60.0f, 61.0f, 62.0f};
  c.augment.layout = io::Layout::kNHWC;
  io::LoaderConfig raw = c;
  raw.augment_on_host = false;

  std::unique_ptr<Backend> backend = make_backend("cuda");
  cuda::DeviceAugmenter augmenter(*backend, c.augment, s.size, s.size, s.channels, c.batch_size,
                                  c.sampler.seed);
  const size_t floats = static_cast<size_t>(c.batch_size * 32 * 32 * s.channels);
  Backend::Memory out = backend->allocate(floats * sizeof(float));
  std::vector<float> gpu(floats);

  io::Loader host_loader(ds, c), raw_loader(ds, raw);
  int batches = 0;
  while (const io::Batch* h = host_loader.next()) {
    const io::Batch* r = raw_loader.next();
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(r->size, h->size);
    ASSERT_EQ(r->images, nullptr);  // the raw loader did no host augmentation
    augmenter.run(*r, static_cast<float*>(out.get()));
    backend->synchronize();
    backend->copy_to_host(gpu.data(), out.get(), floats * sizeof(float));
    const size_t n = static_cast<size_t>(h->size) * floats / static_cast<size_t>(c.batch_size);
    ASSERT_EQ(std::memcmp(gpu.data(), h->images, n * sizeof(float)), 0)
        << "batch " << batches << " of epoch " << h->epoch;
    ++batches;
  }
  EXPECT_EQ(raw_loader.next(), nullptr);
  EXPECT_EQ(batches, 12);  // 96 samples / 16, two epochs
#endif
}

}  // namespace
}  // namespace alexnet::trainer
