// What alexnet-train's options mean for the job's parts (trainer/train_config.h), without a job.
#include "trainer/train_config.h"

#include <gtest/gtest.h>

#include <string>

#include "trainer/model_spec.h"
#include "trainer/train_options.h"

namespace alexnet::trainer {
namespace {

TEST(TrainConfig, TotalStepsIsTheEpochsOrMaxStepsWhereFewer) {
  TrainOptions o;
  o.epochs = 3;
  EXPECT_EQ(total_steps(o, 100), 300);
  o.max_steps = 250;
  EXPECT_EQ(total_steps(o, 100), 250);
  o.max_steps = 1000;
  EXPECT_EQ(total_steps(o, 100), 300);
  // The schedule's length is the same number (cosine and warm-up end with the run).
  o.max_steps = 120;
  EXPECT_EQ(schedule_config(o, 100).total_steps, 120);
}

TEST(TrainConfig, OnlyFp16ScalesTheLoss) {
  TrainOptions o;
  o.wire = "bf16";
  o.bucket_mb = 7;
  o.overlap = false;
  o.clip_grad_norm = 2;
  for (const char* precision : {"fp32", "bf16", "fp16"}) {
    o.precision = precision;
    const TrainStepConfig c = step_config(o);
    EXPECT_EQ(c.loss_scaling, o.precision == "fp16") << precision;
    EXPECT_EQ(c.wire, comm::WireType::kBFloat16);
    EXPECT_EQ(c.bucket_mb, 7);
    EXPECT_FALSE(c.overlap);
    EXPECT_EQ(c.clip_grad_norm, 2);
  }
  o.precision = "bf16";
  o.tf32 = true;
  EXPECT_EQ(backend_options(o).precision, Precision::kBFloat16);
  EXPECT_TRUE(backend_options(o).allow_tf32);
}

TEST(TrainConfig, AugmentationRunsOnTheDeviceOnlyWithOneGpuPerRankOrWhenAsked) {
  TrainOptions o;
  EXPECT_FALSE(augment_on_device(o));  // auto on the CPU
  o.backend = "cuda";
  EXPECT_TRUE(augment_on_device(o));
  o.gpus_per_rank = 2;
  EXPECT_FALSE(augment_on_device(o));  // the replicas' step takes host batches
  o.gpus_per_rank = 1;
  o.augment_on = "host";
  EXPECT_FALSE(augment_on_device(o));
  o.augment_on = "device";
  EXPECT_TRUE(augment_on_device(o));
}

TEST(TrainConfig, TrainLoaderStartsWhereAsked) {
  TrainOptions o;
  o.batch_size = 16;
  o.epochs = 5;
  o.seed = 42;
  o.pad = 4;
  o.flip = false;
  o.data_workers = 3;
  io::DatasetMeta meta;
  meta.mean = {120, 110, 100};
  meta.std = {60, 50, 40};
  const ModelSpec spec = build_model("alexnet-mini", 10, 3, 32, 32);
  const io::LoaderConfig lc =
      train_loader_config(o, meta, spec, ActivationLayout::kNHWC, 2, 4, 3, 17);
  EXPECT_EQ(lc.batch_size, 16);
  EXPECT_EQ(lc.sampler.seed, 42u);
  EXPECT_TRUE(lc.sampler.shuffle);
  EXPECT_TRUE(lc.drop_last);
  EXPECT_EQ(lc.rank, 2);
  EXPECT_EQ(lc.world, 4);
  EXPECT_EQ(lc.start_epoch, 3);
  EXPECT_EQ(lc.start_step, 17);
  EXPECT_EQ(lc.epochs, 2);  // what is left of 5
  EXPECT_EQ(lc.workers, 3);
  EXPECT_EQ(lc.augment.crop_height, spec.height);
  EXPECT_EQ(lc.augment.crop_width, spec.width);
  EXPECT_EQ(lc.augment.pad, 4);
  EXPECT_FALSE(lc.augment.flip);
  EXPECT_TRUE(lc.augment.random_crop);
  EXPECT_EQ(lc.augment.layout, io::Layout::kNHWC);
  EXPECT_EQ(lc.augment.mean, (std::vector<float>{120, 110, 100}));
  EXPECT_EQ(lc.augment.std, (std::vector<float>{60, 50, 40}));
  EXPECT_TRUE(lc.augment_on_host);
}

TEST(TrainConfig, ConfigEntriesAreKeyedBySection) {
  TrainOptions o;
  o.lr = 0.125;
  const auto entries = config_entries(config_text(o));
  ASSERT_EQ(entries.count("optim.lr"), 1u) << config_text(o);
  EXPECT_EQ(entries.at("optim.lr"), "0.125");
  EXPECT_EQ(entries.count("lr"), 0u);
  ASSERT_EQ(entries.count("init.from"), 1u);  // an empty value is a value
  EXPECT_EQ(entries.at("init.from"), "");
  o.train_files = {"a.h5", "b.h5"};
  const std::string train = config_entries(config_text(o)).at("data.train");
  EXPECT_NE(train.find("a.h5"), std::string::npos) << train;
  EXPECT_NE(train.find("b.h5"), std::string::npos) << train;
  EXPECT_NE(changed_settings(config_text(TrainOptions{}), config_text(o)).find("data.train"),
            std::string::npos);
}

TEST(TrainConfig, ChangedSettingsNamesWhatResumingChangesButTheRunsLength) {
  TrainOptions saved;
  const std::string before = config_text(saved);
  EXPECT_EQ(changed_settings(before, before), "");
  TrainOptions free = saved;  // what resuming is for
  free.epochs = 90;
  free.max_steps = 7;
  free.log_every = 3;
  free.batch_size = 64;
  free.checkpoint_keep = 9;
  free.run_dir = "elsewhere";
  EXPECT_EQ(changed_settings(before, config_text(free)), "");
  TrainOptions changed = saved;
  changed.lr = 0.5;
  changed.optimizer = "adam";
  const std::string changes = changed_settings(before, config_text(changed));
  EXPECT_NE(changes.find("optim.lr 0.01 -> 0.5"), std::string::npos) << changes;
  EXPECT_NE(changes.find("sgd -> adam"), std::string::npos) << changes;
}

}  // namespace
}  // namespace alexnet::trainer
