"""Gradients from torch 1.13's autograd for the training kernels (Sources/Kernels/Backward.swift).

    /usr/bin/python3 Tests/Reference/make_grad_golden.py

A small residual block with every layer a ResNet trains, in training mode, seeded:
    y1 = relu(bn1(conv1(x)))             conv1: 6→8, 3×3, stride 2, padding 1, no bias; bn1 in train mode
    p  = maxpool(y1)                     3×3, stride 2, padding 1
    y2 = bn2(conv2(p))                   conv2: 8→16, 3×3, stride 1, padding 1
    y  = relu(y2 + bn3(conv3(p)))        conv3: 8→16, 1×1 (the downsample path)
    f  = avgpool(y) (global), loss = sum(f · r)
Writes Tests/Fixtures/grad/block.json: every input (NCHW, row-major, float32 values as decimal), the
loss, the gradients of x, of each convolution weight, γ and β, and each BatchNorm's running statistics
after the step (momentum 0.1), plus the torch version.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "block.json"


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def main():
    torch.manual_seed(7)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 6, 11, 9, generator=g, requires_grad=True)
    conv1 = nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False)
    conv2 = nn.Conv2d(8, 16, 3, stride=1, padding=1, bias=False)
    conv3 = nn.Conv2d(8, 16, 1, bias=False)
    bns = [nn.BatchNorm2d(8), nn.BatchNorm2d(16), nn.BatchNorm2d(16)]
    for bn in bns:
        n = bn.num_features
        bn.weight.data = torch.rand(n, generator=g) + 0.5
        bn.bias.data = torch.randn(n, generator=g) * 0.1
        bn.running_mean.data = torch.randn(n, generator=g) * 0.1
        bn.running_var.data = torch.rand(n, generator=g) + 0.5
        bn.train()
    r = torch.randn(2, 16, generator=g)
    before = {f"bn{i + 1}": {"running_mean": flat(bn.running_mean), "running_var": flat(bn.running_var)}
              for i, bn in enumerate(bns)}
    inputs = {"x": flat(x), "conv1": flat(conv1.weight), "conv2": flat(conv2.weight), "conv3": flat(conv3.weight),
              "r": flat(r)}
    for i, bn in enumerate(bns):
        inputs[f"bn{i + 1}"] = {"weight": flat(bn.weight), "bias": flat(bn.bias), **before[f"bn{i + 1}"]}

    y1 = torch.relu(bns[0](conv1(x)))
    p = nn.functional.max_pool2d(y1, 3, 2, 1)
    y = torch.relu(bns[1](conv2(p)) + bns[2](conv3(p)))
    f = y.mean(dim=(2, 3))
    loss = (f * r).sum()
    loss.backward()

    grads = {"x": flat(x.grad), "conv1": flat(conv1.weight.grad), "conv2": flat(conv2.weight.grad),
             "conv3": flat(conv3.weight.grad)}
    after = {}
    for i, bn in enumerate(bns):
        grads[f"bn{i + 1}"] = {"weight": flat(bn.weight.grad), "bias": flat(bn.bias.grad)}
        after[f"bn{i + 1}"] = {"running_mean": flat(bn.running_mean), "running_var": flat(bn.running_var)}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "generator": "Tests/Reference/make_grad_golden.py", "torch": torch.__version__,
        "shapes": {"x": [2, 6, 11, 9], "conv1": [8, 6, 3, 3], "conv2": [16, 8, 3, 3], "conv3": [16, 8, 1, 1],
                   "r": [2, 16]},
        "eps": 1e-5, "momentum": 0.1, "inputs": inputs, "loss": float(loss), "grads": grads,
        "running_after": after}) + "\n")
    print(f"loss {float(loss):.6f}; wrote {OUT.relative_to(REPO)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
