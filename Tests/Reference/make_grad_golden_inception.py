"""Gradients from torch 1.13's autograd through the layers GoogLeNet and Inception v3 add.

    /usr/bin/python3 Tests/Reference/make_grad_golden_inception.py

A small network in training mode, seeded (names as the Swift test builds them):
    t = transform_input(x)                  torchvision's per-channel x · (std / 0.5) + (mean − 0.5) / 0.5
    a = basic(t)                            a: 3→8, 3×3 (BasicConv2d: conv, BatchNorm eps 1e-3, ReLU)
    b = basic_(1×7, padding (0, 3))(a) → basic_(7×1, padding (3, 0))    8→6→6
    c = cat(basic_(1×3, padding (0, 1))(a), basic_(3×1, padding (1, 0))(a))    8→4 each
    d = basic_pool(avg_pool2d(a, 3, 1, padding=1))   count_include_pad, then 1×1 8→4
    o = fc(flatten(adaptive_avg_pool2d(cat(b, c, d), 1)))
    loss = sum(o · r)
Writes Tests/Fixtures/grad/inception.json in make_grad_golden_layers.py's form.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.inception import BasicConv2d

from make_golden import randomise_bn
from make_grad_golden_layers import record_step

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "inception.json"


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = BasicConv2d(3, 8, kernel_size=3)
        self.b1 = BasicConv2d(8, 6, kernel_size=(1, 7), padding=(0, 3))
        self.b2 = BasicConv2d(6, 6, kernel_size=(7, 1), padding=(3, 0))
        self.c1 = BasicConv2d(8, 4, kernel_size=(1, 3), padding=(0, 1))
        self.c2 = BasicConv2d(8, 4, kernel_size=(3, 1), padding=(1, 0))
        self.d = BasicConv2d(8, 4, kernel_size=1)
        self.fc = nn.Linear(18, 3)

    def forward(self, x):
        t = torch.cat((x[:, :1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5, x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                       x[:, 2:] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5), 1)
        a = self.a(t)
        b = self.b2(self.b1(a))
        c = torch.cat((self.c1(a), self.c2(a)), 1)
        d = self.d(F.avg_pool2d(a, 3, 1, padding=1))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(torch.cat((b, c, d), 1), 1), 1))


def main():
    torch.manual_seed(15)
    g = torch.Generator().manual_seed(15)
    model = Small()
    randomise_bn(model, g)
    model.train()
    x = torch.randn(2, 3, 11, 9, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_inception.py")
    print(f"loss {loss:.6f}; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
