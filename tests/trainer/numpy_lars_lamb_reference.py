# LARS and LAMB as their papers write them, in NumPy float64, for test_optimizer (there is no LARS
# in PyTorch core). torch_optimizer_reference.py writes these arrays into its output file.
"""LARS (You, Gitman, Ginsburg 2017, arXiv:1708.03888, Algorithm 1) and LAMB (You et al. 2019,
arXiv:1904.00962, Algorithm 2), layer by layer, in float64 from float32 inputs.

Layers, in the flat buffer's order (LAYERS): weight tensors adapt (trust ratio and weight decay);
biases and batch-norm parameters do not (ratio 1, no decay), as in both papers. w3 starts at zero
(its ||w|| = 0: ratio 1) and w2's gradient is zero at step ZERO_GRAD_STEP (LARS: ||g|| = 0, ratio 1).

Keys written (see torch_optimizer_reference.py for the line format):
  layerwise.init, layerwise.grad.K       parameters and the gradient of step K (K < STEPS)
  CASE.lr                                the lr of each step
  CASE.param.K, CASE.state.NAME          parameters after step K; state after the last step
for CASE in lars, lamb, lamb_no_decay (weight decay 0). The hyper-parameters are repeated in
test_optimizer.cc; keep the two in step.
"""

import numpy as np

# (name, size, adapts): a conv weight and its bias, batch norm's weight and bias, two fc weights.
LAYERS = (("w1", 300, True), ("b1", 17, False), ("bn_weight", 12, False), ("bn_bias", 12, False),
          ("w2", 400, True), ("w3", 64, True), ("b2", 10, False))
STEPS = 5
ZERO_GRAD_STEP = 2
# Gradient scale per layer: layers whose gradients differ by 100x, where the ratio matters.
GRAD_SCALES = {"w1": 1.0, "b1": 0.5, "bn_weight": 0.2, "bn_bias": 0.2, "w2": 0.01, "w3": 0.1,
               "b2": 0.05}

LARS = dict(lrs=[0.5, 0.5, 1.0, 1.0, 0.25], momentum=0.9, weight_decay=5e-3, eta=0.02)
LAMB = dict(lrs=[0.01, 0.01, 0.02, 0.02, 0.005], beta1=0.9, beta2=0.999, eps=1e-6,
            weight_decay=1e-2)


def layer_slices():
    offset = 0
    for name, size, adapts in LAYERS:
        yield name, slice(offset, offset + size), adapts
        offset += size


def inputs(seed=20170913):  # LARS's arXiv date
    rng = np.random.default_rng(seed)
    total = sum(size for _, size, _ in LAYERS)
    init = rng.standard_normal(total).astype(np.float32)
    grads = []
    for k in range(STEPS):
        g = rng.standard_normal(total).astype(np.float32)
        for name, s, _ in layer_slices():
            g[s] *= np.float32(GRAD_SCALES[name])
            if name == "w2" and k == ZERO_GRAD_STEP:
                g[s] = 0
        grads.append(g)
    for name, s, _ in layer_slices():
        if name == "w3":
            init[s] = 0
    return init, grads


def ratio_or_one(numerator, denominator, w_norm, other_norm):
    return numerator / denominator if w_norm > 0 and other_norm > 0 else 1.0


def lars(init, grads, lrs, momentum, weight_decay, eta):
    """local_lr = eta ||w|| / (||g|| + wd ||w||); v = m v + lr local_lr (g + wd w); w -= v."""
    w = init.astype(np.float64)
    v = np.zeros_like(w)
    trajectory = []
    for g32, lr in zip(grads, lrs):
        g = g32.astype(np.float64)
        for _, s, adapts in layer_slices():
            wd = weight_decay if adapts else 0.0
            local_lr = 1.0
            if adapts:
                w_norm, g_norm = np.linalg.norm(w[s]), np.linalg.norm(g[s])
                local_lr = ratio_or_one(eta * w_norm, g_norm + wd * w_norm, w_norm, g_norm)
            v[s] = momentum * v[s] + lr * local_lr * (g[s] + wd * w[s])
            w[s] = w[s] - v[s]
        trajectory.append(w.copy())
    return trajectory, {"lars_velocity": v}


def lamb(init, grads, lrs, beta1, beta2, eps, weight_decay):
    """Adam's moments with bias correction; r = m_hat / (sqrt(v_hat) + eps) + wd w;
    w -= lr (||w|| / ||r||) r (phi the identity)."""
    w = init.astype(np.float64)
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    trajectory = []
    for t, (g32, lr) in enumerate(zip(grads, lrs), start=1):
        g = g32.astype(np.float64)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        for _, s, adapts in layer_slices():
            wd = weight_decay if adapts else 0.0
            r = m_hat[s] / (np.sqrt(v_hat[s]) + eps) + wd * w[s]
            ratio = 1.0
            if adapts:
                w_norm, r_norm = np.linalg.norm(w[s]), np.linalg.norm(r)
                ratio = ratio_or_one(w_norm, r_norm, w_norm, r_norm)
            w[s] = w[s] - lr * ratio * r
        trajectory.append(w.copy())
    return trajectory, {"lamb_m": m, "lamb_v": v}


def write(floats, doubles):
    """floats(key, values) and doubles(key, values) write one line each."""
    init, grads = inputs()
    floats("layerwise.init", init)
    for k, g in enumerate(grads):
        floats("layerwise.grad.%d" % k, g)
    lamb_no_decay = dict(LAMB, weight_decay=0.0)
    cases = (("lars", lars, LARS), ("lamb", lamb, LAMB), ("lamb_no_decay", lamb, lamb_no_decay))
    for case, run, params in cases:
        trajectory, state = run(init, grads, **params)
        doubles(case + ".lr", params["lrs"])
        for k, w in enumerate(trajectory):
            doubles("%s.param.%d" % (case, k), w)
        for name, values in state.items():
            doubles("%s.state.%s" % (case, name), values)
