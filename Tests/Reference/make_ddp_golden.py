"""Data-parallel training goldens from torch 1.13's DistributedDataParallel (gloo, CPU, one machine).

    /usr/bin/python3 Tests/Reference/make_ddp_golden.py

Needs ../shared/weights/resnet18-zip.pth (relative to the repository); when it is absent the script prints
why and exits 0 without writing anything. Writes Tests/Fixtures/train/ddp.json (compact JSON).

The model, head and optimizer are make_train_golden.py's (its helpers are imported): torchvision resnet18
with that state dict, fc replaced by Linear(512, 2) (xavier_uniform_ weight from torch.manual_seed(0), zero
bias), SGD(momentum 0.9) over layer3, layer4 and fc; conv1, bn1, layer1 and layer2 frozen (requires_grad
False). Modes:
    through_layer2           lr 5e-4; the frozen stages in eval() mode, layer3/layer4's BatchNorms in train()
    through_layer2_bn_train  lr 5e-4; the frozen stages left in train() mode too: their BatchNorms normalise
                             with the rank's batch statistics and update their running statistics, γ/β fixed
    through_layer2_bn_eval   lr 1e-4; the whole model in eval() mode: every BatchNorm normalises with its
                             (never changing) running statistics, layer3/layer4's γ/β still train. Here the
                             loss of a batch is a plain mean over its images, so N ranks must reproduce the
                             one-process run up to summation order. (At lr 5e-4 this mode is chaotic in
                             float32: losses 1.1, 4.0, 0.6, 2.9, ...; torch's own float32 and float64 runs
                             part by 2e-4 and a different gradient summation order by up to 6e-2. At 1e-4 they
                             agree to 3e-6.)
In the first two modes layer3/layer4's BatchNorms normalise with per-rank batch statistics (3 or 2 images
instead of 6), so N ranks are not the one-process run: see the measured differences below.

Data: M = 24 images [3, 64, 64] (make_train_golden.py's integer pattern, n = 0..23) with labels n % 2:
    x[n, c, h, w] = ((h * 131 + w * 71 + c * 37 + n * n * 53 + (h * w * (n + 1)) % 97) % 255) / 127.5 - 1
Each rank r of N: DistributedSampler(dataset, num_replicas=N, rank=r, shuffle=True, seed=7,
drop_last=False), sampler.set_epoch(e) before epoch e = 0, 1, 2, ... (the first epoch is 0);
DataLoader(batch_size=6 / N, sampler=sampler, shuffle=False, drop_last=False). K = 20 optimizer steps in all,
4 per epoch (epochs 0..4, every epoch complete). So epoch e's permutation is
torch.randperm(24, generator=torch.Generator().manual_seed(7 + e)); rank r takes perm[r::N] and the epoch's
step s takes its items [s*b, (s+1)*b); the union over ranks of step s is perm[6s : 6s+6], the N = 1 batch.
Processes: torch.multiprocessing.spawn, dist.init_process_group("gloo", init_method="file://<tmp>"),
torch.set_num_threads(1) and torch.manual_seed(0) in each; DistributedDataParallel(model) with defaults
(broadcast_buffers=True, default bucket_cap_mb, find_unused_parameters=False); the modes are set on the
module before wrapping and never reset. Loss nn.CrossEntropyLoss() (mean over the rank's batch);
optimizer.zero_grad(), loss.backward(), optimizer.step() per step.

Fields:
  generator, torch_version, torchvision_version, weights
  setup: M, seed (sampler), global_batch, steps (K), steps_per_epoch, lr, mode_lr (modes with another lr),
         momentum, labels, backend, world_sizes, bn_probe (the BatchNorm of rank_bn)
  cases[mode][N] for N in "1", "2", "3":
    world_size, batch (per rank), ddp (false for N = 1: one plain process, no process group and no DDP,
        the same sampler with num_replicas=1, rank=0 and batch 6 — the global-batch reference)
    epochs        per step, the epoch number passed to set_epoch
    indices       per step, per rank, the dataset indices of that rank's batch (in batch order)
    rank_losses   per step, per rank, the rank's local loss (loss.item(), float32 mean over its batch)
    losses        per step, the mean of rank_losses (math.fsum / N in float64)
    changed       rank 0's final state dict: each float tensor outside fc that differs from the loaded
                  weights (trained parameters and running statistics): {norm (float64), samples at
                  indices floor(i*(n-1)/7), i = 0..7, indices} — backbone.json's format
    fc_weight     rank 0's final fc.weight in that format; fc_bias its 2 values
    num_batches_tracked  rank 0's final counter of each BatchNorm whose counter moved
    rank_bn       per rank, the final running_mean and running_var norms (float64) of layer4.1.bn2
    params_equal_across_ranks   whether every parameter is bitwise equal on all ranks at the end
    buffers_equal_across_ranks  whether every buffer is bitwise equal on all ranks at the end
    buffer_rank_spread          the largest |rank r − rank 0| over all running statistics at the end
    (N > 1 only:)
    buffers_equal_before_last_forward  whether the buffers the wrapped module started its last forward from
                  (seen by a forward pre-hook, i.e. after DDP's broadcast) were bitwise equal on all ranks
    grad_average  after step 0's backward, the largest |DDP's gradient − mean of the ranks' local
                  gradients| over all trained parameters, the mean formed two ways: "sum_then_divide"
                  sum(g_r) / N and "divide_then_sum" sum(g_r / N) (local gradients from an undistributed
                  copy of the model on the same batch, gathered with dist.all_gather)
    vs_one_process  the largest |difference| from the N = 1 case: "loss" over the per-step mean losses,
                  "loss_step0" at step 0, "params" elementwise over all trained parameters (fc included),
                  "running_stats" elementwise over the running means and variances that changed, each but
                  the losses also "..._relative" (divided by the largest |value| of the N = 1 tensor)
    vs_simulation  the largest |difference| from simulate(): DDP's semantics as stated below replayed in
                  one process (each rank's forward in turn from rank 0's buffers, loss_r / N backpropagated
                  into the same .grad, rank 0's buffers kept), in "float32" and in "float64": "loss" over
                  all rank losses, "params", "running_stats" (rank 0's), "rank_running_stats" (every rank's
                  final buffers). float32 shows the semantics are exactly these; float64 shows how far
                  rounding alone moves this run, i.e. the tolerance a reimplementation can be held to.

What torch gives (measured by this script, torch 1.13.0a0, gloo, 2 cores):
  - set_epoch numbering starts at 0; the sampler's indices are those of sampler.json's rule.
  - DDP averages gradients: after backward every trained parameter's .grad is the mean over ranks of the
    local gradients — bitwise for N = 2 (either formula), to summation order for N = 3 (≤ 3e-8 in the
    first two modes, ≤ 2.4e-7 in through_layer2_bn_eval, where the gradients are larger). Parameters stay
    bitwise equal on all ranks.
  - broadcast_buffers=True: at each forward DDP first broadcasts rank 0's buffers (running statistics and
    num_batches_tracked) to every rank, then runs the module, which updates them with the rank's own batch.
    So the other ranks' updates are thrown away each step, and rank 0's running statistics are those of a
    run whose running statistics only ever saw rank 0's part of each batch. Nothing broadcasts after the last
    forward, so at the end every rank holds the common state updated with its own last batch: the running
    statistics differ per rank (buffers_equal_across_ranks false, rank_bn, buffer_rank_spread 0.38 (N=2),
    0.79 (N=3) in through_layer2; 0.033, 0.059 in through_layer2_bn_train), while
    buffers_equal_before_last_forward is true. In through_layer2_bn_eval nothing updates them: all equal.
  - vs_simulation float32: 0 for N = 2 (bitwise) in every mode; N = 3 within 2.4e-7 in the losses,
    6e-8 in the parameters, 1.4e-6 in the running statistics (4e-6 in the bn_eval losses).
    vs_simulation float64 (rounding sensitivity): through_layer2 1.3e-4 (N=2) / 1.4e-6 (N=3) in the loss,
    2.2e-5 / 1.7e-6 in the parameters, 3.7e-4 / 1.5e-4 in the running statistics; through_layer2_bn_train
    5.8e-7 / 1.3e-5 loss, 2.1e-6 / 8.1e-6 params, 2.0e-6 / 1.1e-5 running statistics; through_layer2_bn_eval
    5.4e-6 / 7.2e-6 loss, 5.8e-7 params.
  - vs_one_process (global-batch equivalence), N = 2 / N = 3:
        through_layer2           loss 1.7e-1 / 1.9e-1 (step 0: 8.2e-3 / 9.8e-3), params 1.5e-3 / 1.9e-3
                                 (relative 2.6e-2 / 6.5e-2), running statistics 0.65 / 0.77 (rel. 0.15 / 0.26)
        through_layer2_bn_train  loss 1.8e-1 / 1.5e-1 (step 0: 1.0e-2 / 1.6e-2), params 1.2e-3 / 1.4e-3
                                 (rel. 1.4e-2 / 9.8e-3), running statistics 5.4e-2 / 0.11 (rel. 0.29 / 0.32)
        through_layer2_bn_eval   loss 1.8e-6 / 1.7e-6 (step 0: 3.2e-8 / 3.2e-8), params 6.0e-8 / 6.0e-8
                                 (rel. 1.3e-6 / 2.8e-6); running statistics unchanged
    i.e. with train-mode BatchNorm the N-rank run is a different computation (per-rank batch statistics),
    not the one-process run up to summation order; with eval-mode BatchNorm it is equal up to summation
    order.
Deterministic: two runs write identical bytes (checked on this machine). Run time about 100 s on 2 cores
(the float64 simulations take most of it).
"""
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_train_golden import SHARED, floats, resnet_with_head, samples, seeded_head  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "train" / "ddp.json"

M = 24
SEED = 7
GLOBAL_BATCH = 6
STEPS = 20
LR = 5e-4
# through_layer2_bn_eval at lr 5e-4 is chaotic in float32 (losses 1.1 -> 4.0 -> 0.6 -> 2.9 ...; torch's own
# float32 and float64 runs part by 2e-4, and a different gradient summation order by up to 6e-2), so it runs
# at 1e-4, where they agree to 3e-6.
MODE_LR = {"through_layer2_bn_eval": 1e-4}
MOMENTUM = 0.9
MODES = ["through_layer2", "through_layer2_bn_train", "through_layer2_bn_eval"]
WORLD_SIZES = [1, 2, 3]
BN_PROBE = "layer4.1.bn2"

torch.set_num_threads(1)


def pattern_images(count):
    n, c, h, w = torch.meshgrid(torch.arange(count), torch.arange(3), torch.arange(64), torch.arange(64),
                                indexing="ij")
    v = (h * 131 + w * 71 + c * 37 + n * n * 53 + (h * w * (n + 1)) % 97) % 255
    return (v.to(torch.float32) / 127.5 - 1), torch.arange(count) % 2


def make_model(mode):
    """make_train_golden.py's through_layer2 / through_layer2_bn_train model, before any step."""
    sd = torch.load(SHARED, map_location="cpu")
    model = resnet_with_head(sd, seeded_head())
    if mode == "through_layer2_bn_eval":
        model.eval()
    else:
        model.train()
    for m in [model.conv1, model.bn1, model.layer1, model.layer2]:
        if mode == "through_layer2":
            m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return model


def train(mode, world, rank, model, step_hook=None):
    """K steps of `model` (DDP-wrapped or plain) on rank `rank` of `world`; per step epoch, indices, loss."""
    x, y = pattern_images(M)
    dataset = TensorDataset(x, y, torch.arange(M))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=SEED, drop_last=False)
    loader = DataLoader(dataset, batch_size=GLOBAL_BATCH // world, sampler=sampler, shuffle=False, drop_last=False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=MODE_LR.get(mode, LR), momentum=MOMENTUM)
    epochs, indices, losses = [], [], []
    epoch = 0
    while len(losses) < STEPS:
        sampler.set_epoch(epoch)
        for xb, yb, ib in loader:
            if len(losses) == STEPS:
                break
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(xb), yb)
            loss.backward()
            if step_hook is not None and not losses:
                step_hook(xb, yb)
            opt.step()
            epochs.append(epoch)
            indices.append(ib.tolist())
            losses.append(loss.item())
        epoch += 1
    return epochs, indices, losses


def simulate(mode, world, dtype):
    """DDP's semantics replayed in one process: each step every rank's forward starts from rank 0's buffers
    (broadcast_buffers), rank r's loss is the mean over perm[r::world] of the step's global batch, the
    gradient is sum_r d(loss_r / world), and the buffers kept are rank 0's. Per step the rank losses; at the
    end the state dict and each rank's buffers after its last forward."""
    model = make_model(mode).to(dtype)
    x, y = pattern_images(M)
    x = x.to(dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=MODE_LR.get(mode, LR), momentum=MOMENTUM)
    b = GLOBAL_BATCH // world
    rank_losses, rank_buffers = [], []
    for k in range(STEPS):
        epoch, s = divmod(k, M // GLOBAL_BATCH)
        g = torch.Generator()
        g.manual_seed(SEED + epoch)
        perm = torch.randperm(M, generator=g).tolist()
        start = {n: v.clone() for n, v in model.named_buffers()}
        opt.zero_grad()
        losses, rank_buffers = [0.0] * world, [None] * world
        for r in list(range(1, world)) + [0]:
            with torch.no_grad():
                for n, v in model.named_buffers():
                    v.copy_(start[n])
            idx = perm[r::world][s * b:(s + 1) * b]
            loss = nn.CrossEntropyLoss()(model(x[idx]), y[idx])
            (loss / world).backward()
            losses[r] = loss.item()
            rank_buffers[r] = {n: v.clone() for n, v in model.named_buffers()}
        opt.step()
        rank_losses.append(losses)
    return rank_losses, model.state_dict(), rank_buffers


def worker(rank, world, mode, init_file, out_dir):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dist.init_process_group("gloo", init_method="file://" + init_file, world_size=world, rank=rank)
    model = make_model(mode)
    local = make_model(mode)  # an undistributed copy for step 0's local gradient
    ddp = nn.parallel.DistributedDataParallel(model)
    check = {}
    seen = {}
    # runs inside DDP's forward, after its buffer broadcast: the buffers the module actually starts from
    model.register_forward_pre_hook(lambda m, args: seen.update(
        {k: v.clone() for k, v in m.named_buffers()}))

    def step_hook(xb, yb):
        nn.CrossEntropyLoss()(local(xb), yb).backward()
        worst_a = worst_b = 0.0
        for (name, p), q in zip(model.named_parameters(), local.parameters()):
            if not p.requires_grad:
                continue
            gathered = [torch.empty_like(q.grad) for _ in range(world)]
            dist.all_gather(gathered, q.grad)
            a = torch.stack(gathered).sum(0) / world
            b = torch.stack([g / world for g in gathered]).sum(0)
            worst_a = max(worst_a, float((p.grad - a).abs().max()))
            worst_b = max(worst_b, float((p.grad - b).abs().max()))
        check.update({"sum_then_divide": worst_a, "divide_then_sum": worst_b})

    epochs, indices, losses = train(mode, world, rank, ddp, step_hook)
    torch.save({"epochs": epochs, "indices": indices, "losses": losses, "grad_average": check, "last_seen": seen,
                "state": {k: v.clone() for k, v in model.state_dict().items()}},
               os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def run_world(mode, world):
    """Per-rank results: a plain process for world 1, else `world` spawned DDP processes."""
    if world == 1:
        model = make_model(mode)
        epochs, indices, losses = train(mode, 1, 0, model)
        return [{"epochs": epochs, "indices": indices, "losses": losses, "grad_average": {}, "last_seen": {},
                 "state": {k: v.clone() for k, v in model.state_dict().items()}}]
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.spawn(worker, args=(world, mode, init_file, tmp), nprocs=world, join=True)
        return [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]


def is_running_stat(name):
    return name.endswith("running_mean") or name.endswith("running_var")


def max_diff(a, b, names):
    if not names:
        return 0.0, 0.0
    absolute = max(float((a[k].double() - b[k].double()).abs().max()) for k in names)
    relative = max(float((a[k].double() - b[k].double()).abs().max() / b[k].double().abs().max()) for k in names)
    return absolute, relative


def case(mode, world, ranks, initial, param_names, buffer_names, reference):
    r0 = ranks[0]
    state = r0["state"]
    steps = len(r0["losses"])
    rank_losses = [[ranks[r]["losses"][k] for r in range(world)] for k in range(steps)]
    losses = [math.fsum(row) / world for row in rank_losses]
    out = {
        "world_size": world, "batch": GLOBAL_BATCH // world, "ddp": world > 1,
        "epochs": r0["epochs"],
        "indices": [[ranks[r]["indices"][k] for r in range(world)] for k in range(steps)],
        "rank_losses": rank_losses, "losses": losses,
        "changed": {k: samples(v) for k, v in state.items()
                    if not k.startswith("fc.") and v.dtype == torch.float32 and not torch.equal(initial[k], v)},
        "fc_weight": samples(state["fc.weight"]), "fc_bias": floats(state["fc.bias"]),
        "num_batches_tracked": {k: int(v) for k, v in state.items()
                                if k.endswith("num_batches_tracked") and int(v) != int(initial[k])},
        "rank_bn": [{"running_mean_norm": float(rk["state"][BN_PROBE + ".running_mean"].double().norm()),
                     "running_var_norm": float(rk["state"][BN_PROBE + ".running_var"].double().norm())}
                    for rk in ranks],
        "params_equal_across_ranks": all(torch.equal(rk["state"][k], state[k]) for rk in ranks for k in param_names),
        "buffers_equal_across_ranks": all(torch.equal(rk["state"][k], state[k]) for rk in ranks for k in buffer_names),
        "buffer_rank_spread": max(float((rk["state"][k].double() - state[k].double()).abs().max())
                                  for rk in ranks for k in buffer_names if is_running_stat(k)),
    }
    if world > 1:
        out["buffers_equal_before_last_forward"] = all(
            torch.equal(rk["last_seen"][k], r0["last_seen"][k]) for rk in ranks for k in buffer_names)
        out["grad_average"] = {k: max(rk["grad_average"][k] for rk in ranks) for k in r0["grad_average"]}
        ref_state = reference["state"]
        stats = [k for k in state if is_running_stat(k) and not torch.equal(initial[k], ref_state[k])]
        p_abs, p_rel = max_diff(state, ref_state, param_names)
        s_abs, s_rel = max_diff(state, ref_state, stats)
        ref_losses = reference["losses"]
        out["vs_one_process"] = {
            "loss": max(abs(a - b) for a, b in zip(losses, ref_losses)),
            "loss_step0": abs(losses[0] - ref_losses[0]),
            "params": p_abs, "params_relative": p_rel, "running_stats": s_abs, "running_stats_relative": s_rel}
        out["vs_simulation"] = {}
        for name, dtype in [("float32", torch.float32), ("float64", torch.float64)]:
            sim_losses, sim_state, sim_buffers = simulate(mode, world, dtype)
            stats = [k for k in state if is_running_stat(k) and not torch.equal(initial[k], state[k])]
            out["vs_simulation"][name] = {
                "loss": max(abs(a - b) for row, sim in zip(rank_losses, sim_losses) for a, b in zip(row, sim)),
                "params": max_diff(state, sim_state, param_names)[0],
                "running_stats": max_diff(state, sim_state, stats)[0],
                "rank_running_stats": max((max_diff(rk["state"], sim_buffers[r], stats)[0]
                                           for r, rk in enumerate(ranks)), default=0.0)}
    return out


def main():
    if not SHARED.exists():
        print(f"skipped ddp.json: {SHARED} is absent")
        return
    began = time.time()
    cases = {}
    for mode in MODES:
        model = make_model(mode)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        param_names = [n for n, p in model.named_parameters() if p.requires_grad]
        buffer_names = [n for n, _ in model.named_buffers()]
        cases[mode] = {}
        reference = None
        for world in WORLD_SIZES:
            ranks = run_world(mode, world)
            if world == 1:
                reference = ranks[0]
            c = case(mode, world, ranks, initial, param_names, buffer_names, reference)
            cases[mode][str(world)] = c
            extra = f"; vs N=1 {c['vs_one_process']}; grad {c['grad_average']}" if world > 1 else ""
            print(f"{mode} N={world}: loss {c['losses'][0]:.6f} → {c['losses'][-1]:.6f}; "
                  f"buffers equal across ranks {c['buffers_equal_across_ranks']} "
                  f"(spread {c['buffer_rank_spread']:.3g}){extra}", flush=True)
    out = {"generator": "Tests/Reference/make_ddp_golden.py", "torch_version": torch.__version__,
           "torchvision_version": torchvision.__version__, "weights": "../shared/weights/resnet18-zip.pth",
           "setup": {"M": M, "seed": SEED, "global_batch": GLOBAL_BATCH, "steps": STEPS,
                     "steps_per_epoch": M // GLOBAL_BATCH, "lr": LR, "mode_lr": MODE_LR, "momentum": MOMENTUM,
                     "labels": "n % 2", "backend": "gloo", "world_sizes": WORLD_SIZES, "bn_probe": BN_PROBE},
           "cases": cases}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) in {time.time() - began:.1f} s")


if __name__ == "__main__":
    main()
