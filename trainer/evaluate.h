// Evaluation of a model over a whole dataset: mean loss, top-1 and top-5, optionally the logits.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "io/dataset.h"
#include "io/loader.h"
#include "trainer/model.h"

namespace alexnet::trainer {

struct EvalResult {
  int64_t samples = 0;
  double loss = 0, top1 = 0, top5 = 0;  // mean loss; accuracies in [0, 1]
};

// The loader configuration that evaluates `model` on a dataset: every sample once, in file
// order, center crops, the dataset's normalization, the backend's layout.
io::LoaderConfig eval_loader_config(const Model& model, const io::Dataset& dataset,
                                    const Backend& backend, int workers);

// Runs every batch of `loader` through the model in inference mode. Metrics come from the logits
// on the host (the last batch may be short: only its real samples count). With `logits`, also
// returns them [samples, classes] in the loader's order.
// `on_batch` runs after each batch (the job's watchdog heartbeat).
EvalResult evaluate(Model& model, Backend& backend, io::Loader& loader,
                    std::vector<float>* logits = nullptr,
                    const std::function<void()>& on_batch = {});

}  // namespace alexnet::trainer
