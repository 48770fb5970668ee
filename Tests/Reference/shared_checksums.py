#!/usr/bin/env -S /usr/bin/python3
"""Expected values for the full-size ResNet-18 checkpoints in ../shared/weights.

Run from the repository root with the interpreter that has torch 1.13:
    /usr/bin/python3 Tests/Reference/shared_checksums.py [../shared/weights]

Loads resnet18-{tar,legacy,zip}.pth with torch.load, checks they hold the same
tensors, checks that the whole storages in resnet18-5c106cde.head.bin are
byte-identical to the loaded tensors (recording per storage whether they are,
plus the sha256 of the head's own bytes), and writes
Tests/Fixtures/resnet18-shared.expected.json (no tensor data, only digests).
"""
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refutil as R          # noqa: E402
import torch                 # noqa: E402

GENERATOR = "Tests/Reference/shared_checksums.py"
FILES = {"resnet18-tar.pth": "tar", "resnet18-legacy.pth": "legacy", "resnet18-zip.pth": "zip"}
HEAD = "resnet18-5c106cde.head.bin"
warnings.filterwarnings("ignore", category=UserWarning)


def same(a, b):
    return (a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
            and a.storage_offset() == b.storage_offset()
            and R.tensor_le_bytes(a) == R.tensor_le_bytes(b))


def head_facts(path, sd, digests):
    """Whole storage records in the truncated head, checked against `sd`."""
    buf = Path(path).read_bytes()
    m = R.tar_members(buf)
    names = R.tar_pickle_names(buf, m["pickle"][0])          # name -> (tensor key, param)
    trecs, _ = R.parse_tar_tensors(buf, m["tensors"][0])
    storage_of = {key: skey for key, skey, *_ in trecs}       # tensor key -> storage key
    srecs, _, _ = R.parse_tar_storages(buf, m["storages"][0])
    whole = [r for r in srecs if r["whole"]]
    users = {}                                                # storage key -> tensor names
    for name, (tkey, _) in names.items():
        users.setdefault(storage_of[int(tkey)], []).append(name)
    tensor_names, records = [], []
    for r in whole:
        size = R.STORAGE_ELEMENT_SIZE[r["type"].split(".")[-1]]
        raw = buf[r["data_offset"]:r["data_offset"] + r["numel"] * size]
        digest = R.sha256_bytes(raw)
        same_bytes = True
        for name in users.get(r["key"], []):
            t = sd[name]
            # every ResNet tensor covers its whole storage: bytes are comparable
            assert t.numel() == r["numel"] and t.is_contiguous() and t.storage_offset() == 0
            same_bytes &= digest == digests[name]
            tensor_names.append(name)
        records.append({"key": r["key"], "type": r["type"], "numel": r["numel"],
                        "data_offset": r["data_offset"], "tensors": users.get(r["key"], []),
                        "sha256": digest,
                        "same_in_full_files": same_bytes})
    return {"file": HEAD, "size": len(buf), "whole_storages": len(whole),
            "whole_storage_tensors": tensor_names, "storage_records": records}


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else R.REPO.parent / "shared" / "weights")
    missing = [n for n in list(FILES) + [HEAD] if not (root / n).exists()]
    if missing:
        sys.exit(f"missing in {root}: {', '.join(missing)}")
    print(f"torch {torch.__version__}; reading {root}")

    loaded = {name: torch.load(root / name) for name in FILES}
    ref = loaded["resnet18-tar.pth"]
    for name, sd in loaded.items():
        assert list(sd.keys()) == list(ref.keys()), f"{name}: different keys"
        for k in ref:
            assert same(sd[k], ref[k]), f"{name}: {k} differs"
    print(f"  {len(ref)} tensors, identical in all three files")

    tensors, digests = [], {}
    for k, t in ref.items():
        t = t.detach()
        data = R.tensor_le_bytes(t)
        digests[k] = R.sha256_bytes(data)
        tensors.append({"name": k, "dtype": R.dtype_name(t.dtype), "shape": list(t.shape),
                        "stride": list(t.stride()), "storage_offset": t.storage_offset(),
                        "sha256": digests[k], "sum": float(t.double().sum()),
                        "first": [float(v) for v in t.reshape(-1)[:4]]})

    out = {"generator": GENERATOR, "torch_version": torch.__version__,
           "files": {name: {"sha256_file": R.sha256_file(root / name), "format": fmt}
                     for name, fmt in FILES.items()},
           "tensors": tensors,
           "head": head_facts(root / HEAD, ref, digests)}
    dest = R.FIXTURES / "resnet18-shared.expected.json"
    R.write_json(dest, out)
    h = out["head"]
    print(f"  head: {h['whole_storages']} whole storages: {', '.join(h['whole_storage_tensors'])}")
    differ = [n for r in h["storage_records"] if not r["same_in_full_files"] for n in r["tensors"]]
    if differ:      # found with the shared files of 2025: the BN running stats were recalibrated
        print(f"  NOTE: head bytes differ from the full files for {len(differ)}: {', '.join(differ)}")
    print(f"wrote {dest.relative_to(R.REPO)} ({dest.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
