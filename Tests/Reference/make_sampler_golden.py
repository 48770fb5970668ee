#!/usr/bin/env python3
"""torch 1.13's sampling order for data-parallel training, as goldens for the Swift Training module.

    /usr/bin/python3 Tests/Reference/make_sampler_golden.py

Writes Tests/Fixtures/train/sampler.json:
  generator, torch_version,
  randperm:  [{n, seed, perm}]: torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
  sampler:   [{count, replicas, seed, epoch, shuffle, drop_last, num_samples, total_size, ranks}]: for
             each rank, list(DistributedSampler(range(count), num_replicas=replicas, rank=rank,
             shuffle=shuffle, seed=seed, drop_last=drop_last) after set_epoch(epoch)).
Deterministic: no randomness beyond the seeds listed.
"""
import json
import sys
from pathlib import Path

import torch
from torch.utils.data.distributed import DistributedSampler

OUT = Path(__file__).resolve().parents[1] / "Fixtures/train/sampler.json"


def main():
    randperm = []
    for n, seed in [(1, 0), (2, 0), (10, 0), (37, 5), (100, 42), (1000, 7), (5, 2**32 + 3), (64, 2**40 + 11)]:
        g = torch.Generator()
        g.manual_seed(seed)
        randperm.append({"n": n, "seed": seed, "perm": torch.randperm(n, generator=g).tolist()})
    sampler = []
    for count, replicas, seed, epoch, shuffle, drop_last in [
        (10, 1, 0, 0, True, False), (10, 2, 0, 0, True, False), (10, 3, 0, 0, True, False),
        (10, 3, 0, 1, True, False), (10, 3, 0, 1, True, True), (10, 4, 17, 2, True, False),
        (10, 4, 17, 2, True, True), (11, 3, 5, 0, False, False), (11, 3, 5, 0, False, True),
        (2, 3, 1, 0, True, False), (50, 3, 123, 9, True, False), (50, 7, 123, 9, True, True),
    ]:
        ranks = []
        s = None
        for rank in range(replicas):
            s = DistributedSampler(list(range(count)), num_replicas=replicas, rank=rank, shuffle=shuffle,
                                   seed=seed, drop_last=drop_last)
            s.set_epoch(epoch)
            ranks.append(list(s))
        sampler.append({"count": count, "replicas": replicas, "seed": seed, "epoch": epoch, "shuffle": shuffle,
                        "drop_last": drop_last, "num_samples": s.num_samples, "total_size": s.total_size,
                        "ranks": ranks})
    out = {"generator": "Tests/Reference/make_sampler_golden.py", "torch_version": torch.__version__,
           "randperm": randperm, "sampler": sampler}
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
