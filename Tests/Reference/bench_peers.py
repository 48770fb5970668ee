"""Inference of a torchvision network: pth2swt against PyTorch, ONNX Runtime and OpenVINO (f32), same
weights, same machine, one script.

    swift build -c release && PYTHON Tests/Reference/bench_peers.py [--arch resnet18] [--weights FILE]
        [--runs 20] [--rounds 3] [--pth2swt [LABEL=].build/release/pth2swt ...] [--isa avx512,avx2] [--tune]

--arch is any torchvision builder pth2swt knows (resnet18, resnet50, mobilenet_v2, vgg16, …). Weights:
--weights, else ../shared/weights/resnet18-zip.pth for resnet18 and Weights/mobilenet_v2-b0353104.pth
(scripts/fetch_mobilenet_v2.sh) for mobilenet_v2, else torchvision's seeded initialisation
(torch.manual_seed(0)) saved to a temporary file that every side loads.

PYTHON needs torch + torchvision (Debian python3-torch 1.13, python3-torchvision 0.14) and, for their
columns, onnxruntime and openvino (pip; see docs/testing.md for the venv). The model is
torchvision.models.ARCH with the weights loaded, in eval mode, exported to ONNX once (opset 13) for
ONNX Runtime (graph optimisations on, intra-op threads = the row's thread count) and OpenVINO (CPU,
INFERENCE_PRECISION_HINT f32 so that CPUs with AVX512_BF16 do not switch to bf16 by themselves,
INFERENCE_NUM_THREADS = the row's thread count, one stream, latency hint). pth2swt runs first in each
row, in its own process, so the peers' spinning worker threads cannot take its cores. Rows: batch 1 /
1 thread, batch 1 / 2 threads, batch 16 / 2 threads. Each figure is the median over --runs runs after
warm-up runs; pth2swt's is `pth2swt bench infer --json`. With --rounds N every side runs N times, the
sides taking turns, and each keeps its fastest median (the host is shared). --pth2swt may be given
several times (LABEL=PATH) to put two builds side by side, and --isa TIER[,TIER…] runs each build in each
named instruction-set tier (`bench infer --isa`), a column per tier. On a CPU with AVX512_BF16 an extra
column runs OpenVINO with INFERENCE_PRECISION_HINT bf16 (what it picks by itself there), marked
"(bf16)" and left out of "best peer", which compares float32 runtimes only. Peak resident memory (VmHWM) of one batch-1
run per runtime in a fresh process is printed last.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from refutil import PRINT_VMHWM_KIB, median_ms

REPO = Path(__file__).resolve().parents[2]
ROWS = [(1, 1), (1, 2), (16, 2)]
warnings.filterwarnings("ignore")


def child_peak(runtime, arch, weights, onnx_path):
    """Peak memory of one batch-1 inference in a fresh process."""
    code = f"""
import sys, torch, torchvision, warnings
warnings.filterwarnings("ignore")
x = torch.randn(1, 3, 224, 224)
if {runtime!r} == "torch":
    m = torchvision.models.{arch}(); m.load_state_dict(torch.load({str(weights)!r})); m.eval()
    with torch.no_grad(): m(x)
else:
    import onnxruntime as ort
    s = ort.InferenceSession({str(onnx_path)!r}, providers=["CPUExecutionProvider"])
    s.run(None, {{"input": x.numpy()}})
""" + PRINT_VMHWM_KIB
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        return "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18", help="a torchvision builder name pth2swt knows")
    ap.add_argument("--weights", default=None, help="a state dict for --arch (default: see above)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--pth2swt", action="append", default=None,
                    help="[LABEL=]PATH of a pth2swt binary; repeat to compare builds (default .build/release/pth2swt)")
    ap.add_argument("--tune", action="store_true", help="let pth2swt time both convolution algorithms per layer first")
    ap.add_argument("--isa", default=None, help="comma-separated tiers to run each pth2swt build in (default: its own choice)")
    args = ap.parse_args()
    ours_bins = []
    tiers = args.isa.split(",") if args.isa else [None]
    for spec in args.pth2swt or [str(REPO / ".build" / "release" / "pth2swt")]:
        label, _, path = spec.rpartition("=")
        for tier in tiers:
            ours_bins.append(((label or "ours") + (f"[{tier}]" if tier else ""), path, tier))

    import torch
    import torchvision
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    try:
        import openvino as ov
    except ImportError:
        ov = None
    torch.set_grad_enabled(False)
    tmp = tempfile.mkdtemp()
    if args.weights is None:
        known = {"resnet18": REPO.parent / "shared" / "weights" / "resnet18-zip.pth",
                 "mobilenet_v2": REPO / "Weights" / "mobilenet_v2-b0353104.pth"}
        if args.arch in known and known[args.arch].exists():
            args.weights = str(known[args.arch])
        else:
            torch.manual_seed(0)
            args.weights = str(Path(tmp) / f"{args.arch}-seeded.pth")
            torch.save(getattr(torchvision.models, args.arch)().state_dict(), args.weights)
            print(f"weights: torchvision's seeded initialisation of {args.arch} (no --weights)")
    model = getattr(torchvision.models, args.arch)()
    model.load_state_dict(torch.load(args.weights))
    model.eval()
    onnx_path = Path(tmp) / f"{args.arch}.onnx"
    if ort or ov:
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), onnx_path, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"{args.arch}, weights {args.weights}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cpus")
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"onnxruntime {ort.__version__ if ort else 'absent'}, openvino {ov.__version__ if ov else 'absent'}, "
          f"{args.runs} runs, best of {args.rounds} round(s)")

    def run_ours(path, tier, batch, threads):
        cmd = [path, "bench", "infer", "--arch", args.arch, "--weights", args.weights, "--batch", str(batch), "--threads",
               str(threads), "--repeat", str(args.runs), "--json"] + (["--tune"] if args.tune else [])
        cmd += ["--isa", tier] if tier else []
        return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])["median_ms"]

    peers = ["torch"] + (["ORT"] if ort else []) + (["OpenVINO f32"] if ov else [])
    bf16 = ov is not None and "avx512_bf16" in cpu_flags()
    extra = ["OpenVINO (bf16)"] if bf16 else []
    labels = [l for l, _, _ in ours_bins]
    head = f"{'batch':>5} {'threads':>7}" + "".join(f" {p + ' ms':>15}" for p in peers + extra)
    head += "".join(f" {l + ' ms':>16}" for l in labels)
    head += "".join(f" {l + '/best':>16}" for l in labels) + f" {'best f32 peer':>14}"
    print(head)
    for batch, threads in ROWS:
        x = torch.randn(batch, 3, 224, 224)
        best = {}

        def keep(name, t):
            best[name] = min(best.get(name, float("inf")), t)

        for _ in range(args.rounds):
            # pth2swt first, in its own process, while this one is idle: torch's OpenMP workers and the
            # peers' pools spin for a while after each run and would take its cores.
            for label, path, tier in ours_bins:
                keep(label, run_ours(path, tier, batch, threads))
            torch.set_num_threads(threads)
            keep("torch", median_ms(lambda: model(x), args.runs, warmup=3))
            if ort:
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
                sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
                feed = {"input": x.numpy()}
                keep("ORT", median_ms(lambda: sess.run(None, feed), args.runs, warmup=3))
                del sess
            if ov:
                core = ov.Core()
                compiled = core.compile_model(str(onnx_path), "CPU", {
                    "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
                    "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
                request = compiled.create_infer_request()
                feed = {0: x.numpy()}
                keep("OpenVINO f32", median_ms(lambda: request.infer(feed), args.runs, warmup=3))
                del request, compiled
                if bf16:
                    compiled = core.compile_model(str(onnx_path), "CPU", {
                        "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads,
                        "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
                    request = compiled.create_infer_request()
                    keep("OpenVINO (bf16)", median_ms(lambda: request.infer(feed), args.runs, warmup=3))
                    del request, compiled
                del core
            time.sleep(1)
        best_peer = min(peers, key=lambda p: best[p])
        row = f"{batch:>5} {threads:>7}" + "".join(f" {best[p]:15.1f}" for p in peers + extra)
        row += "".join(f" {best[l]:16.1f}" for l in labels)
        row += "".join(f" {best[l] / best[best_peer]:16.2f}" for l in labels) + f" {best_peer:>14}"
        print(row)

    print()
    p_torch = child_peak("torch", args.arch, args.weights, onnx_path)
    p_ort = child_peak("ort", args.arch, args.weights, onnx_path) if ort else None
    path = ours_bins[0][1]
    p = subprocess.run([path, "bench", "infer", "--arch", args.arch, "--weights", args.weights, "--repeat", "1", "--warmup",
                        "0", "--json"],
                       capture_output=True, text=True, check=True)
    ours = json.loads(p.stdout.strip().splitlines()[-1])
    print("peak resident memory, batch 1, fresh process (MiB): "
          + f"torch {p_torch:.0f}, " + (f"ORT {p_ort:.0f}, " if p_ort else "")
          + f"{ours_bins[0][0]} {ours.get('peak_rss_bytes', 0) / 2**20:.0f}")


if __name__ == "__main__":
    main()
