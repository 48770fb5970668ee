"""The same frozen-backbone fine-tuning run in torch 1.13 / torchvision 0.14, for `pth2swt finetune`'s speed.

    /usr/bin/python3 Tests/Reference/bench_finetune.py [--weights ../shared/weights/resnet18-zip.pth]
        [--per-class 100] [--epochs 3] [--batch-size 32] [--threads 2]

Fashion-MNIST from Debian's IDX files (/usr/share/datasets/fashion-mnist), labels 0 and 1, the first
--per-class images of each (as `--classes 2 --per-class N`), each gray image made RGB, then Resize(256),
CenterCrop(224), ToTensor, Normalize(ImageNet); resnet18 with fc = Linear(512, 2), every other parameter
frozen, model.eval(); SGD(lr 0.01, momentum 0.9, weight_decay 1e-3) on fc; shuffled DataLoader with
num_workers=0. A plain torch loop has no feature cache, so every epoch runs the backbone. Prints each
epoch's seconds and images per second.
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms as T

p = argparse.ArgumentParser()
p.add_argument("--weights", default="../shared/weights/resnet18-zip.pth")
p.add_argument("--per-class", type=int, default=100)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def idx(path):
    raw = gzip.open(path).read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


root = "/usr/share/datasets/fashion-mnist/"
images, labels = idx(root + "train-images-idx3-ubyte.gz"), idx(root + "train-labels-idx1-ubyte.gz")
keep, taken = [], {0: 0, 1: 0}
for i, y in enumerate(labels):
    if y in taken and taken[y] < a.per_class:
        taken[y] += 1
        keep.append(i)
tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


class DS(torch.utils.data.Dataset):
    def __len__(self):
        return len(keep)

    def __getitem__(self, k):
        i = keep[k]
        return tf(Image.fromarray(images[i], mode="L").convert("RGB")), int(labels[i])


model = torchvision.models.resnet18()
model.load_state_dict(torch.load(a.weights, map_location="cpu"))
for q in model.parameters():
    q.requires_grad_(False)
model.fc = nn.Linear(512, 2)
model.eval()
opt = torch.optim.SGD(model.fc.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3)
loader = torch.utils.data.DataLoader(DS(), batch_size=a.batch_size, shuffle=True, num_workers=0)
print(f"torch {torch.__version__}, {a.threads} threads, {len(keep)} images, batch {a.batch_size}")
for epoch in range(1, a.epochs + 1):
    t0 = time.perf_counter()
    for x, y in loader:
        loss = nn.CrossEntropyLoss()(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    s = time.perf_counter() - t0
    print(f"epoch {epoch}: {s:.3f} s, {len(keep) / s:.2f} img/s, last loss {loss.item():.4f}")
