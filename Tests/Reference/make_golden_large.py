"""Golden logits for every full-size network pth2swt runs that has no committed golden, from seeded
torchvision inits (torch 1.13 + torchvision 0.14).

    /usr/bin/python3 Tests/Reference/make_golden_large.py [ARCH ...]

ResNet-34 to -152, ResNeXt, Wide ResNet, AlexNet, the eight VGGs and MobileNetV2 (ResNet-18 has committed
goldens; the small widths of every family are committed by make_golden_families.py). The weights are 9 MB
(MobileNetV2) to 548 MB (VGG-19-BN), about 6.5 GB together, too big to commit, so everything goes to
Tests/Fixtures/golden-local/ (gitignored) and the Swift test that reads it (LargeGoldenTests) is skipped,
saying why, when the directory is absent. With ARCH names only those are (re)made; golden.json keeps the
cases already there. Writes:
  ARCH.pth                        torchvision.models.ARCH() after torch.manual_seed(SEEDS[ARCH]), with
                                  BN weights, biases and running statistics randomised as in
                                  make_golden.py (so BN folding is exercised), saved by torch.save
  ARCH.logits.npy                 model.eval() logits on make_golden.py's pattern input, batch 2, 224×224
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


SEEDS = {"resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152, "resnext50_32x4d": 5032,
         "resnext101_32x8d": 10132, "resnext101_64x4d": 10164, "wide_resnet50_2": 502, "wide_resnet101_2": 1012,
         "alexnet": 7, "vgg11": 11, "vgg11_bn": 111, "vgg13": 13, "vgg13_bn": 113, "vgg16": 16, "vgg16_bn": 116,
         "vgg19": 19, "vgg19_bn": 119, "mobilenet_v2": 2}


def main():
    import sys
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    x = pattern_input(2, 224, 224)
    wanted = sys.argv[1:] or list(SEEDS)
    unknown = [a for a in wanted if a not in SEEDS]
    if unknown:
        sys.exit(f"unknown architecture(s) {unknown}; known: {', '.join(SEEDS)}")
    old = OUT / "golden.json"
    cases = json.loads(old.read_text())["cases"] if old.exists() else {}
    for arch in wanted:
        seed = SEEDS[arch]
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
        print(f"{arch}: max |logit| {logits.abs().max():.4f}, top-5 {top5(logits)}", flush=True)
    meta = {"generator": "Tests/Reference/make_golden_large.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cases": cases,
            "tolerance": "max |Δ| <= 1e-4 * max |logit|, top-5 identical"}
    (OUT / "golden.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
