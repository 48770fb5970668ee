"""Golden logits for resnet34 and resnet50 from seeded torchvision inits (torch 1.13 + torchvision 0.14).

    /usr/bin/python3 Tests/Reference/make_golden_large.py

The weights are 83 MB and 98 MB, too big to commit, so everything goes to Tests/Fixtures/golden-local/
(gitignored) and the Swift test that reads it (LargeGoldenTests) is skipped, saying why, when the
directory is absent. Writes:
  resnet34.pth, resnet50.pth      torchvision.models.resnet34/50() after torch.manual_seed(34/50), with
                                  BN weights, biases and running statistics randomised as in
                                  make_golden.py (so BN folding is exercised), saved by torch.save
  resnet34.logits.npy, …          model.eval() logits on make_golden.py's pattern input, batch 2, 224×224
  golden.json                     shapes, top-5, max |logit|, versions, the generator's name
"""
import json
from pathlib import Path

import numpy as np
import torch
import torchvision

from make_golden import pattern_input, randomise_bn, top5

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "golden-local"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    x = pattern_input(2, 224, 224)
    cases = {}
    for arch, seed in [("resnet34", 34), ("resnet50", 50)]:
        torch.manual_seed(seed)
        model = getattr(torchvision.models, arch)()
        randomise_bn(model, torch.Generator().manual_seed(seed))
        model.eval()
        logits = model(x)
        torch.save(model.state_dict(), OUT / f"{arch}.pth")
        np.save(OUT / f"{arch}.logits.npy", logits.numpy())
        cases[arch] = {"weights": f"{arch}.pth", "logits": f"{arch}.logits.npy", "seed": seed,
                       "input": "make_golden.py's pattern, batch 2, 3×224×224", "top5": top5(logits),
                       "max_abs_logit": float(logits.abs().max())}
        print(f"{arch}: max |logit| {logits.abs().max():.4f}, top-5 {top5(logits)}")
    meta = {"generator": "Tests/Reference/make_golden_large.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cases": cases,
            "tolerance": "max |Δ| <= 1e-4 * max |logit|, top-5 identical"}
    (OUT / "golden.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
