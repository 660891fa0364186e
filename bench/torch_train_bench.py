#!/usr/bin/env python3
"""The PyTorch peer of bench-train: training-step and forward-only images/s of one model.

Usage: torch_train_bench.py --arch A --layers FILE --batch N --channels C --height H --width W
                            --classes K --threads T --warmup W --steps S
alexnet-torchvision is torchvision's own AlexNet; any other arch is built from FILE (the lines
of trainer::torch_layer_lines, as tests/trainer/torch_model_reference.py reads them), dropout on.
A training step is what bench-train times: forward in training mode, cross-entropy, zero_grad,
backward, and torch.optim.SGD (momentum 0.9, weight decay 5e-4). Random inputs and labels.
Prints two lines: "train IMG_PER_S" and "forward IMG_PER_S" (eval mode, no autograd).
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "trainer"))
from torch_model_reference import build  # noqa: E402


def timed(step, warmup, steps, batch):
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    for name in ("batch", "channels", "height", "width", "classes", "threads", "warmup", "steps"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--layers", required=True)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.arch == "alexnet-torchvision":
        import torchvision
        net = torchvision.models.alexnet(num_classes=a.classes)
        forward = net
    else:
        layers = [line.split() for line in open(a.layers) if line.strip()]
        net, forward = build(layers, dropout=True)
    x = torch.randn(a.batch, a.channels, a.height, a.width)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def train_step():
        loss = nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward_step():
        with torch.no_grad():
            forward(x)

    net.train()
    train = timed(train_step, a.warmup, a.steps, a.batch)
    net.eval()
    inference = timed(forward_step, a.warmup, a.steps, a.batch)
    print(f"train {train:.3f}")
    print(f"forward {inference:.3f}")


if __name__ == "__main__":
    main()
