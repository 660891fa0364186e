#!/usr/bin/env python3
"""One training step of a whole model in PyTorch, the oracle of test_model_vs_torch.cc.

Usage: torch_model_reference.py DIR
DIR holds, written by the C++ test:
  layers.txt    one layer a line, in forward order (kind, name, hyper-parameters)
  params.txt    "KEY NUMEL" lines in state_dict order; params.bin the float32 values
  input.bin     float32 [N, C, H, W]; labels.bin int32 [N]
  meta.txt      "batch channels height width classes lr momentum weight_decay arch"
Builds the model from layers.txt (nn.Sequential sections named as the state_dict keys say;
for alexnet-torchvision it also checks the keys and shapes against torchvision's own AlexNet),
loads the values, runs forward in float64 in training mode with dropout off, cross-entropy, backward and
one torch.optim.SGD step, and writes logits.bin and new_params.bin (same order) and loss.txt.
"""
import collections
import sys

import numpy as np
import torch
from torch import nn


def build(layers, dropout=False):
    """The network of layers.txt lines; dropout layers keep their p only with `dropout`."""
    sections = collections.OrderedDict()  # "features" -> OrderedDict("0" -> module)
    order = []  # (section, key) in forward order; key None for a plain attribute
    for fields in layers:
        kind, name, args = fields[0], fields[1], fields[2:]
        if kind == "conv":
            cin, cout, k, s, p, g, bias = map(int, args)
            m = nn.Conv2d(cin, cout, k, stride=s, padding=p, groups=g, bias=bool(bias))
        elif kind == "relu":
            m = nn.ReLU(inplace=False)
        elif kind == "maxpool":
            k, s, p = map(int, args)
            m = nn.MaxPool2d(k, stride=s, padding=p)
        elif kind == "lrn":
            size, alpha, beta, k = int(args[0]), float(args[1]), float(args[2]), float(args[3])
            m = nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)  # torch divides by size
        elif kind == "bn":
            c, spatial, eps, momentum = int(args[0]), int(args[1]), float(args[2]), float(args[3])
            m = (nn.BatchNorm2d if spatial > 1 else nn.BatchNorm1d)(c, eps=eps, momentum=momentum)
        elif kind == "avgpool":
            m = nn.AdaptiveAvgPool2d((int(args[0]), int(args[1])))
        elif kind == "flatten":
            m = nn.Flatten(1)
        elif kind == "dropout":
            m = nn.Dropout(float(args[0]) if dropout else 0.0)  # off: the oracle is deterministic
        elif kind == "linear":
            fin, fout, bias = map(int, args)
            m = nn.Linear(fin, fout, bias=bool(bias))
        else:
            raise SystemExit(f"unknown layer kind {kind}")
        if "." in name:
            section, key = name.split(".", 1)
        else:
            section, key = name, None
        if key is None:
            sections[section] = m
        else:
            sections.setdefault(section, collections.OrderedDict())[key] = m
        order.append((section, key))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            for section, content in sections.items():
                if isinstance(content, collections.OrderedDict):
                    setattr(self, section, nn.Sequential(content))
                else:
                    setattr(self, section, content)

    net = Net()

    def forward(x):
        for section, key in order:
            module = getattr(net, section)
            if key is not None:
                module = module._modules[key]
            x = module(x)
        return x

    return net, forward


def main():
    d = sys.argv[1]
    meta = open(f"{d}/meta.txt").read().split()
    n, c, h, w, classes = map(int, meta[:5])
    lr, momentum, wd = map(float, meta[5:8])
    arch = meta[8]
    layers = [line.split() for line in open(f"{d}/layers.txt") if line.strip()]
    net, forward = build(layers)
    manifest = [line.split() for line in open(f"{d}/params.txt") if line.strip()]
    values = np.fromfile(f"{d}/params.bin", dtype=np.float32)
    state = net.state_dict()
    if [k for k, _ in manifest] != list(state.keys()):
        raise SystemExit(f"state_dict keys differ:\n ours  {[k for k, _ in manifest]}\n torch {list(state.keys())}")
    if arch == "alexnet-torchvision":
        import torchvision
        tv = torchvision.models.alexnet(num_classes=classes).state_dict()
        ours = [(k, tuple(v.shape)) for k, v in state.items()]
        theirs = [(k, tuple(v.shape)) for k, v in tv.items()]
        if ours != theirs:
            raise SystemExit(f"not torchvision's AlexNet:\n ours   {ours}\n theirs {theirs}")
    offset = 0
    new_state = collections.OrderedDict()
    for key, numel in manifest:
        numel = int(numel)
        t = state[key]
        if t.numel() != numel:
            raise SystemExit(f"{key}: {numel} values for shape {tuple(t.shape)}")
        chunk = values[offset:offset + numel]
        offset += numel
        new_state[key] = torch.from_numpy(chunk.copy()).reshape(t.shape).to(t.dtype)
    net.load_state_dict(new_state, strict=True)
    x = torch.from_numpy(np.fromfile(f"{d}/input.bin", dtype=np.float32).reshape(n, c, h, w))
    labels = torch.from_numpy(np.fromfile(f"{d}/labels.bin", dtype=np.int32).astype(np.int64))
    torch.set_num_threads(2)
    # In float64: the oracle is the exact answer, not another float32 rounding of it (torch's
    # own float32 conv1 weight update of alexnet-paper is 4% off its float64 one).
    net.double()
    x = x.double()
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    logits = forward(x)
    loss = nn.functional.cross_entropy(logits, labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    logits.detach().numpy().astype(np.float32).tofile(f"{d}/logits.bin")
    out = []
    for key, _ in manifest:
        out.append(net.state_dict()[key].detach().float().numpy().ravel())
    np.concatenate(out).astype(np.float32).tofile(f"{d}/new_params.bin")
    with open(f"{d}/loss.txt", "w") as f:
        f.write(f"{loss.item():.9g}\n")


if __name__ == "__main__":
    main()
