"""Gradients from torch 1.13's autograd through the parameter-free layers MobileNetV3, EfficientNet and
ConvNeXt use.

    /usr/bin/python3 Tests/Reference/make_grad_golden_functions.py

A small network, in training mode, seeded (names as the Swift test builds them):
    a = hardswish(b1(c1(x)))                          c1: 4→8, 3×3, padding 1; b1: eps 1e-3, momentum 0.01
    s = hardsigmoid(se.fc2(relu(se.fc1(pool(a)))))     squeeze-excitation, 8→4→8, 1×1 with biases
    e = a · s                                         channel by channel
    f = silu(c2(e))                                   c2: 8→8, 1×1 with bias
    h = gelu(d(f))                                    d: depthwise 3×3, padding 1, with bias (exact GELU)
    t = sigmoid(c3(h))                                c3: 8→6, 1×1 with bias
    o = fc(flatten(pool(t)))                          global average pool, 6→3
    loss = sum(o · r)
BatchNorm's scale is drawn in [1.5, 4.5] so that Hardswish's and Hardsigmoid's inputs reach past ±3.
Writes Tests/Fixtures/grad/functions.json in make_grad_golden_layers.py's form.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_golden import randomise_bn
from make_grad_golden_layers import record_step

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "functions.json"


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Conv2d(8, 4, 1)
        self.fc2 = nn.Conv2d(4, 8, 1)

    def forward(self, a):
        return F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(a, 1)))))


class Functions(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8, eps=1e-3, momentum=0.01)
        self.se = SE()
        self.c2 = nn.Conv2d(8, 8, 1)
        self.d = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c3 = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        a = F.hardswish(self.b1(self.c1(x)))
        e = a * self.se(a)
        h = F.gelu(self.d(F.silu(self.c2(e))))
        t = torch.sigmoid(self.c3(h))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(t, 1), 1))


def main():
    torch.manual_seed(10)
    g = torch.Generator().manual_seed(10)
    model = Functions()
    randomise_bn(model, g)
    model.b1.weight.data = 1.5 + 3 * torch.rand(8, generator=g)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            m.bias.data = torch.randn(m.out_channels, generator=g) * 0.5
    model.train()
    x = torch.randn(2, 4, 7, 6, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_functions.py")
    with torch.no_grad():  # batch statistics without touching the running ones: only to count
        pre = F.batch_norm(model.c1(x), None, None, model.b1.weight, model.b1.bias, training=True, eps=1e-3)
    beyond = int((pre.abs() > 3).sum().item())
    print(f"loss {loss:.6f}; {beyond} of {pre.numel()} BatchNorm outputs beyond ±3; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
