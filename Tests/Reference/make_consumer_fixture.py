#!/usr/bin/env python3
"""The committed fixture that Tests/Consumer (the README's "In Swift" example, built as a versioned
dependency) runs on: a full torchvision resnet18 state dict small enough to commit.

Real weights are 46.8 MB of incompressible floats, so every tensor here is a deterministic periodic
pattern instead (scaled like a fan-in initialisation; BatchNorm variances positive), and the zip's
entries are deflated, which torch.load and pth2swt both read (fc.weight's is stored; fc.bias is not a
pattern: see pattern()). The logits mean nothing, but they are
torch's: this script runs torchvision's resnet18 on the fixture image through torchvision's own
preprocessing (Resize(256), CenterCrop(224), ToTensor, Normalize) and records the top-5 labels, which
scripts/consumer.sh checks the example's printed label against.

    /usr/bin/python3 Tests/Reference/make_consumer_fixture.py     (torch 1.13, torchvision 0.14)

Writes Tests/Consumer/Fixtures/resnet18-patterned.pth and resnet18-patterned.expected.json.
Deterministic: running it again gives the same bytes.
"""
import io
import json
import math
import os
import zipfile

import torch
import torchvision
from PIL import Image
from torchvision import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Consumer", "Fixtures")
IMAGE = os.path.join(ROOT, "Tests", "Fixtures", "images", "geom_300x200.jpg")


def pattern(name, shape):
    n = math.prod(shape) if shape else 1
    i = torch.arange(n, dtype=torch.float64)
    # Period 97 (388 bytes, well inside deflate's window), a different phase per tensor.
    phase = sum(map(ord, name)) % 97
    u = ((i * 37 + phase) % 97) / 96.0 - 0.5          # in [-0.5, 0.5]
    if name == "fc.bias":
        # The head's rows repeat with the pattern's period, so rows would tie; distinct biases (a
        # permutation of 0..999, spaced 0.002) break the ties by a margin far above rounding.
        v = 0.002 * ((i * 7919) % 1000)
    elif name.endswith("running_var"):
        v = 1.0 + u                                   # in [0.5, 1.5]
    elif name.endswith("running_mean") or name.endswith(".bias"):
        v = 0.1 * u
    elif name.endswith("num_batches_tracked"):
        return torch.tensor(0)
    elif len(shape) == 1:                             # BatchNorm weight
        v = 1.0 + 0.2 * u
    else:                                             # conv / linear weight: about 1/sqrt(fan in)
        fan_in = math.prod(shape[1:])
        v = u * (2.0 * math.sqrt(3.0 / fan_in))
    return v.to(torch.float32).reshape(shape)


def main():
    model = torchvision.models.resnet18()
    sd = model.state_dict()
    patterned = {k: pattern(k, list(t.shape)).to(t.dtype) for k, t in sd.items()}
    model.load_state_dict(patterned)
    model.eval()

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    stored = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "resnet18-patterned.pth")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in stored.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            # The biggest entry (fc.weight, 2 MB) stays stored: the file then inflates about 20 times,
            # inside the reader's default zip-bomb cap (LoadOptions.maxInflationRatio, 32), and both
            # entry kinds are read.
            head = info.file_size == 1000 * 512 * 4
            entry.compress_type = zipfile.ZIP_STORED if head else zipfile.ZIP_DEFLATED
            z.writestr(entry, stored.read(info.filename))

    check = torch.load(path)
    assert all(torch.equal(check[k], v) for k, v in model.state_dict().items())

    preprocess = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    x = preprocess(Image.open(IMAGE).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        logits = model(x)[0]
    top = torch.topk(logits, 5)
    expected = {
        "generator": "Tests/Reference/make_consumer_fixture.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "weights": "resnet18-patterned.pth",
        "image": "Tests/Fixtures/images/geom_300x200.jpg",
        "top5_indices": top.indices.tolist(),
        "top5_logits": [round(v, 5) for v in top.values.tolist()],
        "margin_top1_top2": round(float(top.values[0] - top.values[1]), 5),
    }
    with open(os.path.join(OUT, "resnet18-patterned.expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes; top-5 {expected['top5_indices']}, "
          f"margin {expected['margin_top1_top2']}")


if __name__ == "__main__":
    main()
