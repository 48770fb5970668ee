"""Convert-speed, .swt open speed and peak memory: pth2swt against torch (and safetensors) in one run.

Run from the repository root after `swift build -c release`, with a Python that has torch (Debian's
python3-torch 1.13) and, for the .swt rows, safetensors (pip):
    PYTHON Tests/Reference/bench_convert.py [--runs 10] [--pth2swt .build/release/pth2swt]
        [--weights ../shared/weights] [--out /tmp]

Rows, per ResNet-18 file (tar, legacy, zip):
  convert → .pth   torch: torch.load(src) + torch.save(sd, out)      ours: `bench convert SRC out.pth`
  convert → .swt   torch: torch.load(src) + safetensors save_file   ours: `bench convert SRC out.swt --hash`
                   (ours also hashes the source for the header, as `pth2swt convert` does)
Then, for the converted .swt:
  open + every tensor   safetensors: safe_open + get_tensor for all   ours: `bench open out.swt`
And peak resident memory (VmHWM) of one conversion in a fresh process each way, against the source size.
Times are medians of --runs runs after warm-up runs; both sides run back to back in this script.
"""
import argparse
import json
import subprocess
import sys
import warnings
from pathlib import Path

from refutil import PRINT_VMHWM_KIB, median_ms

REPO = Path(__file__).resolve().parents[2]
FILES = [("tar", "resnet18-tar.pth"), ("legacy", "resnet18-legacy.pth"), ("zip", "resnet18-zip.pth")]
warnings.filterwarnings("ignore")


def ours(binary, *args):
    p = subprocess.run([binary, "bench", *args, "--json"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"pth2swt bench {' '.join(args)} failed: {p.stderr or p.stdout}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def torch_peak_mb(src, dst, with_safetensors):
    code = ("import sys, torch\n"
            "sd = torch.load(sys.argv[1])\n"
            + ("from safetensors.torch import save_file\nsave_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])\n"
               if with_safetensors else "torch.save(sd, sys.argv[2])\n")
            + PRINT_VMHWM_KIB)
    base = "import torch\n" + PRINT_VMHWM_KIB
    after = int(subprocess.run([sys.executable, "-c", code, str(src), str(dst)], capture_output=True, text=True, check=True).stdout.split()[-1])
    idle = int(subprocess.run([sys.executable, "-c", base], capture_output=True, text=True, check=True).stdout.split()[-1])
    return after / 1024, idle / 1024


def ours_peak_mb(binary, src, dst):
    p = subprocess.run([binary, "convert", str(src), str(dst), "--json"], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)["peak_rss_bytes"] / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--pth2swt", default=str(REPO / ".build" / "release" / "pth2swt"))
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "weights"))
    ap.add_argument("--out", default="/tmp")
    args = ap.parse_args()

    import torch
    try:
        import safetensors
        from safetensors import safe_open
        from safetensors.torch import save_file
    except ImportError:
        safetensors = None
    out = Path(args.out)
    print(f"torch {torch.__version__}, safetensors {safetensors.__version__ if safetensors else 'absent'}, "
          f"{args.runs} runs, outputs in {out}")
    print(f"{'file':8} {'task':22} {'torch ms':>9} {'pth2swt ms':>11} {'ours/torch':>11}")

    def row(fmt, task, theirs, mine):
        ratio = f"{mine / theirs:.2f}" if theirs else "-"
        theirs_s = f"{theirs:.1f}" if theirs else "-"
        print(f"{fmt:8} {task:22} {theirs_s:>9} {mine:>11.1f} {ratio:>11}")

    rss_rows = []
    for fmt, name in FILES:
        src = Path(args.weights) / name
        if not src.exists():
            print(f"{fmt:8} skipped: {src} is absent")
            continue
        pth_t, pth_o = out / f"bench-torch-{fmt}.pth", out / f"bench-ours-{fmt}.pth"
        swt_t, swt_o = out / f"bench-torch-{fmt}.safetensors", out / f"bench-ours-{fmt}.swt"

        t = median_ms(lambda: torch.save(torch.load(src), pth_t), args.runs, warmup=2)
        o = ours(args.pth2swt, "convert", str(src), str(pth_o), "--repeat", str(args.runs))["median_ms"]
        row(fmt, "convert → .pth", t, o)

        if safetensors:
            def torch_swt():
                sd = torch.load(src)
                save_file({k: v.contiguous() for k, v in sd.items()}, str(swt_t))
            t = median_ms(torch_swt, args.runs, warmup=2)
        else:
            t = None
        o = ours(args.pth2swt, "convert", str(src), str(swt_o), "--hash", "--repeat", str(args.runs))["median_ms"]
        row(fmt, "convert → .swt", t, o)

        if safetensors:
            def open_all():
                with safe_open(str(swt_o), framework="pt") as f:
                    return [f.get_tensor(k) for k in f.keys()]
            t = median_ms(open_all, args.runs * 10, warmup=5)
        o = ours(args.pth2swt, "open", str(swt_o), "--repeat", str(args.runs * 10))["median_ms"]
        row(fmt, ".swt open + all tensors", t, o)

        size_mb = src.stat().st_size / 2**20
        rss_t, idle_t = torch_peak_mb(src, swt_t if safetensors else pth_t, bool(safetensors))
        rss_o = ours_peak_mb(args.pth2swt, src, swt_o)
        rss_o_pth = ours_peak_mb(args.pth2swt, src, pth_o)
        rss_rows.append((fmt, size_mb, rss_t, idle_t, rss_o, rss_o_pth))

    print()
    print("peak resident memory (VmHWM, MiB) of one conversion in a fresh process; torch's idle figure is")
    print("`import torch` alone, so torch's cost of the conversion is the difference")
    print(f"{'file':8} {'source':>7} {'torch':>7} {'idle':>6} {'ours→swt':>9} {'ours→pth':>9} {'ours/source':>12}")
    for fmt, size, t, idle, o, op in rss_rows:
        print(f"{fmt:8} {size:>7.1f} {t:>7.1f} {idle:>6.1f} {o:>9.1f} {op:>9.1f} {max(o, op) / size:>12.2f}")


if __name__ == "__main__":
    main()
