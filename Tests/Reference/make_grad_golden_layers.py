"""Gradients from torch 1.13's autograd for the layers the families beside ResNet add.

    /usr/bin/python3 Tests/Reference/make_grad_golden_layers.py

A small network with each new layer, in training mode, seeded (names as the Swift test builds them):
    y1 = relu6(b1(c1(x)))             c1: 4→8, 3×3, padding 1, no bias
    z  = relu6(b2(d(y1)))             d: depthwise 8→8, 3×3, stride 2, padding 1 (groups 8)
    y  = relu(b3(g(z)) + z)           g: grouped 8→8, 3×3, padding 1, groups 2; a residual add
    p  = adaptive_avg_pool2d(y, 7×7)  from 5×5: overlapping windows
    o  = fc(drop(flatten(p)))         drop: Dropout(0.5) with the fixed mask pth2swt's DropoutMask draws
                                      (seed 0, step 0, layer "drop"; make_train_golden_families.py)
    loss = sum(o · r)
Writes Tests/Fixtures/grad/layers.json: the input, every parameter and BatchNorm buffer before the step
(NCHW / torch's layouts, float32 values as decimals), r, the loss, the gradient of every parameter and the
running statistics after the step (momentum 0.1), plus the torch version.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn

from make_golden import randomise_bn
from make_grad_golden import flat
from make_train_golden_families import SeededDropout

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "grad" / "layers.json"


class Layers(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.d = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.g = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.b3 = nn.BatchNorm2d(8)
        self.drop = SeededDropout(0.5, "drop", {"step": 0})
        self.fc = nn.Linear(8 * 49, 3)

    def forward(self, x):
        y1 = nn.functional.relu6(self.b1(self.c1(x)))
        z = nn.functional.relu6(self.b2(self.d(y1)))
        y = torch.relu(self.b3(self.g(z)) + z)
        p = nn.functional.adaptive_avg_pool2d(y, (7, 7))
        return self.fc(self.drop(torch.flatten(p, 1)))


def record_step(model, x, r, out, generator):
    """One forward and backward pass of `model` (in its current mode) with loss sum(model(x) · r), written to
    `out` in the form the Swift gradient tests read: the input, every float32 state entry before the step,
    r, the loss, every parameter's gradient and the running statistics after it. Returns the loss."""
    before = {k: flat(v) for k, v in model.state_dict().items() if v.dtype == torch.float32}
    loss = (model(x) * r).sum()
    loss.backward()
    grads = {n: flat(p.grad) for n, p in model.named_parameters()}
    after = {k: flat(v) for k, v in model.state_dict().items() if "running" in k}
    out.write_text(json.dumps({
        "generator": generator, "torch": torch.__version__, "x_shape": list(x.shape), "x": flat(x), "r": flat(r),
        "state": before, "loss": float(loss), "grads": grads, "running_after": after}) + "\n")
    return float(loss)


def main():
    torch.manual_seed(9)
    g = torch.Generator().manual_seed(9)
    model = Layers()
    randomise_bn(model, g)
    # BatchNorm scales of 2.5 to 7.5 before the ReLU6s, so that they clamp at 6 as well as at 0.
    model.b1.weight.data *= 5
    model.b2.weight.data *= 5
    model.train()
    x = torch.randn(2, 4, 9, 9, generator=g)
    r = torch.randn(2, 3, generator=g)
    loss = record_step(model, x, r, OUT, "Tests/Reference/make_grad_golden_layers.py")
    with torch.no_grad():
        b1 = nn.functional.batch_norm(model.c1(x), None, None, model.b1.weight, model.b1.bias, training=True)
    relu6_hits = int((b1 > 6).sum().item())
    print(f"loss {loss:.6f}; {relu6_hits} pre-activations of b1 above 6; wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
