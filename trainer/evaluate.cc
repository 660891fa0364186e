// Whole-dataset evaluation.
#include "trainer/evaluate.h"

#include <algorithm>
#include <cmath>

namespace alexnet::trainer {

io::LoaderConfig eval_loader_config(const Model& model, const io::Dataset& dataset,
                                    const Backend& backend, int workers) {
  const io::DatasetMeta& m = dataset.meta();
  io::LoaderConfig c;
  c.batch_size = model.batch();
  c.sampler.shuffle = false;
  c.drop_last = false;
  c.workers = workers;
  c.augment.crop_height = model.spec().height;
  c.augment.crop_width = model.spec().width;
  c.augment.random_crop = false;
  c.augment.flip = false;
  c.augment.mean.assign(m.mean.begin(), m.mean.end());
  c.augment.std.assign(m.std.begin(), m.std.end());
  c.augment.layout = backend.activation_layout() == ActivationLayout::kNHWC ? io::Layout::kNHWC
                                                                            : io::Layout::kNCHW;
  return c;
}

EvalResult evaluate(Model& model, Backend& backend, io::Loader& loader, std::vector<float>* logits,
                    const std::function<void()>& on_batch) {
  const int64_t batch = model.batch(), classes = model.spec().num_classes;
  const auto per_batch = static_cast<size_t>(model.input_elements());
  auto input = backend.allocate(per_batch * sizeof(float));
  std::vector<float> host_logits(static_cast<size_t>(batch * classes));
  EvalResult r;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  if (logits != nullptr) logits->clear();
  while (const io::Batch* b = loader.next()) {
    const size_t elements = static_cast<size_t>(b->size) * per_batch / static_cast<size_t>(batch);
    backend.copy_to_device(input.get(), b->images, elements * sizeof(float));
    if (b->size < batch) {  // a short last batch: the rest of the input is zeros, not counted
      backend.fill_zero(static_cast<float*>(input.get()) + elements,
                        (per_batch - elements) * sizeof(float));
    }
    const float* out = model.forward(static_cast<const float*>(input.get()), false);
    backend.copy_to_host(host_logits.data(), out, host_logits.size() * sizeof(float));
    for (int64_t n = 0; n < b->size; ++n) {
      const float* row = host_logits.data() + n * classes;
      const int32_t label = b->labels[n];
      double max = *std::max_element(row, row + classes), sum = 0;
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(row[c]) - max);
      loss_sum += std::log(sum) + max - row[label];
      int64_t above = 0;  // ties favour the label, as the loss ops count them
      for (int64_t c = 0; c < classes; ++c) above += row[c] > row[label];
      top1 += above < 1;
      top5 += above < 5;
    }
    if (logits != nullptr) {
      logits->insert(logits->end(), host_logits.begin(), host_logits.begin() + b->size * classes);
    }
    r.samples += b->size;
    if (on_batch) on_batch();
  }
  if (r.samples > 0) {
    r.loss = loss_sum / static_cast<double>(r.samples);
    r.top1 = static_cast<double>(top1) / static_cast<double>(r.samples);
    r.top5 = static_cast<double>(top5) / static_cast<double>(r.samples);
  }
  return r;
}

}  // namespace alexnet::trainer
