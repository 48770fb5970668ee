"""How far torch 1.13 differs from itself on each mode of backbone.json: the bound below which no float32
implementation can be held to torch (BackboneTrainingTests cites it).

    /usr/bin/python3 Tests/Reference/measure_spread.py [MODE …]

Runs make_train_golden.train_backbone for every mode three ways: float32 at 1 thread (as the golden),
float32 at 2 threads (other summation orders) and float64. Prints, for float32-1 against each of the
others, the largest relative loss difference over the 20 steps and the largest difference of any float
state tensor relative to that tensor's largest value. Measured 2026-11-23 (torch 1.13):

    mode                      vs 2 threads                 vs float64
    through_layer2            loss 4.7e-07 state 4.5e-07   loss 1.1e-06 state 1.5e-06
    through_layer2_bn_train   loss 4.1e-07 state 4.5e-07   loss 1.2e-05 state 7.4e-05
    low_lr                    loss 5.8e-03 state 9.3e-03   loss 2.3e-02 state 5.0e-02
    low_lr_fixed_conv1        loss 1.2e-06 state 8.1e-07   loss 5.8e-06 state 1.3e-05
    l2sp                      loss 3.1e-06 state 4.0e-06   loss 3.2e-06 state 5.0e-06
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_train_golden as g  # noqa: E402


def spread(a, b):
    (ma, la), (mb, lb) = a, b
    sa, sb = ma.state_dict(), mb.state_dict()
    loss = max(abs(x - y) / abs(y) for x, y in zip(la, lb))
    state = max((v.double() - sb[k].double()).abs().max().item() / max(sb[k].abs().max().item(), 1e-30)
                for k, v in sa.items() if v.is_floating_point())
    return f"loss {loss:.1e} state {state:.1e}"


def main():
    sd = torch.load(g.SHARED, map_location="cpu")
    x_all, y_all = g.pattern_images()
    head = g.seeded_head()
    print(f"{'mode':<25} {'vs 2 threads':<28} vs float64")
    modes = sys.argv[1:] or g.BACKBONE_MODES
    for mode in modes:
        runs = []
        for threads, dtype in [(1, torch.float32), (2, torch.float32), (1, torch.float64)]:
            torch.set_num_threads(threads)
            model, losses, _, _ = g.train_backbone(mode, sd, head, x_all, y_all, dtype)
            runs.append((model, losses))
        print(f"{mode:<25} {spread(runs[0], runs[1]):<28} {spread(runs[0], runs[2])}", flush=True)


if __name__ == "__main__":
    main()
