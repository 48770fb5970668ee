"""How far torch 1.13 differs from itself, float32 against float64, on backbone.json's setups: the bound
below which no float32 implementation can be held to torch (BackboneTrainingTests cites these figures).

    /usr/bin/python3 Tests/Reference/measure_spread.py

Modes: through_layer2_bn_train (batch 4, as the golden) and low_lr at batch 4 and 8. Prints the largest
relative loss difference over 20 steps, and for through_layer2_bn_train the largest difference of any
state tensor relative to its largest value. Measured 2026-11-23: 1.2e-5 and 7.4e-5 (bn_train), and
2.3e-2 and 3.3e-2 for low_lr at batch 4 and 8.
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_train_golden as g  # noqa: E402


def run(mode, batch, dtype, sd, head, x_all, y_all):
    m = g.resnet_with_head(sd, head).to(dtype)
    m.train()
    if mode == "through_layer2_bn_train":
        for mod in [m.conv1, m.bn1, m.layer1, m.layer2]:
            for p in mod.parameters():
                p.requires_grad_(False)
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=5e-4, momentum=0.9)
    else:
        body = [p for n, p in m.named_parameters() if not n.startswith("fc.")]
        opt = torch.optim.SGD([{"params": body, "lr": 5e-5}, {"params": list(m.fc.parameters()), "lr": 5e-4}],
                              lr=5e-5, momentum=0.9, nesterov=True, weight_decay=1e-3)
    losses = []
    for k in range(20):
        idx = [(5 * k + 3 * j) % 8 for j in range(batch)]
        loss = nn.CrossEntropyLoss()(m(x_all[idx].to(dtype)), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, m.state_dict()


def main():
    sd = torch.load(g.SHARED, map_location="cpu")
    x_all, y_all = g.pattern_images()
    head = g.seeded_head()
    for mode, batch in [("through_layer2_bn_train", 4), ("low_lr", 4), ("low_lr", 8)]:
        (la, sa), (lb, sb) = (run(mode, batch, dt, sd, head, x_all, y_all) for dt in (torch.float32, torch.float64))
        line = f"{mode} batch {batch}: loss spread {max(abs(a - b) / abs(b) for a, b in zip(la, lb)):.2e}"
        if mode == "through_layer2_bn_train":
            worst = max((v.double() - sb[k]).abs().max().item() / max(sb[k].abs().max().item(), 1e-30)
                        for k, v in sa.items() if v.dtype == torch.float32)
            line += f", state spread {worst:.2e}"
        print(line)


if __name__ == "__main__":
    main()
