"""A full training step through the backbone: pth2swt against PyTorch, same weights, same machine, one script.

    swift build -c release && /usr/bin/python3 Tests/Reference/bench_train.py [--weights ../shared/weights/resnet18-zip.pth]
        [--batch 32] [--threads 2] [--steps 3] [--rounds 3] [--isa avx512,avx2]

Both sides: resnet18 with the weights, a new 2-class head, every stage training with BatchNorm in training
mode, d2l's low-LR recipe (SGD, backbone lr 5e-5, head 5e-4, momentum 0.9, nesterov, weight decay 1e-3),
a fixed 224×224 batch; the time of forward + backward + step, median over --steps after one warm-up step.
pth2swt's figure is `pth2swt bench train --json` in its own process. The two sides take turns --rounds
times and each keeps its fastest median, so a noisy stretch on a shared host slows both or neither.
--isa TIER[,TIER…] runs pth2swt in each named instruction-set tier (`bench train --isa`), a line per tier.
The CPU model (lscpu) is printed with the figures.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

from refutil import median_ms

REPO = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "weights" / "resnet18-zip.pth"))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pth2swt", default=str(REPO / ".build" / "release" / "pth2swt"))
    ap.add_argument("--isa", default=None, help="comma-separated tiers for pth2swt (default: its own choice)")
    a = ap.parse_args()
    tiers = a.isa.split(",") if a.isa else [None]

    def ours_ms(tier):
        out = subprocess.run([a.pth2swt, "bench", "train", "--weights", a.weights, "--batch", str(a.batch),
                              "--threads", str(a.threads), "--repeat", str(a.steps), "--warmup", "1", "--json"]
                             + (["--isa", tier] if tier else []),
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)["median_ms"]

    torch.set_num_threads(a.threads)
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(a.weights))
    model.fc = nn.Linear(512, 2)
    model.train()
    backbone = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    opt = torch.optim.SGD([{"params": backbone, "lr": 5e-5}, {"params": model.fc.parameters(), "lr": 5e-4}],
                          lr=5e-5, momentum=0.9, nesterov=True, weight_decay=1e-3)
    idx = torch.arange(a.batch * 3 * 224 * 224) % 255
    x = (idx.to(torch.float32) / 127.5 - 1).reshape(a.batch, 3, 224, 224)
    y = torch.arange(a.batch) % 2
    def step():
        loss = nn.CrossEntropyLoss()(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    ours, theirs = {t: [] for t in tiers}, []
    for r in range(a.rounds):
        for t in tiers:
            ours[t].append(ours_ms(t))
        theirs.append(median_ms(step, a.steps, 1))
        print(f"round {r + 1}: torch {theirs[-1]:.0f} ms, " + ", ".join(f"pth2swt{f'[{t}]' if t else ''} {ours[t][-1]:.0f} ms"
                                                            for t in tiers), flush=True)
    torch_ms = min(theirs)
    cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                if l.startswith("Model name")), "unknown")
    print(f"cpu: {cpu}; torch {torch.__version__}, batch {a.batch}, {a.threads} threads, {a.steps} steps, best of {a.rounds} rounds")
    print(f"{'':18}{'step ms':>10}{'img/s':>9}{'÷ torch':>9}")
    print(f"{'torch':18}{torch_ms:10.0f}{a.batch * 1000 / torch_ms:9.2f}{1:9.2f}")
    for t in tiers:
        m = min(ours[t])
        print(f"{'pth2swt' + (f'[{t}]' if t else ''):18}{m:10.0f}{a.batch * 1000 / m:9.2f}{m / torch_ms:9.2f}")


if __name__ == "__main__":
    main()
