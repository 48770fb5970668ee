#!/usr/bin/env python3
"""Data-parallel fine-tuning speed on one machine: 1 rank × T threads against T ranks × 1 thread.

    swift build -c release --product pth2swt
    python3 scripts/bench_data_parallel.py [--ranks 2] [--rounds 3] [--per-class 48] [--batch 8]
        [--freeze layer2] [--epochs 2] [--weights ../shared/weights/resnet18-zip.pth]
        [--data /usr/share/datasets/fashion-mnist] [--json]

Runs, alternating round by round so that a slow spell of the machine hits every side alike:
    one     pth2swt finetune --threads R --batch-size B          (one process, R kernel threads)
    overlap mpirun -np R pth2swt finetune --threads 1 --batch-size B/R --allreduce overlap
    after   the same with --allreduce after (every bucket allreduced after the backward pass)
    tcp     overlap with --mca btl tcp,self (the path between machines, here over loopback)
Each is the same run: resnet18 from --weights, Fashion-MNIST's first two classes (--per-class images
each), no augmentation, --freeze (layer3 on trains), a global batch of B images a step, --epochs epochs.
Training images per second are the mean over the epochs after the first (the first packs weights and
warms caches); the allreduce figures come from rank 0's `--json` (seconds a step inside the allreduce
calls, seconds the step waited for them after its backward pass, the share hidden).

Needs mpirun (Debian's openmpi-bin) and the release binary. Prints the CPU model (lscpu) first. As root,
mpirun gets --allow-run-as-root; with more ranks than cores, --oversubscribe. Not a test: nothing here
fails on a number.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown (no lscpu)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown").strip()
    flags = fields.get("Flags", "")
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name} (family {fields.get('CPU family', '?').strip()}, model {fields.get('Model', '?').strip()}), " \
           f"{os.cpu_count()} cores, {isa}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-class", type=int, default=48)
    p.add_argument("--batch", type=int, default=8, help="global batch (per rank: batch / ranks)")
    p.add_argument("--freeze", default="layer2")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--weights", default=os.path.join(REPO, "..", "shared", "weights", "resnet18-zip.pth"))
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--bin", default=os.path.join(REPO, ".build", "release", "pth2swt"))
    p.add_argument("--sides", default="one,overlap,after,tcp")
    p.add_argument("--mpirun-args", default="", help="more mpirun arguments, e.g. '--mca mpi_yield_when_idle 1'")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    a = p.parse_args()
    for path, what in [(a.bin, "the release binary (swift build -c release --product pth2swt)"),
                       (a.weights, "the weights"), (a.data, "the data set")]:
        if not os.path.exists(path):
            print(f"bench_data_parallel: {path} is absent: {what}", file=sys.stderr)
            return 2
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        print("bench_data_parallel: no mpirun (apt-get install openmpi-bin)", file=sys.stderr)
        return 2
    if a.batch % a.ranks:
        print(f"bench_data_parallel: --batch {a.batch} is not a multiple of --ranks {a.ranks}", file=sys.stderr)
        return 2
    base = [a.bin, "finetune", "--weights", a.weights, "--data", a.data, "--classes", "2", "--per-class",
            str(a.per_class), "--no-augment", "--freeze", a.freeze, "--epochs", str(a.epochs), "--json"]
    launcher = [mpirun, "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else []) \
        + a.mpirun_args.split()
    per_rank = a.batch // a.ranks
    commands = {
        "one": base + ["--threads", str(a.ranks), "--batch-size", str(a.batch)],
        "overlap": launcher + ["-np", str(a.ranks)] + base + ["--threads", "1", "--batch-size", str(per_rank),
                                                              "--allreduce", "overlap"],
        "after": launcher + ["-np", str(a.ranks)] + base + ["--threads", "1", "--batch-size", str(per_rank),
                                                            "--allreduce", "after"],
        "tcp": launcher + ["--mca", "btl", "tcp,self", "-np", str(a.ranks)] + base
        + ["--threads", "1", "--batch-size", str(per_rank), "--allreduce", "overlap"],
    }
    sides = [s for s in a.sides.split(",") if s]
    for s in sides:
        if s not in commands:
            print(f"bench_data_parallel: unknown side {s}; one of {', '.join(commands)}", file=sys.stderr)
            return 2
    print(f"CPU: {cpu_model()}")
    print(f"resnet18, --freeze {a.freeze}, global batch {a.batch}, {2 * a.per_class} training images, "
          f"{a.epochs} epochs, {a.rounds} rounds; {a.ranks} ranks × 1 thread against 1 rank × {a.ranks} threads")
    results = {s: [] for s in sides}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(a.rounds):
            for s in sides:
                run = subprocess.run(commands[s], capture_output=True, text=True, cwd=scratch)
                if run.returncode != 0:
                    print(f"bench_data_parallel: {s} failed ({run.returncode}):\n{run.stderr[-2000:]}",
                          file=sys.stderr)
                    return 1
                o = json.loads(run.stdout)
                later = o["epochs"][1:] or o["epochs"]
                ips = statistics.mean(e["images_per_second"] for e in later)
                results[s].append({"images_per_second": ips, "allreduce": o.get("allreduce")})
                ar = o.get("allreduce")
                extra = "" if ar is None else \
                    f", allreduce {ar['seconds_per_step'] * 1e3:.1f} ms a step, " \
                    f"{ar['exposed_seconds_per_step'] * 1e3:.1f} ms waited for ({ar['hidden_fraction'] * 100:.0f}% hidden)"
                print(f"round {r + 1} {s:8s} {ips:7.1f} img/s{extra}", flush=True)
    print()
    print("| side | img/s (median) | vs one | allreduce ms/step | waited ms/step | hidden |")
    print("|---|---|---|---|---|---|")
    summary = {}
    ref = statistics.median(x["images_per_second"] for x in results["one"]) if "one" in results else None
    for s in sides:
        ips = statistics.median(x["images_per_second"] for x in results[s])
        ars = [x["allreduce"] for x in results[s] if x["allreduce"]]
        row = {"images_per_second": ips, "vs_one": ips / ref if ref else None}
        if ars:
            row["allreduce_ms_per_step"] = statistics.median(x["seconds_per_step"] for x in ars) * 1e3
            row["waited_ms_per_step"] = statistics.median(x["exposed_seconds_per_step"] for x in ars) * 1e3
            row["hidden_fraction"] = statistics.median(x["hidden_fraction"] for x in ars)
            row["bytes_per_step"] = ars[0]["bytes_per_step"]
        summary[s] = row
        cells = [f"{ips:.1f}", f"{ips / ref:.2f}×" if ref else "-"]
        if ars:
            cells += [f"{row['allreduce_ms_per_step']:.1f}", f"{row['waited_ms_per_step']:.1f}",
                      f"{row['hidden_fraction'] * 100:.0f}%"]
        else:
            cells += ["-", "-", "-"]
        print(f"| {s} | " + " | ".join(cells) + " |")
    if a.json:
        print(json.dumps({"cpu": cpu_model(), "sides": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
