#!/usr/bin/env python3
"""Check pth2swt convert's outputs of quantized, sparse, complex, meta and newer-dtype tensors with the
real readers.

    swift build && PYTHON Tests/Reference/check_kinds.py [--pth2swt PATH]

PYTHON needs Debian's torch 1.13 and safetensors (pip, 0.8 or later for the float8 names); a venv made
with --system-site-packages has both. For each fixture in Tests/Fixtures/kinds/ (written by
make_tensor_kinds.py) it runs `pth2swt convert` to .pth, to .swt (with --skip-meta), to .swt with
--keep-sparse and --skip-meta, and to .swt with --dequantize, then asserts:
  - torch.load reads the .pth (every fixture but v3_dtypes, whose dtypes torch 1.13 does not have):
    the same names; quantized tensors with the same dtype, qscheme, int_repr(), scales, zero points
    and axis; sparse tensors with the same layout and to_dense(); meta tensors with the same shape,
    stride and dtype; every other tensor equal; a quantized MobileNetV2 state dict loads into the
    model with load_state_dict, also after .pth -> .swt -> .pth, and computes the same logits;
  - safetensors' safe_open parses every .swt header and byte range; where numpy has the dtype, the
    values equal torch's: int_repr() (unpacked for quint4x2 / quint2x4) beside NAME.scale and
    NAME.zero_point, dequantize() with --dequantize, to_dense() for sparse, the components with
    --keep-sparse, complex128 as float64 pairs.
It prints one line per file and exits 1 on the first failure. CI never runs it (no torch there);
CheckpointTests.ReferenceScriptTests runs it when PTH2SWT_PYTHON names an interpreter with both.
"""
import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[2]
KINDS = ROOT / "Tests/Fixtures/kinds"


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def unpacked(t):
    """int_repr() one value per element (quint4x2 / quint2x4 unpacked, first value in the low bits)."""
    r = t.int_repr()
    if t.dtype not in (torch.quint4x2, torch.quint2x4):
        return r.numpy()
    bits = 4 if t.dtype == torch.quint4x2 else 2
    b = r.numpy().astype(np.uint8).reshape(-1)
    vals = np.stack([(b >> (bits * k)) & ((1 << bits) - 1) for k in range(8 // bits)], 1).reshape(-1)
    return vals[: t.numel()].reshape(tuple(t.shape))


def flat(sd):
    """Tensors by the names pth2swt gives them (tuple members as NAME.i)."""
    out = {}
    for k, v in sd.items():
        if isinstance(v, tuple):
            for i, x in enumerate(v):
                if isinstance(x, torch.Tensor):
                    out[f"{k}.{i}"] = x
        elif isinstance(v, torch.Tensor):
            out[k] = v
    return out


def same_tensor(a, b, name):
    check(a.dtype == b.dtype and a.shape == b.shape, f"{name}: {a.dtype} {tuple(a.shape)} vs {b.dtype} {tuple(b.shape)}")
    if a.is_quantized:
        check(a.qscheme() == b.qscheme(), f"{name}: qscheme")
        check(torch.equal(a.int_repr(), b.int_repr()), f"{name}: int_repr")
        if a.qscheme() == torch.per_tensor_affine:
            check(a.q_scale() == b.q_scale() and a.q_zero_point() == b.q_zero_point(), f"{name}: qparams")
        else:
            check(torch.equal(a.q_per_channel_scales(), b.q_per_channel_scales()), f"{name}: scales")
            check(torch.equal(a.q_per_channel_zero_points(), b.q_per_channel_zero_points()), f"{name}: zero points")
            check(a.q_per_channel_axis() == b.q_per_channel_axis(), f"{name}: axis")
    elif a.layout != torch.strided:
        check(a.layout == b.layout and torch.equal(a.to_dense(), b.to_dense()), f"{name}: sparse")
    elif a.device.type == "meta":
        check(b.device.type == "meta" and a.stride() == b.stride(), f"{name}: meta")
    else:
        check(torch.equal(a, b) or (a.is_complex() and a.view(torch.float32 if a.dtype == torch.complex64 else torch.float64).isnan().any()
                                    and np.array_equal(a.numpy().view(np.uint8), b.numpy().view(np.uint8))), f"{name}: values")


def swt(path):
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        out = {}
        for k in f.keys():
            try:
                out[k] = f.get_tensor(k)
            except Exception:    # numpy has no float8 / bf16: the header and range parsed, which is the test
                out[k] = None
        return meta, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pth2swt", default=str(ROOT / ".build/debug/pth2swt"))
    args = ap.parse_args()
    fixtures = sorted(KINDS.glob("*.pth"))
    check(fixtures, f"no fixtures in {KINDS}")
    with tempfile.TemporaryDirectory() as tmp:
        for src in fixtures:
            outs = {}
            for tag, ext, flags in [("pth", ".pth", []), ("swt", ".swt", ["--skip-meta"]),
                                    ("sparse", ".swt", ["--skip-meta", "--keep-sparse"]),
                                    ("dq", ".swt", ["--skip-meta", "--dequantize"])]:
                out = Path(tmp) / f"{src.stem}-{tag}{ext}"
                r = subprocess.run([args.pth2swt, "convert", str(src), str(out), "-q"] + flags,
                                   capture_output=True, text=True)
                check(r.returncode == 0, f"{src.name} -> {tag}: {r.stderr}")
                outs[tag] = out
            for tag in ["swt", "sparse", "dq"]:
                swt(outs[tag])    # safetensors parses every header and byte range
            if src.stem == "numpy_kinds":
                # numpy arrays of dtypes torch 1.13 lacks (uint16-64): the .swt against numpy itself.
                _, plain = swt(outs["swt"])
                for k, v in torch.load(src).items():
                    if isinstance(v, np.ndarray):
                        want = np.stack([v.real, v.imag], -1) if v.dtype == np.complex128 else v
                        check(np.array_equal(plain[k], want.astype(want.dtype.newbyteorder("<")), equal_nan=True),
                              f"{src.name} .swt {k}")
                print(f"ok   {src.name}: safetensors reads the arrays' values from all three .swt")
                continue
            if src.stem == "v3_dtypes":
                print(f"ok   {src.name}: safetensors parses all three .swt (torch 1.13 has none of its dtypes)")
                continue
            a = {k: v.detach() for k, v in flat(torch.load(src)).items()}
            b = flat(torch.load(outs["pth"]))
            check(list(a) == list(b), f"{src.name}: names {list(a)} vs {list(b)}")
            for k in a:
                same_tensor(a[k], b[k], f"{src.name} .pth {k}")
            _, plain = swt(outs["swt"])
            _, sparse = swt(outs["sparse"])
            _, dq = swt(outs["dq"])
            for k, t in a.items():
                if t.device.type == "meta":
                    check(k not in plain, f"{k}: a meta tensor in the .swt")
                    continue
                if t.is_quantized:
                    check(np.array_equal(plain[k], unpacked(t)), f"{src.name} .swt {k}: integers")
                    if t.qscheme() == torch.per_tensor_affine:
                        check(plain[k + ".scale"] == t.q_scale() and plain[k + ".zero_point"] == t.q_zero_point(),
                              f"{k}: scale / zero point")
                    else:
                        check(np.array_equal(plain[k + ".scale"], t.q_per_channel_scales().numpy()), f"{k}: scales")
                        check(np.array_equal(plain[k + ".zero_point"], t.q_per_channel_zero_points().numpy()), f"{k}: zero points")
                    check(np.array_equal(dq[k], t.dequantize().numpy()), f"{src.name} --dequantize {k}")
                elif t.layout != torch.strided:
                    check(np.array_equal(plain[k], t.to_dense().numpy()), f"{src.name} .swt {k}: dense")
                    names = ["indices", "values"] if t.layout == torch.sparse_coo else ["crow_indices", "col_indices", "values"]
                    parts = [t._indices(), t._values()] if t.layout == torch.sparse_coo else [t.crow_indices(), t.col_indices(), t.values()]
                    for n, p in zip(names, parts):
                        check(np.array_equal(sparse[f"{k}.{n}"], p.numpy()), f"{src.name} --keep-sparse {k}.{n}")
                elif t.dtype == torch.complex128:
                    pairs = np.stack([t.numpy().real, t.numpy().imag], -1)
                    check(np.array_equal(plain[k], pairs, equal_nan=True), f"{src.name} .swt {k}: complex128 pairs")
                elif plain[k] is not None:
                    check(np.array_equal(plain[k], t.numpy(), equal_nan=t.is_floating_point() or t.is_complex()),
                          f"{src.name} .swt {k}")
            if src.stem == "quantized_mobilenet_v2":
                import torchvision
                m = torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False, width_mult=0.25,
                                                                  num_classes=10)
                m.eval()
                m.fuse_model()
                m.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                torch.ao.quantization.prepare(m, inplace=True)
                torch.ao.quantization.convert(m, inplace=True)
                m.load_state_dict(torch.load(outs["pth"]))
                # And through the .swt: pth2swt reads its own .swt back to the quantized state dict.
                again = Path(tmp) / "again.pth"
                r = subprocess.run([args.pth2swt, "convert", str(outs["swt"]), str(again), "-q"],
                                   capture_output=True, text=True)
                check(r.returncode == 0, f".swt -> .pth: {r.stderr}")
                m2 = torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False, width_mult=0.25,
                                                                   num_classes=10)
                m2.eval()
                m2.fuse_model()
                m2.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
                torch.ao.quantization.prepare(m2, inplace=True)
                torch.ao.quantization.convert(m2, inplace=True)
                m2.load_state_dict(torch.load(again))
                x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
                check(torch.equal(m(x), m2(x)), "the quantized MobileNetV2 from .pth -> .swt -> .pth computes otherwise")
            print(f"ok   {src.name}: .pth read by torch {torch.__version__}, three .swt by safetensors, values equal")
    print(f"{len(fixtures)} files ok")


if __name__ == "__main__":
    main()
