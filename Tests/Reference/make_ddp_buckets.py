"""DDP's gradient buckets for three torchvision networks, from torch 1.13's own assignment function.

    /usr/bin/python3 Tests/Reference/make_ddp_buckets.py

Writes Tests/Fixtures/train/ddp_buckets.json. No weights are needed (the networks are built untrained;
only names and sizes matter).

DistributedDataParallel rebuilds its buckets after the first iteration from the order in which the
backward pass made gradients ready, with torch.distributed._DEFAULT_FIRST_BUCKET_BYTES (1 MiB) for the
first bucket and bucket_cap_mb (25) for the others (Reducer::rebuild_buckets calls
compute_bucket_assignment_by_size with the rebuilt order as tensor_indices). pth2swt takes the ready
order to be the reverse of the parameter order. This script applies torch's function to that order for:
    resnet18 with every parameter trained,
    resnet18 trained from layer3 on (conv1, bn1, layer1, layer2 frozen),
    resnet50 and mobilenet_v2 with every parameter trained.

Fields: generator, torch_version, first_bucket_bytes, bucket_bytes, cases[name] = {"parameters": [[name,
count], ...] in model order (the trained ones), "buckets": [[name, ...], ...] in the order DDP reduces them}.
"""
import json
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision

OUT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "train" / "ddp_buckets.json"
FIRST = dist._DEFAULT_FIRST_BUCKET_BYTES
CAP = 25 * 1024 * 1024


def case(model, frozen_prefixes=()):
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith(tuple(frozen_prefixes))]
    order = list(reversed(range(len(named))))
    tensors = [named[i][1] for i in order]
    buckets, _ = dist._compute_bucket_assignment_by_size(tensors, [FIRST, CAP], [False] * len(tensors), order)
    return {"parameters": [[n, p.numel()] for n, p in named],
            "buckets": [[named[i][0] for i in b] for b in buckets]}


def main():
    torch.manual_seed(0)
    cases = {
        "resnet18": case(torchvision.models.resnet18()),
        "resnet18_from_layer3": case(torchvision.models.resnet18(), ("conv1.", "bn1.", "layer1.", "layer2.")),
        "resnet50": case(torchvision.models.resnet50()),
        "mobilenet_v2": case(torchvision.models.mobilenet_v2()),
    }
    out = {"generator": "Tests/Reference/make_ddp_buckets.py", "torch_version": torch.__version__,
           "first_bucket_bytes": FIRST, "bucket_bytes": CAP, "cases": cases}
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    for k, v in cases.items():
        print(k, [len(b) for b in v["buckets"]])


if __name__ == "__main__":
    main()
