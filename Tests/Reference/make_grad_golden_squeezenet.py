"""Gradients from torch 1.13's autograd through the layers SqueezeNet adds.

    /usr/bin/python3 Tests/Reference/make_grad_golden_squeezenet.py

A small network, seeded (names as the Swift test builds them):
    a = relu(c0(x))                          c0: 3→8, 3×3/2 with a bias (x: 2×3×15×14 → 7×6)
    p = max_pool2d(a, 3, 2, ceil_mode=True)  7×6 → 3×3: the last column's windows run past the image; the
                                             ReLU's zeros make windows of equal maxima (the gradient goes
                                             to the first in row-major order)
    s = relu(squeeze(p))                     1×1, 8→4, with a bias
    f = cat(relu(e1(s)), relu(e3(s)))        e1: 1×1, 4→6; e3: 3×3 padding 1, 4→6; both with biases
    q = max_pool2d(f, 3, 2, padding=1, ceil_mode=True)
    o = flatten(adaptive_avg_pool2d(relu(head(q)), 1))
                                             head: 1×1, 12→3, with a bias (a convolution head)
    loss = sum(o · r)
Writes Tests/Fixtures/grad/squeezenet.json in make_grad_golden_layers.py's form.
"""
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_grad_golden_layers import record_step

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "squeezenet.json"


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, stride=2)
        self.squeeze = nn.Conv2d(8, 4, 1)
        self.e1 = nn.Conv2d(4, 6, 1)
        self.e3 = nn.Conv2d(4, 6, 3, padding=1)
        self.head = nn.Conv2d(12, 3, 1)

    def forward(self, x):
        p = F.max_pool2d(F.relu(self.c0(x)), 3, 2, ceil_mode=True)
        s = F.relu(self.squeeze(p))
        f = torch.cat((F.relu(self.e1(s)), F.relu(self.e3(s))), 1)
        q = F.max_pool2d(f, 3, 2, padding=1, ceil_mode=True)
        return torch.flatten(F.adaptive_avg_pool2d(F.relu(self.head(q)), 1), 1)


def main():
    torch.manual_seed(14)
    g = torch.Generator().manual_seed(14)
    model = Small()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            m.weight.data = torch.randn(m.weight.shape, generator=g) * (2 / fan_in) ** 0.5
            m.bias.data = 0.1 * torch.randn(m.bias.shape, generator=g)
    model.train()
    x = torch.randn(2, 3, 15, 14, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_squeezenet.py")
    print(f"loss {loss:.6f}; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
