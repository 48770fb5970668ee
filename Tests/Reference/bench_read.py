#!/usr/bin/env -S /usr/bin/python3
"""Read-speed comparison: torch.load vs. `pth2swt bench read` on the full ResNet-18 files.

Run from the repository root (after `swift build -c release`):
    /usr/bin/python3 Tests/Reference/bench_read.py [--runs 10] [--warmup 2]
        [--pth2swt .build/release/pth2swt] [--weights ../shared/weights]
        [--torch-only] [--json]

torch side: median wall time of torch.load(path) followed by
{k: v.float().contiguous() for k, v in sd.items()}, over --runs runs after
--warmup unmeasured runs, in this process.
Swift side: `<pth2swt> bench read --json --repeat N --threads T [--no-verify-crc] FILE`
(every tensor converted into one Float32 arena), which prints {"file", "format", "median_ms", ...},
once per configuration in CONFIGS. Both sides run in this one script, back to back per file.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = [("tar", "resnet18-tar.pth"), ("legacy", "resnet18-legacy.pth"), ("zip", "resnet18-zip.pth")]
# (label, extra flags). The CRC check only exists for zip; torch never checks CRCs.
CONFIGS = [("1 thread", ["--threads", "1"]), ("2 threads", ["--threads", "2"]),
           ("2 threads, no CRC", ["--threads", "2", "--no-verify-crc"])]


def bench_torch(path, runs, warmup):
    import torch
    warnings.filterwarnings("ignore", category=UserWarning)

    def once():
        sd = torch.load(path)
        return {k: v.float().contiguous() for k, v in sd.items()}

    for _ in range(warmup):
        once()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "runs": runs}


def bench_swift(binary, path, runs, flags=()):
    """Returns (result dict, None) or (None, error message)."""
    if not Path(binary).is_file():
        return None, f"pth2swt binary not found at {binary} (build with: swift build -c release)"
    cmd = [str(binary), "bench", "read", "--json", "--repeat", str(runs), *flags, str(path)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except OSError as e:
        return None, f"cannot run {binary}: {e}"
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        return None, (f"`{' '.join(cmd)}` exited with {p.returncode} (is the bench read "
                      f"subcommand implemented?): {err[-1] if err else 'no output'}")
    # The JSON object may be the whole output, its last line, or a pretty-printed
    # block starting at the last line that begins with "{".
    out = p.stdout.strip()
    lines = out.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("{")]
    candidates = [out] + lines[::-1] + ["\n".join(lines[i:]) for i in starts[::-1]]
    for text in candidates:
        try:
            res = json.loads(text)
        except ValueError:
            continue
        if isinstance(res, dict) and "median_ms" in res:
            return res, None
    return None, f"no JSON with median_ms in the output of `{' '.join(cmd)}`"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--pth2swt", default=str(REPO / ".build" / "release" / "pth2swt"))
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "weights"))
    ap.add_argument("--torch-only", action="store_true", help="skip the Swift side")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()

    import torch
    rows, errors = [], []
    for fmt, name in FILES:
        path = Path(args.weights) / name
        if not path.is_file():
            errors.append(f"missing {path}")
            continue
        torch_result = bench_torch(path, args.runs, args.warmup)
        for label, flags in ([] if args.torch_only else CONFIGS):
            if "--no-verify-crc" in flags and fmt != "zip":
                continue
            ours, err = bench_swift(args.pth2swt, path, args.runs, flags)
            if err:
                errors.append(err)
            rows.append({"format": fmt, "file": name, "config": label, "torch": torch_result, "pth2swt": ours})
        if args.torch_only:
            rows.append({"format": fmt, "file": name, "config": "-", "torch": torch_result})

    if args.json:
        print(json.dumps({"torch_version": torch.__version__, "runs": args.runs,
                          "warmup": args.warmup, "results": rows, "errors": errors}, indent=1))
    else:
        print(f"torch {torch.__version__}, median of {args.runs} runs after {args.warmup} warm-ups")
        print(f"{'format':8s} {'pth2swt config':18s} {'torch ms':>10s} {'pth2swt ms':>11s} {'torch/ours':>11s} {'ours/torch':>11s}")
        for r in rows:
            t = r["torch"]["median_ms"]
            s = (r.get("pth2swt") or {}).get("median_ms")
            cols = (f"{s:11.1f} {t / s:11.2f} {s / t:11.2f}" if s
                    else f"{'-':>11s} {'-':>11s} {'-':>11s}")
            print(f"{r['format']:8s} {r['config']:18s} {t:10.1f} {cols}")
        for e in dict.fromkeys(errors):     # de-duplicated, in order
            print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
