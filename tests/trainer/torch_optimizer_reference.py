#!/usr/bin/env python3
# PyTorch's optimizer trajectories and lr schedules, for test_optimizer (trainer/optimizer.h).
"""Write torch 1.13's answers for the optimizers and lr schedules to one text file.

Usage: torch_optimizer_reference.py OUTPUT

One line per array: a key, then its values separated by spaces (float32 data as %.9g, which
reads back to the same float; learning rates and norms as %.17g, the same double). Keys:
  init                    the parameter vector, 1031 floats: tensors w1[500], b[31], w2[500],
                          flattened in that order; b is in a param group without weight decay
  grad.K                  the gradient of step K (K = 0..9); test_optimizer replays these.
                          The first 16 elements of b are a millionth of the others' size
  CASE.lr                 the lr of each of the 10 steps
  CASE.param.K            the parameters after step K
  CASE.state.NAME         the optimizer state after the last step (momentum_buffer, exp_avg,
                          exp_avg_sq), flattened in the same order
  CASE.norm               clip_grad_norm_'s return value at each step (sgd_clip only)
  lr.SCHEDULE             lr of optimizer step t = 0, 1, ... (before step t's update)
  metrics.SCHEDULE        the metrics reported to ReduceLROnPlateau, one per epoch
  layerwise.*, lars.*, lamb.*  LARS and LAMB in NumPy (numpy_lars_lamb_reference.py)
The hyper-parameters below are repeated in test_optimizer.cc; keep the two in step.
"""

import math
import sys
import warnings

import torch

import numpy_lars_lamb_reference

SIZES = (500, 31, 500)  # w1, b, w2: odd sizes, and a no-decay range between two decay ranges
STEPS = 10
# Gradient scales per step: clip_grad_norm_(max_norm=2) clips some steps and not others.
GRAD_SCALES = (0.1, 0.05, 0.2, 0.01, 0.3, 0.08, 0.15, 0.02, 0.25, 0.1)
MAX_NORM = 2.0
TINY = 16
STEPS_PER_EPOCH = 3


def line(out, key, values, fmt):
    out.write(key + " " + " ".join(fmt % v for v in values) + "\n")


def floats(out, key, tensor):
    line(out, key, tensor.detach().reshape(-1).tolist(), "%.9g")


def doubles(out, key, values):
    line(out, key, values, "%.17g")


def optimizer_cases():
    # name: (optimizer class, kwargs, lr per step, clip)
    lr_change = [0.01] * 5 + [0.001] * 5
    return {
        "sgd": (torch.optim.SGD, dict(momentum=0.9, weight_decay=5e-4), [0.01] * STEPS, False),
        "nesterov": (torch.optim.SGD, dict(momentum=0.9, weight_decay=5e-4, nesterov=True),
                     [0.01] * STEPS, False),
        "sgd_lr_change": (torch.optim.SGD, dict(momentum=0.9, weight_decay=5e-4), lr_change, False),
        "adam": (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4),
                 [1e-3] * STEPS, False),
        "adamw": (torch.optim.AdamW, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
                  [1e-3] * STEPS, False),
        "sgd_clip": (torch.optim.SGD, dict(momentum=0.9, weight_decay=5e-4), [0.01] * STEPS, True),
    }


def write_optimizers(out, init, grads):
    for case, (cls, kwargs, lrs, clip) in optimizer_cases().items():
        flat = init.clone()
        tensors = [t.clone().requires_grad_(True) for t in torch.split(flat, SIZES)]
        w1, b, w2 = tensors
        groups = [{"params": [w1, w2]}, {"params": [b], "weight_decay": 0.0}]
        opt = cls(groups, lr=lrs[0], **kwargs)
        norms = []
        for k in range(STEPS):
            for t, g in zip(tensors, torch.split(grads[k], SIZES)):
                t.grad = g.clone()
            if clip:
                norms.append(float(torch.nn.utils.clip_grad_norm_(tensors, MAX_NORM)))
            for group in opt.param_groups:
                group["lr"] = lrs[k]
            opt.step()
            floats(out, "%s.param.%d" % (case, k), torch.cat([t.detach() for t in tensors]))
        doubles(out, case + ".lr", lrs)
        if clip:
            doubles(out, case + ".norm", norms)
        for name in ("momentum_buffer", "exp_avg", "exp_avg_sq"):
            if name in opt.state[w1]:
                floats(out, "%s.state.%s" % (case, name),
                       torch.cat([opt.state[t][name].reshape(-1) for t in tensors]))


def schedule_lrs(make, steps, per_epoch=False):
    """lr of each optimizer step, with the scheduler stepped per iteration or per epoch."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = make(opt)
    lrs = []
    for t in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if not per_epoch or (t + 1) % STEPS_PER_EPOCH == 0:
            sched.step()
    return lrs


def write_schedules(out):
    S = torch.optim.lr_scheduler
    epochs = 8
    steps = epochs * STEPS_PER_EPOCH
    doubles(out, "lr.step", schedule_lrs(lambda o: S.StepLR(o, step_size=2, gamma=0.1), steps,
                                         per_epoch=True))
    doubles(out, "lr.multistep",
            schedule_lrs(lambda o: S.MultiStepLR(o, milestones=[2, 5, 6], gamma=0.1), steps,
                         per_epoch=True))
    # T_max = 20 steps, compared up to and including step 20.
    doubles(out, "lr.cosine",
            schedule_lrs(lambda o: S.CosineAnnealingLR(o, T_max=20, eta_min=1e-4), 21))
    # Warmup of 5 steps from 0.25, then cosine over 15 steps (total_steps 20).
    doubles(out, "lr.warmup_cosine", schedule_lrs(
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=5),
                                     S.CosineAnnealingLR(o, T_max=15, eta_min=1e-4)],
                                 milestones=[5]), 21))
    # Warmup of 4 steps, then StepLR every 2 epochs, stepped per iteration (step_size in steps).
    doubles(out, "lr.warmup_step", schedule_lrs(
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.5, total_iters=4),
                                     S.StepLR(o, step_size=2 * STEPS_PER_EPOCH, gamma=0.1)],
                                 milestones=[4]), steps))

    # PolynomialLR (torch 1.13's new scheduler), power 2 as in You et al., compared up to and
    # including total_iters; then after a warmup of 4 steps, over the 16 steps left of 20.
    doubles(out, "lr.poly",
            schedule_lrs(lambda o: S.PolynomialLR(o, total_iters=20, power=2.0), 21))
    doubles(out, "lr.warmup_poly", schedule_lrs(
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.25, total_iters=4),
                                     S.PolynomialLR(o, total_iters=16, power=2.0)],
                                 milestones=[4]), 21))

    # ReduceLROnPlateau: one report per epoch; lr after each report.
    # 0.89995 improves on 0.9 by less than the 1e-4 relative threshold: not better.
    metrics = [1.0, 0.9, 0.9, 0.89995, 0.9, 0.8, 0.8, 0.81, 0.8, 0.7, math.nan, 0.7, 0.7, 0.7,
               0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    for key, kwargs in (("plateau", dict(factor=0.1, patience=2, threshold=1e-4)),
                        ("plateau_cooldown", dict(factor=0.1, patience=1, threshold=1e-4,
                                                  cooldown=2, min_lr=2e-4))):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sched = S.ReduceLROnPlateau(opt, mode="min", **kwargs)
        lrs = []
        for m in metrics:
            sched.step(m)
            lrs.append(opt.param_groups[0]["lr"])
        doubles(out, "metrics." + key, metrics)
        doubles(out, "lr." + key, lrs)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: torch_optimizer_reference.py OUTPUT")
    warnings.simplefilter("ignore")  # SequentialLR's step(0) warns about the epoch argument
    torch.manual_seed(20121203)  # the AlexNet paper's NIPS date
    init = torch.randn(sum(SIZES), dtype=torch.float32)
    grads = [torch.randn(sum(SIZES), dtype=torch.float32) * s for s in GRAD_SCALES]
    for g in grads:
        # The first TINY elements of b get gradients near Adam's eps (1e-8), where eps's place
        # outside the sqrt matters; elsewhere sqrt(v) dwarfs it.
        g[SIZES[0]:SIZES[0] + TINY] *= 1e-6
    with open(sys.argv[1], "w") as out:
        floats(out, "init", init)
        for k, g in enumerate(grads):
            floats(out, "grad.%d" % k, g)
        write_optimizers(out, init, grads)
        write_schedules(out)
        numpy_lars_lamb_reference.write(lambda key, values: line(out, key, values, "%.9g"),
                                        lambda key, values: doubles(out, key, values))


if __name__ == "__main__":
    main()
