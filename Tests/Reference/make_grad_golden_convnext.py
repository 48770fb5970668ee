"""Gradients from torch 1.13's autograd through the layers ConvNeXt adds.

    /usr/bin/python3 Tests/Reference/make_grad_golden_convnext.py

A small network, seeded (names as the Swift test builds them), with LayerNorm's γ, β and the layer
scale random so that none is a no-op:
    a = n0(c0(x))                           c0: 4→8, 2×2/2 with a bias; n0: LayerNorm over channels (eps 1e-6)
    b = d(a)                                d: 7×7 depthwise, padding 3, with a bias (5×4 input: the window
                                            is larger than the image)
    e = l2(gelu(l1(n1(b))))                 n1: LayerNorm (eps 1e-6) on channels-last values; l1: Linear(8, 32);
                                            l2: Linear(32, 8), both over positions; exact GELU
    f = a + s · e                           s: the layer scale, [8, 1, 1]
    o = fc(n2(flatten(adaptive_avg_pool2d(f, 1))))
                                            n2: LayerNorm (eps 1e-6) over the pooled channels
    loss = sum(o · r)
Writes Tests/Fixtures/grad/convnext.json in make_grad_golden_layers.py's form.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_grad_golden_layers import record_step

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "convnext.json"


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(4, 8, 2, stride=2)
        self.n0 = nn.LayerNorm(8, eps=1e-6)
        self.d = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.n1 = nn.LayerNorm(8, eps=1e-6)
        self.l1 = nn.Linear(8, 32)
        self.l2 = nn.Linear(32, 8)
        self.s = nn.Module()
        self.s.layer_scale = nn.Parameter(torch.ones(8, 1, 1))
        self.n2 = nn.LayerNorm(8, eps=1e-6)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        a = self.n0(self.c0(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        e = self.d(a).permute(0, 2, 3, 1)
        e = self.l2(F.gelu(self.l1(self.n1(e)))).permute(0, 3, 1, 2)
        f = a + self.s.layer_scale * e
        return self.fc(self.n2(torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)))


def main():
    torch.manual_seed(13)
    g = torch.Generator().manual_seed(13)
    model = Block()
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = 1 + 0.3 * (torch.rand(m.weight.shape, generator=g) * 2 - 1)
            m.bias.data = 0.2 * (torch.rand(m.bias.shape, generator=g) * 2 - 1)
    model.s.layer_scale.data = 0.2 + 0.6 * torch.rand(8, 1, 1, generator=g)
    model.train()
    x = torch.randn(2, 4, 10, 8, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_convnext.py")
    print(f"loss {loss:.6f}; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
