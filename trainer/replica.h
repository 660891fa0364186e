// One copy of the model on one device: its backend, the model over it and the optimizer over the
// model's parameters. A rank has one replica per device it drives (several GPUs per rank: one
// per GPU); every replica of the job holds the same parameters after every step.
#pragma once

#include "trainer/backend.h"
#include "trainer/model.h"
#include "trainer/optimizer.h"

namespace alexnet::trainer {

struct Replica {
  Backend* backend = nullptr;
  Model* model = nullptr;
  Optimizer* optimizer = nullptr;
};

}  // namespace alexnet::trainer
