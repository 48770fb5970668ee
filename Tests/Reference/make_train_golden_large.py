"""20-step training goldens of full-size networks, from torch 1.13 + torchvision 0.14: DenseNet-121,
ConvNeXt-Tiny, EfficientNet-B0 and MobileNetV3-Small, each partly frozen, as
make_train_golden_families.py's modes are made.

    /usr/bin/python3 Tests/Reference/make_train_golden_large.py

Their weights (10 to 114 MB) are too big to commit, so everything goes to
Tests/Fixtures/golden-local/train/ (gitignored), and the Swift test that reads it
(LargeTrainingTests) is skipped, saying why, where the directory is absent. Writes:

  ARCH.pth      torchvision.models.ARCH() after torch.manual_seed(SEED), with BatchNorm weights, biases and
                running statistics (DenseNet, EfficientNet, MobileNetV3) or LayerNorm weights and biases and every layer scale
                (ConvNeXt: its 1e-6 makes each block nearly the identity) randomised as the committed small
                goldens are, saved by torch.save
  large.json    per mode what families.json holds per mode (losses, the float64 run's losses and spread,
                first updates, final state samples, what did not change) and what perturbation.json holds
                for it (make_train_perturbation.py's spreads: three runs from starting weights moved by
                2^-20 relative, and the float64 run), the versions, the generator

  densenet121_through_transition2   conv0 … transition2 frozen (eval mode); denseblock3, transition3,
                                    denseblock4, norm5 and a new Linear(1024, 2) head train: BatchNorms
                                    that follow no convolution in training mode, concatenations, 2×2
                                    average pools. SGD(lr 0.001, momentum 0.9).
  convnext_tiny_through_features5   features.0 … features.5 frozen; features.6, features.7 (LayerNorm,
                                    Linear over positions, GELU, layer scale, stochastic depth 0.086 to
                                    0.1 on the seeded per-image masks) and classifier.0 train, with a new
                                    Linear(768, 2) head. SGD(lr 0.001, momentum 0.9).
  efficientnet_b0_through_features5 features.0 … features.5 frozen; features.6 … 8 train (SiLU, sigmoid
                                    squeeze-excitation, BatchNorm in training mode, stochastic depth on
                                    the seeded masks) with classifier.0's Dropout(0.2) on and a new
                                    Linear(1280, 2) head. SGD(lr 0.001, momentum 0.9).
  mobilenet_v3_small_through_features8
                                    features.0 … features.8 frozen; features.9 … 12 (Hardswish,
                                    Hardsigmoid squeeze-excitation, BatchNorm eps 1e-3 momentum 0.01),
                                    classifier.0 with its Hardswish and Dropout(0.2), and a new
                                    Linear(1024, 2) head train. SGD(lr 0.001, momentum 0.9).

Each takes 20 steps at batch 4 on make_train_golden.py's 64×64 pattern images, as the small modes do, at
a tenth of their learning rate: at 0.01 these networks learn the eight images within 20 steps and the
loss goes to 1e-3 and below, where relative comparisons stop meaning anything.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

import make_golden_families as fam
import make_train_golden_families as tg
import make_train_perturbation as mp
from make_golden import randomise_bn
from make_train_golden import pattern_images

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "golden-local" / "train"

MODES = [
    # name, builder, seed, head path, frozen prefixes, SGD options
    ("densenet121_through_transition2", "densenet121", 121, "classifier",
     ["features.conv0", "features.norm0", "features.denseblock1", "features.transition1", "features.denseblock2",
      "features.transition2"], {"lr": 0.001, "momentum": 0.9}),
    ("convnext_tiny_through_features5", "convnext_tiny", 96, "classifier.2",
     [f"features.{i}" for i in range(6)], {"lr": 0.001, "momentum": 0.9}),
    ("efficientnet_b0_through_features5", "efficientnet_b0", 10, "classifier.1",
     [f"features.{i}" for i in range(6)], {"lr": 0.001, "momentum": 0.9}),
    ("mobilenet_v3_small_through_features8", "mobilenet_v3_small", 3, "classifier.3",
     [f"features.{i}" for i in range(9)], {"lr": 0.001, "momentum": 0.9}),
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    x_all, y_all = pattern_images()
    out = {"generator": "Tests/Reference/make_train_golden_large.py", "torch": torch.__version__,
           "torchvision": torchvision.__version__, "steps": 20, "batch": 4, "dropout_seed": tg.DROPOUT_SEED,
           "modes": []}
    for name, arch, seed, head_path, frozen, options in MODES:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model = getattr(torchvision.models, arch)()
        randomise_bn(model, g)
        fam.randomise_layer_norms(model, g)
        weights = OUT / f"{arch}.pth"
        torch.save(model.state_dict(), weights)
        def run(dtype, perturb=None):
            return tg.train(None, head_path, frozen, options, x_all, y_all, dtype, perturb=perturb,
                            model=getattr(torchvision.models, arch)(), weights=weights)
        model, before, losses, step1 = run(torch.float32)
        model64, _, losses64, step1_64 = run(torch.float64)
        # make_train_perturbation.py's spreads for this mode: three float32 runs from starting weights
        # moved by 2^-20 relative, and the float64 run.
        perturbed = [run(torch.float32, mp.perturbed(seed)) for seed in mp.SEEDS]
        perturbation = mp.record([(model, losses, step1)] + [(r[0], r[2], r[3]) for r in perturbed],
                                 (model64, losses64, step1_64))
        mp.summary(name, perturbation)
        entry = tg.record_mode(model, before, losses, step1, losses64, head_path)
        out["modes"].append(dict(name=name, arch=arch, weights=f"{arch}.pth", head=head_path, frozen=frozen,
                                 options=options, **entry, perturbation=perturbation))
        spread, changed, unchanged = entry["spread"], entry["changed"], entry["unchanged"]
        print(f"{name}: loss {losses[0]:.4f} → {losses[-1]:.4f}; {len(changed)} tensors changed, "
              f"{len(unchanged)} not; float32/float64 spread {max(spread):.1e}")
    (OUT / "large.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
