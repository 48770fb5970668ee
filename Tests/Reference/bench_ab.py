"""Two pth2swt binaries on the same benchmark, rounds alternating, each side keeping its best median.

    python3 Tests/Reference/bench_ab.py --a OLD/pth2swt --b NEW/pth2swt [--rounds 5] -- bench infer --arch resnet18 ...

Runs `A ARGS --json` and `B ARGS --json` in turn, --rounds times (A first in odd rounds, B first in even
ones, so neither side always runs on a warmer machine), and prints each side's best median_ms, the
ratio B / A, and the CPU model (lscpu). With `bench infer --layers` it also prints each step's B / A,
paired within rounds (median and range over the rounds). Used to show that a change does not move a
speed: build the old commit into another directory (git worktree add /tmp/old COMMIT; swift build -c
release there) and pass both binaries.
"""
import argparse
import json
import statistics
import subprocess
import sys


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), "?")
    except OSError:
        return "?"


def run(binary, args):
    out = subprocess.run([binary] + args + ["--json"], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{binary} {' '.join(args)} failed ({out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="the baseline binary")
    p.add_argument("--b", required=True, help="the changed binary")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("args", nargs=argparse.REMAINDER, help="-- then the pth2swt arguments")
    o = p.parse_args()
    args = o.args[1:] if o.args[:1] == ["--"] else o.args
    best = {"A": float("inf"), "B": float("inf")}
    # With `bench infer --layers`, each step's B / A within a round (the two runs back to back), so a
    # host that speeds up or slows down between rounds moves both sides of each ratio.
    step_ratios = {}
    for r in range(o.rounds):
        order = [("A", o.a), ("B", o.b)] if r % 2 == 0 else [("B", o.b), ("A", o.a)]
        line, steps = [], {}
        for side, binary in order:
            result = run(binary, args)
            m = result["median_ms"]
            best[side] = min(best[side], m)
            steps[side] = {s["step"]: s["median_ms"] for s in result.get("steps", [])}
            line.append(f"{side} {m:.2f} ms")
        for name, a_ms in steps["A"].items():
            if name in steps["B"] and a_ms > 0:
                step_ratios.setdefault(name, []).append(steps["B"][name] / a_ms)
        print(f"round {r + 1}: " + ", ".join(line), flush=True)
    print(f"CPU: {cpu_model()}")
    print(f"args: {' '.join(args)}")
    if step_ratios:
        print("per step, B / A within each round: median [lowest .. highest]")
        for name, ratios in step_ratios.items():
            ratios.sort()
            print(f"  {name:44s} {statistics.median(ratios):.3f} [{ratios[0]:.2f} .. {ratios[-1]:.2f}]")
    print(f"best median: A {best['A']:.2f} ms, B {best['B']:.2f} ms, B / A = {best['B'] / best['A']:.3f}")


if __name__ == "__main__":
    main()
