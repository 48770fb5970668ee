"""How far torch 1.13's data-parallel runs of make_ddp_golden.py move under rounding-sized changes: the
background for DDPGoldenTests' bounds.

    /usr/bin/python3 Tests/Reference/measure_ddp_sensitivity.py

Replays each DDP case in one process as make_ddp_golden.simulate does (float32, 1 thread) and compares
its per-step mean losses with the same replay changed three ways:
    ulp            layer3.0.conv1.weight multiplied by (1 + 2^-23) before the first step (one rounding)
    sum_then_scale each rank's gradient computed alone, summed in rank order, then multiplied by 1/N
    scale_then_sum each rank's gradient multiplied by 1/N, then summed in reverse rank order
Prints the largest relative loss difference over the 20 steps for each. Measured 2026-12-07 (torch 1.13,
AMD EPYC):

    mode                     N  ulp      sum_then_scale scale_then_sum
    through_layer2           2  2.8e-07  0.0e+00  0.0e+00
    through_layer2           3  8.6e-07  1.6e-07  2.0e-07
    through_layer2_bn_train  2  1.9e-07  0.0e+00  0.0e+00
    through_layer2_bn_train  3  2.1e-07  1.6e-07  1.9e-07

So torch's own trajectories stay within 1e-6 under these changes (for N = 2 the 1/N scaling is exact and
the orders agree bit for bit). With the global batch or the image count changed (12 of 24, 12 of 48, 24
of 48 images), the same one-rounding change moved through_layer2 by up to 1.6e-4 in one case of four:
whether a run passes near a point where the step is not continuous in the weights (a ReLU or max-pool
input within rounding of a tie) depends on the run, not on the implementation.
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_ddp_golden as g  # noqa: E402


def replay(mode, world, variant):
    model = g.make_model(mode)
    if variant == "ulp":
        with torch.no_grad():
            model.layer3[0].conv1.weight.mul_(1 + 2 ** -23)
    x, y = g.pattern_images(g.M)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=g.MODE_LR.get(mode, g.LR), momentum=g.MOMENTUM)
    b = g.GLOBAL_BATCH // world
    out = []
    for k in range(g.STEPS):
        epoch, s = divmod(k, g.M // g.GLOBAL_BATCH)
        gen = torch.Generator()
        gen.manual_seed(g.SEED + epoch)
        perm = torch.randperm(g.M, generator=gen).tolist()
        start = {n: v.clone() for n, v in model.named_buffers()}
        opt.zero_grad()
        total, grads = 0.0, {}
        for r in list(range(1, world)) + [0]:
            with torch.no_grad():
                for n, v in model.named_buffers():
                    v.copy_(start[n])
            idx = perm[r::world][s * b:(s + 1) * b]
            loss = nn.CrossEntropyLoss()(model(x[idx]), y[idx])
            if variant in ("sum_then_scale", "scale_then_sum"):
                grads[r] = torch.autograd.grad(loss, params)
            else:
                (loss / world).backward()
            total += loss.item()
        if grads:
            for i, p in enumerate(params):
                if variant == "sum_then_scale":
                    t = grads[0][i].clone()
                    for r in range(1, world):
                        t += grads[r][i]
                    p.grad = t * (1.0 / world)
                else:
                    t = grads[world - 1][i] * (1.0 / world)
                    for r in reversed(range(world - 1)):
                        t += grads[r][i] * (1.0 / world)
                    p.grad = t
        opt.step()
        out.append(total / world)
    return out


def main():
    torch.set_num_threads(1)
    print(f"{'mode':24s} N  ulp      sum_then_scale scale_then_sum")
    for mode in ["through_layer2", "through_layer2_bn_train"]:
        for world in [2, 3]:
            base = replay(mode, world, None)
            cells = []
            for variant in ["ulp", "sum_then_scale", "scale_then_sum"]:
                other = replay(mode, world, variant)
                cells.append(max(abs(p - q) / abs(p) for p, q in zip(base, other)))
            print(f"{mode:24s} {world}  " + "  ".join(f"{c:.1e}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
