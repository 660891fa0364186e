// First-order optimizers over one flat float32 parameter buffer (SGD with PyTorch's or the AlexNet
// paper's momentum rule, Adam, AdamW, and the layer-wise LARS and LAMB of large-batch training)
// and global gradient-norm clipping.
//
// Every parameter is a span of one contiguous buffer, and so is its gradient; the optimizer keeps
// its state in buffers of the same layout, allocated once at construction, and updates the whole
// buffer, or any range of it, in place. The arithmetic follows torch.optim in torch 1.13 operation
// by operation in float32 (scalars rounded to float as torch's CPU kernels do), so trajectories
// agree with PyTorch's to rounding (tests/trainer/test_optimizer.cc). LARS and LAMB, which torch
// lacks, follow their papers' formulas (checked against NumPy in double, the same test).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "trainer/backend.h"
#include "trainer/grad_norm.h"
#include "trainer/optimizer_math.h"

namespace alexnet::trainer {

enum class OptimizerKind { kSgd, kAdam, kAdamW, kLars, kLamb };

// How SGD's momentum buffer holds the learning rate.
//   kPyTorch (torch.optim.SGD, dampening 0): v = mu*v + g;  p -= lr*v
//            (nesterov: p -= lr*(g + mu*v)). The buffer is in gradient units, so a new lr
//            applies at once to all of the accumulated momentum.
//   kPaper   (Krizhevsky et al. 2012, eq. in section 5): v = mu*v - lr*g;  p += v
//            (nesterov, Sutskever et al. 2013: p += mu*v - lr*g). The buffer is in parameter
//            units, so a new lr applies only to new gradients. With a constant lr the two rules
//            give the same parameters, with v_paper = -lr * v_pytorch.
// g includes coupled weight decay (g + wd*p) in both.
enum class MomentumRule { kPyTorch, kPaper };

// Throw std::invalid_argument with a one-line message naming the accepted values.
// "sgd" | "adam" | "adamw" | "lars" | "lamb"
OptimizerKind parse_optimizer_kind(const std::string& name);
MomentumRule parse_momentum_rule(const std::string& name);  // "pytorch" | "paper"

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adam | adamw | lars | lamb
  // SGD and LARS.
  double momentum = 0.9;  // SGD: 0 is plain SGD, no state
  bool nesterov = false;
  std::string momentum_rule = "pytorch";  // pytorch | paper
  // All kinds. Coupled: g += wd*p before the update (torch SGD and Adam; LARS). Decoupled:
  // p *= 1 - lr*wd before the update (torch AdamW); "adamw" is always decoupled. LAMB adds wd*p to
  // its direction r (its paper's form); neither lars nor lamb takes decoupled_weight_decay.
  double weight_decay = 0;
  bool decoupled_weight_decay = false;
  // Adam, AdamW and LAMB.
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // LARS: eta, the trust coefficient of You et al. 2017 (arXiv:1708.03888).
  //   local_lr = eta * ||w|| / (||g|| + wd * ||w||);  v = mu*v + lr * local_lr * (g + wd*w);  w -=
  //   v
  // LAMB (You et al. 2019, arXiv:1904.00962), with Adam's moments m, v and bias corrections:
  //   r = m_hat / (sqrt(v_hat) + eps) + wd*w;  w -= lr * (||w|| / ||r||) * r
  // Norms are per layer: each decay range with decay = true (a weight tensor). Where ||w|| or
  // ||g|| (LAMB: ||r||) is 0, the ratio is 1 (local_lr = 1), as TensorFlow's LARS and common LAMB
  // implementations do. Ranges without decay (biases, batch norm) get ratio 1 and no decay, as in
  // both papers.
  double trust_coefficient = 0.001;
  // Global gradient-norm clipping, for the caller to apply with clip_grad_norm() before each
  // step (the norm is needed over all gradients, which may not all be in one update() call).
  double clip_grad_norm = 0;  // max L2 norm; 0: off
};

// Throws std::invalid_argument (one line) for unknown names or values out of range.
void validate(const OptimizerConfig& config);

// A range of the flat buffer and whether weight decay applies to it (off for biases and
// batch-norm parameters, say). For LARS and LAMB, a range with decay is also one layer of the
// trust ratio (ModelSpec gives a range per parameter tensor) and one without has ratio 1.
struct DecayRange {
  size_t offset = 0;
  size_t count = 0;
  bool decay = true;
};

// One named state buffer, a view into the optimizer: what a checkpoint stores.
struct StateArray {
  std::string name;
  std::span<float> values;
};

class Optimizer {
 public:
  // `size`: elements in the flat parameter buffer. `decay_ranges` must tile [0, size) exactly, in
  // any order (a parameter left out is a layout bug, not a default); empty: decay everywhere.
  // `device`: the backend whose memory params and grads live in; when that is not host memory
  // (CUDA), the state lives there too and the updates run there, with the same arithmetic
  // (trainer/optimizer_math.h), and state() and load_state() copy through host mirrors.
  Optimizer(const OptimizerConfig& config, size_t size, std::vector<DecayRange> decay_ranges = {},
            Backend* device = nullptr);

  // One full step: begin_step(lr), then update() over the whole buffer.
  void step(std::span<float> params, std::span<const float> grads, double lr);

  // A step in pieces, e.g. one bucket at a time as its all-reduce completes: begin_step() advances
  // the step counter and fixes lr and Adam's bias corrections; then update() each range exactly
  // once. params and grads are the whole flat buffers. Disjoint ranges may be updated from
  // different threads (on the host). No allocation; throws std::invalid_argument on size
  // mismatches. LARS and LAMB need each layer (decay range with decay) whole in one update(), for
  // its norms: a range that cuts one throws std::invalid_argument. comm::GradientBuckets never
  // splits a layer's span, so a bucket always holds whole layers. On a device, their norms are
  // each a sum on the device and a wait for it (Backend::sum_of_squares): per layer, a sync.
  void begin_step(double lr);
  void update(std::span<float> params, std::span<const float> grads, size_t offset, size_t count);

  // Steps begun so far (torch's state['step'] for Adam).
  int64_t steps() const { return steps_; }

  // The state for a checkpoint: "momentum" (PyTorch rule: torch's momentum_buffer), "velocity"
  // (paper rule, in parameter units), "adam_m" and "adam_v" (torch's exp_avg, exp_avg_sq),
  // "lars_velocity" (parameter units), or "lamb_m" and "lamb_v"; none for plain SGD. Each has
  // size() elements, in the parameters' layout. The step counter is an integer (a float would stop
  // counting exactly at 2^24) and is saved with steps().
  std::vector<StateArray> state();
  // Restores one array, as named by state(); throws std::invalid_argument for a name this
  // configuration does not have or a size that differs. With every array loaded and
  // set_steps(), the run continues bit-identically. `values` may be the array state() returned
  // (written into by the caller): on a device, that is how the new values reach it.
  void load_state(std::string_view name, std::span<const float> values);
  void set_steps(int64_t steps);

  const OptimizerConfig& config() const { return config_; }
  OptimizerKind kind() const { return kind_; }
  size_t size() const { return size_; }

 private:
  struct Segment {
    size_t begin, end;
    bool decay;
  };
  void update_segment(float* params, const float* grads, size_t begin, size_t end, bool decay);
  // LARS and LAMB over one layer (adaptive: its trust ratio from its norms) or a piece of a range
  // without decay (ratio 1).
  void update_layer(float* params, const float* grads, size_t begin, size_t end, bool adaptive);
  UpdateCoefficients coefficients() const;
  // state()'s arrays over the host copies as they are (not refreshed from a device).
  std::vector<StateArray> host_arrays();

  OptimizerConfig config_;
  OptimizerKind kind_;
  MomentumRule rule_;
  bool decoupled_;
  size_t size_;
  std::vector<Segment> segments_;  // sorted, tiling [0, size_); adjacent ones differ in decay
  std::vector<Segment> layers_;    // LARS, LAMB: the same tiling, each decay range on its own
  UpdateRule update_rule_ = UpdateRule::kSgdPlain;
  std::vector<float> first_;   // momentum, velocity or adam_m (host mirror on a device)
  std::vector<float> second_;  // adam_v
  // On a device backend: the state there, and its update kernel.
  Backend* device_ = nullptr;
  std::unique_ptr<OptimizerUpdateOp> device_update_;
  std::vector<Backend::Memory> device_state_;
  float* first_device_ = nullptr;
  float* second_device_ = nullptr;
  float* lamb_direction_device_ = nullptr;  // LAMB on a device: r of the layer being updated
  int64_t steps_ = 0;
  // Fixed by begin_step().
  double lr_ = 0;
  double step_size_ = 0;                                // Adam: lr / (1 - beta1^t)
  double bias_correction2_sqrt_ = 0;                    // Adam: sqrt(1 - beta2^t)
  double bias_correction1_ = 1, bias_correction2_ = 1;  // LAMB: 1 - beta1^t, 1 - beta2^t
};

}  // namespace alexnet::trainer
