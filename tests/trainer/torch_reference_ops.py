#!/usr/bin/env python3
# PyTorch's results for the reference ops (trainer/cpu/reference_ops.h): test_reference_vs_torch.
"""Run PyTorch's ops forward and backward in float64 and write inputs, outputs and gradients.

For every case, in the output folder:
  CASE.txt       one line per item:
                   op OPNAME
                   param KEY VALUE...          hyper-parameters (numbers)
                   tensor NAME DTYPE DIM...    a tensor (no DIM: a scalar)
  CASE.NAME.bin  each tensor, raw little-endian, C order: float64, or int64 for labels and
                 max-pool argmax.
Backward passes use autograd with a random upstream gradient dy (also written), except for
cross-entropy, whose gradient is that of the loss itself (upstream 1), as the reference returns.
Each case seeds torch from its name, so adding a case leaves the others' data unchanged.
"""

import argparse
import os
import zlib

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


class Case:
    """Collects the tensors and parameters of one case and writes them to the output folder."""

    def __init__(self, out, name, op):
        self.out, self.name = out, name
        self.lines = [f"op {op}"]
        torch.manual_seed(zlib.crc32(name.encode()))

    def param(self, key, *values):
        self.lines.append(" ".join(["param", key] + [repr(v) for v in values]))

    def tensor(self, key, t):
        t = t.detach().contiguous()
        dtype = "int64" if not t.is_floating_point() else "float64"
        array = t.numpy().astype("<i8" if dtype == "int64" else "<f8")
        array.tofile(os.path.join(self.out, f"{self.name}.{key}.bin"))
        self.lines.append(" ".join(["tensor", key, dtype] + [str(d) for d in t.shape]))

    def write(self):
        with open(os.path.join(self.out, f"{self.name}.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


def leaf(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_()


def conv2d(out, name, n, cin, cout, h, w, kernel, stride, pad, groups, bias):
    c = Case(out, name, "conv2d")
    x = leaf(n, cin, h, w)
    wt = leaf(cout, cin // groups, *kernel, scale=0.3)
    b = leaf(cout) if bias else None
    y = F.conv2d(x, wt, b, stride=stride, padding=pad, groups=groups)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("batch", n)
    c.param("in_channels", cin)
    c.param("out_channels", cout)
    c.param("input", h, w)
    c.param("kernel", *kernel)
    c.param("stride", *stride)
    c.param("pad", *pad)
    c.param("groups", groups)
    c.param("bias", int(bias))
    for key, t in [("x", x), ("w", wt), ("y", y), ("dy", dy), ("dx", x.grad), ("dw", wt.grad)]:
        c.tensor(key, t)
    if bias:
        c.tensor("b", b)
        c.tensor("db", b.grad)
    c.write()


def max_pool(out, name, n, ch, h, w, kernel, stride, pad, integers=False):
    c = Case(out, name, "max_pool")
    if integers:
        # Small negative integers: many ties inside each window (the first must win, in both
        # libraries), and border windows whose real values are all below the zero padding.
        x = torch.randint(-3, 0, (n, ch, h, w)).double().requires_grad_()
    else:
        x = leaf(n, ch, h, w)
    y, argmax = F.max_pool2d(x, kernel, stride, pad, return_indices=True)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("shape", n, ch, h, w)
    c.param("kernel", kernel)
    c.param("stride", stride)
    c.param("pad", pad)
    for key, t in [("x", x), ("y", y), ("argmax", argmax), ("dy", dy), ("dx", x.grad)]:
        c.tensor(key, t)
    c.write()


def adaptive_avg_pool(out, name, n, ch, h, w, oh, ow):
    c = Case(out, name, "adaptive_avg_pool")
    x = leaf(n, ch, h, w)
    y = F.adaptive_avg_pool2d(x, (oh, ow))
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("shape", n, ch, h, w)
    c.param("output", oh, ow)
    for key, t in [("x", x), ("y", y), ("dy", dy), ("dx", x.grad)]:
        c.tensor(key, t)
    c.write()


def lrn(out, name, n, ch, h, w, size, alpha, beta, k, scale):
    """alpha is ours (the paper's); torch's alpha is size times it (torch averages the squares)."""
    c = Case(out, name, "lrn")
    x = leaf(n, ch, h, w, scale=scale)
    y = F.local_response_norm(x, size, alpha=alpha * size, beta=beta, k=k)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("shape", n, ch, h, w)
    c.param("size", size)
    c.param("alpha", alpha)  # the paper's alpha, as reference::LrnShape takes it
    c.param("beta", beta)
    c.param("k", k)
    for key, t in [("x", x), ("y", y), ("dy", dy), ("dx", x.grad)]:
        c.tensor(key, t)
    c.write()


def batch_norm_training(out, name, shape, eps, momentum):
    c = Case(out, name, "batch_norm_training")
    channels = shape[1]
    x = leaf(*shape, scale=2.0)
    with torch.no_grad():
        x += torch.randn(channels).view(1, channels, *[1] * (len(shape) - 2))  # per-channel mean
    gamma, beta = leaf(channels), leaf(channels)
    running_mean0 = torch.randn(channels)
    running_var0 = torch.rand(channels) + 0.5
    running_mean, running_var = running_mean0.clone(), running_var0.clone()
    y = F.batch_norm(x, running_mean, running_var, gamma, beta, training=True, momentum=momentum,
                     eps=eps)
    dy = torch.randn_like(y)
    y.backward(dy)
    # The saved statistics, as PyTorch's own kernel computes them (on throwaway running stats).
    with torch.no_grad():
        _, save_mean, save_invstd = torch.native_batch_norm(
            x, gamma, beta, running_mean0.clone(), running_var0.clone(), True, momentum, eps)
    c.param("shape", *shape)  # [N, C, H, W] or [N, C]
    c.param("eps", eps)
    c.param("momentum", momentum)
    for key, t in [("x", x), ("gamma", gamma), ("beta", beta), ("running_mean0", running_mean0),
                   ("running_var0", running_var0), ("y", y), ("save_mean", save_mean),
                   ("save_invstd", save_invstd), ("running_mean", running_mean),
                   ("running_var", running_var), ("dy", dy), ("dx", x.grad),
                   ("dgamma", gamma.grad), ("dbeta", beta.grad)]:
        c.tensor(key, t)
    c.write()


def batch_norm_inference(out, name, shape, eps):
    c = Case(out, name, "batch_norm_inference")
    channels = shape[1]
    x = torch.randn(*shape) * 2.0
    gamma, beta = torch.randn(channels), torch.randn(channels)
    running_mean, running_var = torch.randn(channels), torch.rand(channels) + 0.5
    y = F.batch_norm(x, running_mean, running_var, gamma, beta, training=False, eps=eps)
    c.param("shape", *shape)  # [N, C, H, W] or [N, C]
    c.param("eps", eps)
    for key, t in [("x", x), ("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                   ("running_var", running_var), ("y", y)]:
        c.tensor(key, t)
    c.write()


def linear(out, name, n, fin, fout):
    c = Case(out, name, "linear")
    x, w, b = leaf(n, fin), leaf(fout, fin, scale=0.3), leaf(fout)
    y = F.linear(x, w, b)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("shape", n, fin, fout)
    for key, t in [("x", x), ("w", w), ("b", b), ("y", y), ("dy", dy), ("dx", x.grad),
                   ("dw", w.grad), ("db", b.grad)]:
        c.tensor(key, t)
    c.write()


def relu(out, name, shape):
    c = Case(out, name, "relu")
    x = leaf(*shape)
    y = F.relu(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    c.param("shape", *shape)
    for key, t in [("x", x), ("y", y), ("dy", dy), ("dx", x.grad)]:
        c.tensor(key, t)
    c.write()


def cross_entropy(out, name, n, classes, smoothing, scale):
    c = Case(out, name, "cross_entropy")
    logits = leaf(n, classes, scale=scale)
    labels = torch.randint(0, classes, (n,))
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    loss.backward()
    c.param("shape", n, classes)
    c.param("label_smoothing", smoothing)
    for key, t in [("logits", logits), ("labels", labels), ("loss", loss),
                   ("dlogits", logits.grad)]:
        c.tensor(key, t)
    c.write()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="output folder (created if missing)")
    out = parser.parse_args().out
    os.makedirs(out, exist_ok=True)

    # Convolutions: AlexNet's conv1 geometry; grouped 5x5 (conv2); grouped 3x3 without bias;
    # a non-square kernel with unequal strides and padding (the last input row is never read).
    conv2d(out, "conv_a", 2, 3, 8, 35, 35, (11, 11), (4, 4), (0, 0), 1, True)
    conv2d(out, "conv_b", 3, 6, 8, 13, 11, (5, 5), (1, 1), (2, 2), 2, True)
    conv2d(out, "conv_c", 2, 4, 6, 9, 7, (3, 3), (1, 1), (1, 1), 2, False)
    conv2d(out, "conv_d", 2, 5, 7, 10, 9, (1, 3), (2, 1), (0, 1), 1, True)

    max_pool(out, "max_pool_a", 2, 3, 13, 13, 3, 2, 0)
    max_pool(out, "max_pool_b", 3, 2, 12, 9, 3, 2, 1)
    max_pool(out, "max_pool_ties", 2, 3, 9, 11, 3, 2, 1, integers=True)

    adaptive_avg_pool(out, "adaptive_avg_pool_a", 2, 3, 13, 13, 6, 6)
    adaptive_avg_pool(out, "adaptive_avg_pool_b", 3, 2, 7, 5, 3, 2)

    # The paper's LRN on activations large enough that the denominator matters (alpha * sum of
    # squares ~ 0.2 against k = 2); and a strong one of size 3 where that sum rivals k.
    lrn(out, "lrn_a", 2, 7, 5, 3, 5, 1e-4, 0.75, 2.0, 20.0)
    lrn(out, "lrn_b", 3, 6, 3, 5, 3, 0.1, 0.6, 1.5, 2.0)

    batch_norm_training(out, "batch_norm_nchw", (3, 5, 7, 6), 1e-5, 0.1)
    batch_norm_training(out, "batch_norm_nc", (7, 5), 1e-3, 0.3)
    batch_norm_inference(out, "batch_norm_inference", (3, 5, 7, 6), 1e-5)

    linear(out, "linear", 3, 11, 7)
    relu(out, "relu", (2, 3, 5, 7))

    cross_entropy(out, "cross_entropy", 5, 7, 0.0, 3.0)
    cross_entropy(out, "cross_entropy_smoothing", 6, 9, 0.1, 3.0)


if __name__ == "__main__":
    main()
