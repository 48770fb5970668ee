"""Golden logits from torch 1.13 + torchvision 0.14 for the Swift ResNet.

    /usr/bin/python3 Tests/Reference/make_golden.py

Writes Tests/Fixtures/golden/:
  small_basic.pth, small_bottleneck.pth   seeded small ResNets built from torchvision's own BasicBlock and
                                          Bottleneck classes and torchvision's layer/naming scheme, with
                                          stem/stage widths shrunk (torchvision hard-codes 64…512) so
                                          the weights are small enough to commit; BN weights, biases and
                                          running statistics are randomised so BN folding is exercised
  small_*.input.npy                       the seeded input, float32 NCHW
  small_*.logits.npy                      model.eval() logits, float32
  resnet18-shared.logits.npy              torchvision.models.resnet18 with each of
                                          ../shared/weights/resnet18-{tar,legacy,zip}.pth (the three give
                                          identical logits, asserted) on the pattern input below
  golden.json                             what each file is, shapes, top-5, the torch/torchvision versions

The shared input is a pattern that Swift rebuilds exactly (integer arithmetic, one division):
  x[n, c, h, w] = ((h * 131 + w * 71 + c * 37 + n * 17) % 255) / 127.5 - 1      (float32)
so no 1.2 MB input is committed.
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "golden"
SHARED = REPO.parent / "shared" / "weights"


class SmallResNet(nn.Module):
    """torchvision.models.ResNet with configurable stem and stage widths: the same blocks, the same
    _make_layer rule (stride on the first block of stages 2-4, downsample = conv1x1 + BN when the shape
    changes) and the same state-dict names (conv1, bn1, layerN.i…, fc)."""

    def __init__(self, block, layers, widths, stem, classes):
        super().__init__()
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0], 1)
        self.layer2 = self._make_layer(block, widths[1], layers[1], 2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], 2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomise_bn(model, g):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.5
            m.bias.data = torch.randn(n, generator=g) * 0.1
            m.running_mean.data = torch.randn(n, generator=g) * 0.1
            m.running_var.data = torch.rand(n, generator=g) + 0.5
            m.num_batches_tracked.fill_(7)


def pattern_input(n, h, w):
    idx = np.indices((n, 3, h, w))
    ints = (idx[2] * 131 + idx[3] * 71 + idx[1] * 37 + idx[0] * 17) % 255
    return torch.from_numpy((ints.astype(np.float32) / np.float32(127.5) - np.float32(1)).astype(np.float32))


def top5(logits):
    return [row.topk(5).indices.tolist() for row in logits]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    cases = {}
    for name, block, layers, widths, stem, seed in [
        ("small_basic", BasicBlock, [2, 1, 1, 1], [8, 16, 24, 32], 8, 1),
        ("small_bottleneck", Bottleneck, [1, 2, 1, 1], [4, 8, 12, 16], 8, 2),
    ]:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        model = SmallResNet(block, layers, widths, stem, classes=10)
        randomise_bn(model, g)
        model.eval()
        x = torch.randn(2, 3, 64, 48, generator=g)
        logits = model(x)
        torch.save(model.state_dict(), OUT / f"{name}.pth")
        np.save(OUT / f"{name}.input.npy", x.numpy())
        np.save(OUT / f"{name}.logits.npy", logits.numpy())
        cases[name] = {
            "weights": f"{name}.pth", "input": f"{name}.input.npy", "logits": f"{name}.logits.npy",
            "block": block.__name__, "layers": layers, "widths": widths, "stem": stem, "classes": 10,
            "input_shape": list(x.shape), "top5": top5(logits), "max_abs_logit": float(logits.abs().max()),
        }
        print(f"{name}: logits {tuple(logits.shape)}, max |logit| {logits.abs().max():.4f}")

    if all((SHARED / f).exists() for f in ("resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth")):
        x = pattern_input(2, 224, 224)
        results = []
        for f in ("resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"):
            model = torchvision.models.resnet18()
            model.load_state_dict(torch.load(SHARED / f))
            model.eval()
            results.append(model(x))
        assert all(torch.equal(results[0], r) for r in results[1:]), "the three formats disagree"
        np.save(OUT / "resnet18-shared.logits.npy", results[0].numpy())
        cases["resnet18-shared"] = {
            "weights": "../shared/weights/resnet18-{tar,legacy,zip}.pth", "logits": "resnet18-shared.logits.npy",
            "input": "pattern: ((h*131 + w*71 + c*37 + n*17) % 255) / 127.5 - 1, float32",
            "input_shape": [2, 3, 224, 224], "top5": top5(results[0]),
            "max_abs_logit": float(results[0].abs().max()),
        }
        print(f"resnet18-shared: top-5 {top5(results[0])}")

        # End to end: a committed photograph through torchvision's eval transform, then the same model.
        from PIL import Image
        from torchvision import transforms as T
        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        image = "Tests/Fixtures/images/photo_grace_hopper.jpg"
        x = tf(Image.open(REPO / image).convert("RGB")).unsqueeze(0)
        logits = model(x)
        np.save(OUT / "resnet18-shared-image.logits.npy", logits.numpy())
        cases["resnet18-shared-image"] = {
            "weights": "../shared/weights/resnet18-zip.pth", "image": image,
            "transform": "Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet mean, std)",
            "logits": "resnet18-shared-image.logits.npy", "top5": top5(logits),
            "max_abs_logit": float(logits.abs().max()),
        }
        print(f"resnet18-shared-image: top-5 {top5(logits)}")
    else:
        print("../shared/weights absent: resnet18-shared not written")

    meta = {"generator": "Tests/Reference/make_golden.py", "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cases": cases,
            "tolerance": "max |Δ| <= 1e-4 * max |logit|, top-5 identical"}
    (OUT / "golden.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
