"""Check pth2swt convert's outputs with the real readers: safetensors for .swt, torch.load for .pth.

    swift build && PYTHON Tests/Reference/check_outputs.py [--pth2swt PATH] [FILE ...]

PYTHON needs torch (Debian's python3-torch 1.13) and safetensors (pip); a venv made with
--system-site-packages has both. Without FILE arguments it checks every committed fixture
(Tests/Fixtures/*.pth except the hostile ones) and, when ../shared/weights is present, the three
full-size ResNet-18 files.

For each source it runs `pth2swt convert` to .swt and to .pth and asserts:
  - safetensors.safe_open reads the .swt unchanged; names, dtypes, shapes and values equal the source
    (torch.load), and __metadata__ names the source file, its size, sha256 and format;
  - torch.load(f, weights_only=True) reads the .pth; names (in order), dtypes, shapes, strides, storage
    offsets and values equal the source, and tensors that shared a storage still share one;
  - --dtype float16 gives exactly torch's .half() of every floating tensor, in both outputs.
It prints one line per check and exits 1 on the first failure. CI never runs it (no torch there);
CheckpointTests.ReferenceScriptTests runs it when PTH2SWT_PYTHON names an interpreter with both.
"""
import argparse
import collections
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "weights"


def find_state_dict(obj):
    """Mirrors StateDict.init(from:): the root, or under state_dict / model_state_dict / model."""
    for _ in range(3):
        if isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        if isinstance(obj, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(obj.get(key), dict):
                    obj = obj[key]
                    break
            else:
                break
    return obj


def tensors(obj):
    return collections.OrderedDict((k, v) for k, v in find_state_dict(obj).items() if isinstance(v, torch.Tensor))


def memory_layout(sd):
    """Which tensors share memory, and where each starts relative to the first of its group.

    Tensors share memory when their storages' byte ranges overlap (a tar file's storage views are
    separate storage objects over one allocation, so data_ptr of the storage is not enough). Returns
    (sorted groups of names, {name: element offset from the group's lowest tensor start}).
    """
    names = list(sd)
    spans = {n: (sd[n].storage().data_ptr(), sd[n].storage().data_ptr() + sd[n].storage().nbytes()) for n in names}
    parent = {n: n for n in names}

    def find(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (a0, a1), (b0, b1) = spans[a], spans[b]
            if a0 < b1 and b0 < a1 or (a0 == b0 and a1 == b1):
                parent[find(a)] = find(b)
    groups = collections.defaultdict(list)
    for n in names:
        groups[find(n)].append(n)
    offsets = {}
    for g in groups.values():
        low = min(sd[n].data_ptr() for n in g)
        for n in g:
            offsets[n] = (sd[n].data_ptr() - low) // sd[n].element_size()
    return sorted(sorted(g) for g in groups.values()), offsets


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and (
        torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                              and torch.equal(a.nan_to_num(0), b.nan_to_num(0))))


def check(cond, what):
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)


def run(pth2swt, *args):
    subprocess.run([pth2swt, *args, "--quiet"], check=True, stdout=subprocess.DEVNULL)


# torch 1.13 ignores the `byteorder` record, so torch.load gives byte-swapped values for this fixture;
# its logical values are zip_dtypes.pth's (make_fixtures.py asserts that when it writes it).
LOGICAL_SOURCE = {"zip_bigendian.pth": "zip_dtypes.pth"}


def check_file(pth2swt, src, tmp):
    name = Path(src).name
    truth = Path(src).with_name(LOGICAL_SOURCE[name]) if name in LOGICAL_SOURCE else src
    source = tensors(torch.load(truth, map_location="cpu"))
    swt, pth = os.path.join(tmp, "out.swt"), os.path.join(tmp, "out.pth")
    run(pth2swt, "convert", src, swt)
    run(pth2swt, "convert", src, pth)

    with safe_open(swt, framework="pt") as f:
        meta = f.metadata()
        got = {k: f.get_tensor(k) for k in f.keys()}
    check(sorted(got) == sorted(source), f"{name}: .swt names")
    for k, v in source.items():
        check(same(got[k], v.contiguous()), f"{name}: .swt tensor {k}")
    digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
    check(meta.get("source.file") == name and meta.get("source.sha256") == digest
          and meta.get("source.bytes") == str(os.path.getsize(src)), f"{name}: .swt __metadata__ {meta}")
    print(f"ok   {name}: safetensors reads the .swt: {len(got)} tensors equal, metadata names the source")

    back = torch.load(pth, weights_only=True)
    check(list(back) == list(source), f"{name}: .pth names and order")
    for k, v in source.items():
        b = back[k]
        check(same(b, v) and b.stride() == v.stride(), f"{name}: .pth tensor {k}: {b.dtype} {tuple(b.shape)} {b.stride()}")
    groups, offsets = memory_layout(source)
    back_groups, back_offsets = memory_layout(back)
    check(back_groups == groups, f"{name}: .pth memory sharing {back_groups} vs {groups}")
    check(back_offsets == offsets, f"{name}: .pth relative offsets {back_offsets} vs {offsets}")
    views = sum(len(g) > 1 for g in groups)
    print(f"ok   {name}: torch.load(weights_only=True) reads the .pth: {len(back)} tensors equal, "
          f"strides/offsets equal, {views} shared storages kept")

    run(pth2swt, "convert", src, swt, "--dtype", "float16")
    run(pth2swt, "convert", src, pth, "--dtype", "float16")
    back = torch.load(pth, weights_only=True)
    with safe_open(swt, framework="pt") as f:
        got = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in source.items():
        want = v.half() if v.is_floating_point() else v
        check(same(back[k], want), f"{name}: .pth --dtype float16 {k}")
        check(same(got[k], want.contiguous()), f"{name}: .swt --dtype float16 {k}")
    print(f"ok   {name}: --dtype float16 equals torch's .half() in both outputs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--pth2swt", default=str(REPO / ".build" / "debug" / "pth2swt"))
    args = ap.parse_args()
    files = args.files or [
        str(p) for p in sorted((REPO / "Tests" / "Fixtures").glob("*.pth")) if not p.name.startswith("hostile_")
    ] + [str(SHARED / f) for f in ("resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth") if (SHARED / f).exists()]
    print(f"torch {torch.__version__}, safetensors {__import__('safetensors').__version__}, {args.pth2swt}")
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            check_file(args.pth2swt, f, tmp)
    print(f"all {len(files)} files ok")


if __name__ == "__main__":
    main()
