"""ResNet-18 inference: pth2swt against PyTorch and ONNX Runtime, same weights, same machine, one script.

    swift build -c release && PYTHON Tests/Reference/bench_peers.py [--weights ../shared/weights/resnet18-zip.pth]
        [--runs 20] [--pth2swt .build/release/pth2swt] [--tune]

PYTHON needs torch + torchvision (Debian python3-torch 1.13, python3-torchvision 0.14) and, for the ONNX
Runtime column, onnxruntime (pip). The model is torchvision.models.resnet18 with the weights loaded, in
eval mode, exported to ONNX once (opset 13) for ONNX Runtime (graph optimisations on, intra-op threads =
the row's thread count). pth2swt runs first in each row, in its own process, so the peers' spinning
worker threads cannot take its cores. Rows: batch 1 / 1 thread, batch 1 / 2 threads, batch 16 / 2 threads. Each
figure is the median over --runs runs after warm-up runs; pth2swt's is `pth2swt bench infer --json`.
Peak resident memory (VmHWM) of one batch-1 run per runtime in a fresh process is printed last.
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


def child_peak(runtime, weights, onnx_path):
    """Peak memory of one batch-1 inference in a fresh process."""
    code = f"""
import sys, torch, torchvision, warnings
warnings.filterwarnings("ignore")
x = torch.randn(1, 3, 224, 224)
if {runtime!r} == "torch":
    m = torchvision.models.resnet18(); m.load_state_dict(torch.load({str(weights)!r})); m.eval()
    with torch.no_grad(): m(x)
else:
    import onnxruntime as ort
    s = ort.InferenceSession({str(onnx_path)!r}, providers=["CPUExecutionProvider"])
    s.run(None, {{"input": x.numpy()}})
""" + PRINT_VMHWM_KIB
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(REPO.parent / "shared" / "weights" / "resnet18-zip.pth"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--pth2swt", default=str(REPO / ".build" / "release" / "pth2swt"))
    ap.add_argument("--tune", action="store_true", help="let pth2swt time both convolution algorithms per layer first")
    args = ap.parse_args()

    import torch
    import torchvision
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    torch.set_grad_enabled(False)
    model = torchvision.models.resnet18()
    model.load_state_dict(torch.load(args.weights))
    model.eval()
    tmp = tempfile.mkdtemp()
    onnx_path = Path(tmp) / "resnet18.onnx"
    if ort:
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), onnx_path, opset_version=13,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"onnxruntime {ort.__version__ if ort else 'absent'}, {os.cpu_count()} cpus, {args.runs} runs")
    print(f"{'batch':>5} {'threads':>7} {'torch ms':>9} {'ORT ms':>8} {'ours ms':>8} {'ours/torch':>10} {'ours/ORT':>9} {'ours img/s':>10}")
    for batch, threads in ROWS:
        # pth2swt first, in its own process, while this one is idle: torch's OpenMP workers and ONNX
        # Runtime's pool spin for a while after each run and would take its cores.
        cmd = [args.pth2swt, "bench", "infer", "--weights", args.weights, "--batch", str(batch), "--threads",
               str(threads), "--repeat", str(args.runs), "--json"] + (["--tune"] if args.tune else [])
        ours = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        t_ours = ours["median_ms"]
        x = torch.randn(batch, 3, 224, 224)
        torch.set_num_threads(threads)
        t_torch = median_ms(lambda: model(x), args.runs, warmup=3)
        t_ort = None
        if ort:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            feed = {"input": x.numpy()}
            t_ort = median_ms(lambda: sess.run(None, feed), args.runs, warmup=3)
            del sess
        time.sleep(1)
        ort_s = f"{t_ort:8.1f}" if t_ort else f"{'-':>8}"
        vs_ort = f"{t_ours / t_ort:9.2f}" if t_ort else f"{'-':>9}"
        print(f"{batch:>5} {threads:>7} {t_torch:9.1f} {ort_s} {t_ours:8.1f} {t_ours / t_torch:10.2f} {vs_ort} {batch * 1000 / t_ours:10.1f}")

    print()
    p_torch = child_peak("torch", args.weights, onnx_path)
    p_ort = child_peak("ort", args.weights, onnx_path) if ort else None
    p = subprocess.run(["sh", "-c", f"{args.pth2swt} bench infer --weights {args.weights} --repeat 1 --warmup 0 --json"],
                       capture_output=True, text=True, check=True)
    ours = json.loads(p.stdout.strip().splitlines()[-1])
    print("peak resident memory, batch 1, fresh process (MiB): "
          f"torch {p_torch:.0f}, ORT {p_ort:.0f}, " if p_ort else f"torch {p_torch:.0f}, ",
          f"pth2swt {ours.get('peak_rss_bytes', 0) / 2**20:.0f}")


if __name__ == "__main__":
    main()
