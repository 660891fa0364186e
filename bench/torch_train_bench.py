#!/usr/bin/env python3
"""The PyTorch peer of bench-train: training-step and forward-only images/s of one model.

Usage: torch_train_bench.py --arch A --layers FILE --batch N --channels C --height H --width W
                            --classes K --threads T --warmup W --steps S
alexnet-torchvision is torchvision's own AlexNet; any other arch is built from FILE (the lines
of trainer::torch_layer_lines, as tests/trainer/torch_model_reference.py reads them), dropout on.
A training step is what bench-train times: forward in training mode, cross-entropy, zero_grad,
backward, and torch.optim.SGD (momentum 0.9, weight decay 5e-4). Random inputs and labels.
Prints two lines: "train IMG_PER_S" and "forward IMG_PER_S" (eval mode, no autograd).
--device cuda: the model and the batch on the GPU, channels_last (cuDNN's fast layout), under
torch.autocast for --precision bf16/fp16 (fp16 with a GradScaler), TF32 for cuDNN and matmul only
with --tf32; every timing ends with torch.cuda.synchronize().
"""
import argparse
import contextlib
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "trainer"))
from torch_model_reference import build  # noqa: E402


def timed(step, warmup, steps, batch, sync):
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser()
    for name in ("batch", "channels", "height", "width", "classes", "threads", "warmup", "steps"):
        p.add_argument("--" + name, type=int, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--layers", required=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--tf32", action="store_true")
    a = p.parse_args()
    cuda = a.device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # algorithms by measurement, as ours
        torch.backends.cudnn.allow_tf32 = a.tf32
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
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
    if cuda:
        net = net.to("cuda", memory_format=torch.channels_last)
        x = x.to("cuda").contiguous(memory_format=torch.channels_last)
        y = y.to("cuda")
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    use_amp = cuda and amp_dtype is not None
    scaling = use_amp and a.precision == "fp16"
    # torch.amp.GradScaler("cuda") since torch 2.3; torch.cuda.amp's is deprecated.
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        scaler = torch.amp.GradScaler("cuda", enabled=scaling)
    else:
        scaler = torch.cuda.amp.GradScaler(enabled=scaling)
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def autocast():
        if not use_amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=amp_dtype)

    def train_step():
        with autocast():
            loss = nn.functional.cross_entropy(forward(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def forward_step():
        with torch.no_grad(), autocast():
            forward(x)

    net.train()
    train = timed(train_step, a.warmup, a.steps, a.batch, sync)
    net.eval()
    inference = timed(forward_step, a.warmup, a.steps, a.batch, sync)
    print(f"train {train:.3f}")
    print(f"forward {inference:.3f}")


if __name__ == "__main__":
    main()
