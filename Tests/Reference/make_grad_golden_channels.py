"""Gradients from torch 1.13's autograd through the layers ShuffleNetV2 and DenseNet add.

    /usr/bin/python3 Tests/Reference/make_grad_golden_channels.py

A small network, in training mode, seeded (names as the Swift test builds them):
    a = relu(b1(c1(x)))                     c1: 4→8, 3×3, padding 1
    p, q = a[:, :4], a[:, 4:]               x.chunk(2, dim=1)
    r = relu(b2(c2(q)))                     c2: 4→4, 1×1
    s = shuffle(cat(p, r), 2)               channel_shuffle(…, 2)
    t = cat(s, a)                           16 channels
    u = relu(n3(t))                         n3: a BatchNorm that follows no convolution, in training mode
    v = avg_pool2d(c3(u), 2, 2)             c3: 16→8, 1×1; 7×6 → 3×3 (floor: the last row and column dropped)
    w = avg_pool2d(v, 3, 1, padding=1)      count_include_pad=True
    o = fc(flatten(adaptive_avg_pool2d(w, 1)))
    loss = sum(o · r)
Writes Tests/Fixtures/grad/channels.json in make_grad_golden_layers.py's form.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_golden import randomise_bn
from make_grad_golden_layers import record_step

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "channels.json"


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Channels(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(4, 4, 1, bias=False)
        self.b2 = nn.BatchNorm2d(4)
        self.n3 = nn.BatchNorm2d(16)
        self.c3 = nn.Conv2d(16, 8, 1, bias=False)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        a = F.relu(self.b1(self.c1(x)))
        p, q = a.chunk(2, dim=1)
        r = F.relu(self.b2(self.c2(q)))
        s = channel_shuffle(torch.cat((p, r), 1), 2)
        u = F.relu(self.n3(torch.cat((s, a), 1)))
        v = F.avg_pool2d(self.c3(u), 2, 2)
        w = F.avg_pool2d(v, 3, 1, padding=1, count_include_pad=True)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(w, 1), 1))


def main():
    torch.manual_seed(12)
    g = torch.Generator().manual_seed(12)
    model = Channels()
    randomise_bn(model, g)
    model.train()
    x = torch.randn(2, 4, 7, 6, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_channels.py")
    print(f"loss {loss:.6f}; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
