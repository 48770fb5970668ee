#!/usr/bin/env -S /usr/bin/python3
"""Writes the small checkpoint fixtures in Tests/Fixtures and their expected values.

Run from the repository root with the interpreter that has torch 1.13:
    /usr/bin/python3 Tests/Reference/make_fixtures.py

Deterministic: fixed seeds, fixed tar mtimes, fixed zip timestamps, and the
pointer-valued storage keys of the legacy format renamed to fixed numbers.
Every fixture <stem>.pth gets <stem>.expected.json:

  generator, torch_version, file, format ("zip" | "legacy" | "tar"),
  torch_readable, pickle_protocol (PROTO of the main object pickle),
  globals (sorted unique "module.name" of every GLOBAL / STACK_GLOBAL in the
  main object pickle; for tar also those of the 'tensors' and 'storages'
  members), state_dict_path, tensors ([{name, dtype, shape}] in file order),
  object (tagged encoding, see refutil.encode_object), optional note.

Hostile fixtures get {generator, file, format, expect_error, note} instead.
"""
import collections
import math
import pickle
import pickletools
import struct
import sys
import warnings
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refutil as R          # noqa: E402
import tar_writer            # noqa: E402
import torch                 # noqa: E402
import numpy as np           # noqa: E402

GENERATOR = "Tests/Reference/make_fixtures.py"
OUT = R.FIXTURES
warnings.filterwarnings("ignore", category=UserWarning)


# ------------------------------------------------------------------ contents

def dtypes_object():
    inf, nan = math.inf, math.nan
    return collections.OrderedDict([
        ("float32", torch.tensor([[0.0, -0.0, 1.5], [-2.25, 3.4028234663852886e38, 1e-45],
                                  [inf, -inf, nan]], dtype=torch.float32)),
        ("float64", torch.tensor([[math.pi, -1e308, 5e-324], [inf, nan, 0.1]], dtype=torch.float64)),
        ("float16", torch.tensor([1.0, -65504.0, 2.0**-24, inf, 0.333], dtype=torch.float16)),
        ("bfloat16", torch.tensor([[1.0, -3.0e38], [1e-40, 0.1]], dtype=torch.bfloat16)),
        ("int64", torch.tensor([0, -1, 2**63 - 1, -2**63, 123456789012345], dtype=torch.int64)),
        ("int32", torch.tensor([[2**31 - 1, -2**31], [-7, 0]], dtype=torch.int32)),
        ("int16", torch.tensor([32767, -32768, -1], dtype=torch.int16)),
        ("int8", torch.tensor([127, -128, 0, -5], dtype=torch.int8)),
        ("uint8", torch.tensor([0, 255, 128, 7], dtype=torch.uint8)),
        ("bool", torch.tensor([[True, False, True], [False, False, True]])),
    ])


def views_object():
    torch.manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shared = torch.randn(6)
    return collections.OrderedDict([
        ("base", base),
        ("base_slice", base[2:, 1:]),                  # offset 13, strides (6, 1)
        ("base_row", base[1]),                         # offset 6, same storage
        ("base_col", base[:, 2]),                      # offset 2, stride (6,)
        ("transposed", torch.randn(4, 2).t()),         # shape [2, 4], strides (1, 2)
        ("shared_a", shared),
        ("shared_b", shared.view(2, 3)),
        ("tail", torch.arange(10, dtype=torch.int32)[7:]),  # storage (10) > tensor (3)
        ("expanded", torch.tensor([1.0, 2.0, 3.0]).expand(4, 3)),  # stride 0
        ("scalar", torch.tensor(2.5)),
        ("scalar_long", torch.tensor(-7)),
        ("empty", torch.empty(0)),
        ("empty_2d", torch.zeros(2, 0)),
    ])


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.bn = torch.nn.BatchNorm2d(3)
        self.fc = torch.nn.Linear(12, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def nested_object():
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss = model(torch.randn(2, 2, 4, 4)).square().mean()
    loss.backward()
    opt.step()                              # momentum buffers + num_batches_tracked = 1
    dp = torch.nn.DataParallel(model)       # CPU only: just adds the "module." prefix
    return {
        "epoch": 3,
        "arch": "tinynet",
        "state_dict": dp.state_dict(),      # OrderedDict with _metadata
        "optimizer": opt.state_dict(),      # int keys, momentum_buffer, param_groups
        "best_acc1": 0.875,
        "lr_history": [0.1, 0.01],
        "milestones": [30, 60, 90],
        "scheduler": None,
        "amp": False,
        "config": {"betas": (0.9, 0.999), "depth": 2, "names": ["conv", "bn", "fc"],
                   "inner": {"seed": 0, "tag": "caf\u00e9 \u2713"}},
        "blob": bytes(range(0, 256, 17)),   # protocol 2: _codecs.encode REDUCE
        "big_int": 2**70,                   # LONG1
        "neg_int": -5,
    }


# ------------------------------------------------------------------ helpers

def main_scans(path, fmt):
    """Opcode scans of the main object pickle (+ tar metadata pickles)."""
    buf = Path(path).read_bytes()
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            return [R.scan_pickle(z.read(R.zip_data_pkl_name(path)))]
    if fmt == "legacy":
        pos = 0
        for _ in range(3):                  # magic number, protocol version, sys_info
            pos = R.scan_pickle(buf, pos)["end"]
        return [R.scan_pickle(buf, pos)]
    m = R.tar_members(buf)
    return ([R.scan_pickle(buf, m["pickle"][0])]
            + R.parse_tar_tensors(buf, m["tensors"][0])[1]
            + R.parse_tar_storages(buf, m["storages"][0])[2])


def expected(path, fmt, obj, sd_path=(), readable=True, note=None, scan_path=None):
    scans = main_scans(scan_path or path, fmt)
    sd = obj
    for k in sd_path:
        sd = sd[k]
    d = {"generator": GENERATOR, "torch_version": torch.__version__,
         "file": Path(path).name, "format": fmt, "torch_readable": readable,
         "pickle_protocol": scans[0]["protocol"], "globals": R.global_names(scans),
         "state_dict_path": list(sd_path), "tensors": R.tensor_list(sd)}
    if note:
        d["note"] = note
    d["object"] = R.encode_object(obj)
    return d


def emit(path, exp):
    R.write_json(path.with_suffix(".expected.json"), exp)
    print(f"  {path.name:28s} {path.stat().st_size:7d} B  proto={exp.get('pickle_protocol')}"
          f"  globals={len(exp.get('globals', []))}")


def load(path):
    return torch.load(path)


def normalize_legacy_keys(path):
    """Make a legacy-format file independent of memory addresses.

    torch keys storages by str(StorageImpl pointer) and writes their data in
    sorted-key order, so both the names and the order change from run to run.
    Here the storages are renumbered and reordered by first appearance in the
    object pickle; the new keys have equal length, so they are still sorted.
    """
    buf = Path(path).read_bytes()
    pos = 0
    for _ in range(3):                      # magic number, protocol version, sys_info
        pos = R.scan_pickle(buf, pos)["end"]
    obj_start = pos
    _, obj_end, u = R.safe_load_at(buf, obj_start)
    keys, keys_end, _ = R.safe_load_at(buf, obj_end)
    assert buf[obj_end:keys_end] == pickle.dumps(keys, protocol=2)
    # persistent id: ('storage', torch.XStorage, key, location, numel, view_metadata)
    nbytes = {}
    for pid in u.persistent_ids:
        assert pid[5] is None
        nbytes.setdefault(pid[2], pid[4] * R.STORAGE_ELEMENT_SIZE[pid[1].qualname.split(".")[-1]])
    records, pos = {}, keys_end             # per storage: int64 numel + raw bytes
    for k in keys:
        records[k] = buf[pos:pos + 8 + nbytes[k]]
        pos += 8 + nbytes[k]
    assert pos == len(buf)
    order = list(nbytes)                    # first appearance
    new_keys = {k: str(140000000000000 + 4096 * i) for i, k in enumerate(order)}
    body = buf[obj_start:obj_end]
    for old, new in new_keys.items():       # keys are BINUNICODE strings (maybe repeated)
        pat = b"X" + struct.pack("<I", len(old)) + old.encode()
        assert body.count(pat) >= 1
        body = body.replace(pat, b"X" + struct.pack("<I", len(new)) + new.encode())
    Path(path).write_bytes(buf[:obj_start] + body
                           + pickle.dumps([new_keys[k] for k in order], protocol=2)
                           + b"".join(records[k] for k in order))


def save_pair(stem, obj, sd_path=()):
    """<zip_stem>.pth via torch.save and <legacy_stem>.pth via the legacy writer."""
    ref = R.encode_object(obj)
    for fmt in ("zip", "legacy"):
        path = OUT / f"{fmt}_{stem}.pth"
        torch.save(obj, path, _use_new_zipfile_serialization=(fmt == "zip"))
        if fmt == "legacy":
            normalize_legacy_keys(path)
        loaded = load(path)
        exp = expected(path, fmt, loaded, sd_path)
        assert exp["object"] == ref, f"{path.name}: round trip differs"
        emit(path, exp)


def zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(n, z.read(n)) for n in z.namelist()]


def storage_element_sizes(data_pkl):
    """{storage key: element size} from the persistent ids of a zip data.pkl."""
    _, _, u = R.safe_load_at(data_pkl, 0)
    return {pid[2]: R.STORAGE_ELEMENT_SIZE[pid[1].qualname.split(".")[-1]]
            for pid in u.persistent_ids}


def byteswap(raw, size):
    return np.frombuffer(raw, dtype=f"u{size}").byteswap().tobytes() if size > 1 else raw


# ------------------------------------------------------------------ zip variants

def make_proto(protocol):
    path = OUT / f"zip_proto{protocol}.pth"
    obj = nested_object()
    torch.save(obj, path, pickle_protocol=protocol)
    exp = expected(path, "zip", load(path), ("state_dict",))
    assert exp["object"] == R.encode_object(obj)
    ops = main_scans(path, "zip")[0]["opcodes"]
    for op in ("FRAME", "SHORT_BINUNICODE", "STACK_GLOBAL", "MEMOIZE", "SHORT_BINBYTES"):
        assert op in ops, f"{path.name}: no {op}"
    assert exp["pickle_protocol"] == protocol
    emit(path, exp)


def make_deflated():
    src = OUT / "zip_nested.pth"
    path = OUT / "zip_deflated.pth"
    entries = [("my_model/" + n.split("/", 1)[1], data) for n, data in zip_entries(src)]
    R.write_zip(path, entries, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as z:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())
    note = "copy of zip_nested.pth with ZIP_DEFLATED entries under my_model/"
    try:
        obj, readable = load(path), True
    except Exception as e:                  # keep the fixture, take values from the source
        obj, readable = load(src), False
        note += f"; torch {torch.__version__} cannot read it: {e}"
    emit(path, expected(path, "zip", obj, ("state_dict",), readable, note))
    return readable


def make_bigendian():
    src = OUT / "zip_dtypes.pth"
    path = OUT / "zip_bigendian.pth"
    entries = {n.split("/", 1)[1]: data for n, data in zip_entries(src)}
    sizes = storage_element_sizes(entries["data.pkl"])
    out = [("data.pkl", entries["data.pkl"]), ("byteorder", b"big")]
    out += [(f"data/{k}", byteswap(entries[f"data/{k}"], sizes[k])) for k in sorted(sizes)]
    out += [("version", entries["version"])]
    R.write_zip(path, [("zip_bigendian/" + n, d) for n, d in out])
    # torch 1.13 ignores `byteorder`, so it loads byte-swapped values: swapping
    # them back must give exactly zip_dtypes' tensors.
    good, swapped = load(src), load(path)
    for k, t in good.items():
        back = byteswap(R.tensor_le_bytes(swapped[k]), t.element_size())
        assert back == R.tensor_le_bytes(t), k
    note = ("zip_dtypes.pth with every data/<key> entry byte-swapped per element and a "
            "'byteorder' entry containing 'big'; values are zip_dtypes' logical values. "
            f"torch {torch.__version__} ignores 'byteorder' (newer torch byte-swaps when it "
            "differs from sys.byteorder), so it loads swapped values.")
    emit(path, expected(path, "zip", good, (), False, note))


# ------------------------------------------------------------------ tar

def make_tar():
    path = OUT / "tar_small.pth"
    torch.manual_seed(1)

    def f32(t):
        return t.to(torch.float32).contiguous().numpy().tobytes()

    # storage key -> (class, flat reference tensor)
    S = collections.OrderedDict()
    S[93000011] = ("FloatStorage", torch.arange(10, dtype=torch.float32) * 1.25 - 3)  # view root
    S[93000001] = ("FloatStorage", torch.randn(108))
    S[93000002] = ("FloatStorage", torch.randn(4) * 0.1)
    S[93000003] = ("FloatStorage", torch.rand(4) + 0.5)
    S[93000004] = ("FloatStorage", torch.rand(4) + 0.5)
    S[93000005] = ("FloatStorage", torch.randn(4) * 0.1)
    S[93000006] = ("FloatStorage", torch.randn(24))      # 8x3 row-major, used as [3, 8]^T
    S[93000007] = ("FloatStorage", torch.randn(5))
    S[93000008] = ("FloatStorage", torch.arange(12, dtype=torch.float32) * 0.5)
    S[93000009] = ("LongStorage", torch.tensor([0, -1, 2**62 + 3, -2**63, 2**63 - 1]))
    S[93000010] = ("ByteStorage", torch.tensor([0, 1, 255, 128, 7, 3], dtype=torch.uint8))
    VIEW, ROOT, VOFF, VNUMEL = 93000012, 93000011, 4, 5
    views = [(VIEW, ROOT, VOFF, VNUMEL)]

    # name, tensor key, storage key, tensor class, sizes, strides, offset, is_param
    T = [
        ("conv1.weight", 94000001, 93000001, "FloatTensor", [4, 3, 3, 3], [27, 9, 3, 1], 0, True),
        ("bn1.running_mean", 94000002, 93000002, "FloatTensor", [4], [1], 0, False),
        ("bn1.running_var", 94000003, 93000003, "FloatTensor", [4], [1], 0, False),
        ("bn1.weight", 94000004, 93000004, "FloatTensor", [4], [1], 0, True),
        ("bn1.bias", 94000005, 93000005, "FloatTensor", [4], [1], 0, True),
        ("fc.weight", 94000006, 93000006, "FloatTensor", [3, 8], [1, 3], 0, True),
        ("fc.bias", 94000007, 93000007, "FloatTensor", [3], [1], 2, True),
        ("shared.a", 94000008, 93000008, "FloatTensor", [3, 4], [4, 1], 0, False),
        ("shared.b", 94000009, 93000008, "FloatTensor", [2, 2], [4, 1], 5, False),
        ("steps", 94000010, 93000009, "LongTensor", [5], [1], 0, False),
        ("mask", 94000011, 93000010, "ByteTensor", [2, 3], [3, 1], 0, False),
        ("view.root", 94000012, ROOT, "FloatTensor", [10], [1], 0, False),
        ("view.sub", 94000013, VIEW, "FloatTensor", [2, 2], [2, 1], 1, False),
    ]
    pads = [b"\x07\x00\x00\x00", b"\x00\x00\x00\x00", b"\xde\xad\xbe\xef"]  # ignored by readers
    tensors = [(key, skey, cls, sizes, strides, off, pads[i % 3])
               for i, (_, key, skey, cls, sizes, strides, off, _) in enumerate(reversed(T))]
    storages = [(k, cls, ref.numel(), ref.contiguous().numpy().tobytes()) for k, (cls, ref) in S.items()]
    entries = [(name, key, is_param) for name, key, *_, is_param in T]
    path.write_bytes(tar_writer.tar_checkpoint(entries, tensors, storages, views))

    # torch.load must give exactly the intended tensors.
    sd = torch.load(path)
    assert list(sd.keys()) == [t[0] for t in T]
    for name, key, skey, cls, sizes, strides, off, is_param in T:
        t = sd[name]
        if skey == VIEW:
            flat, base = S[ROOT][1], VOFF
        else:
            flat, base = S[skey][1], 0
        ref = torch.as_strided(flat, sizes, strides, base + off)
        assert t.dtype == flat.dtype and list(t.shape) == sizes and list(t.stride()) == strides
        assert t.storage_offset() == off and torch.equal(t.detach(), ref), name
        assert isinstance(t, torch.nn.Parameter) == is_param and t.requires_grad == is_param
    su = {n: sd[n].storage()._storage for n in sd}
    assert su["shared.a"]._cdata == su["shared.b"]._cdata
    assert su["view.sub"].data_ptr() == su["view.root"].data_ptr() + 4 * VOFF
    exp = expected(path, "tar", sd)
    enc = dict((k, v["tensor"]) for k, v in exp["object"]["dict"])
    assert enc["view.sub"]["storage"] == enc["view.root"]["storage"]
    assert enc["view.sub"]["storage_offset"] == VOFF + 1
    assert enc["shared.a"]["storage"] == enc["shared.b"]["storage"]
    assert exp["pickle_protocol"] == 2
    emit(path, exp)


# ------------------------------------------------------------------ hostile

def _frame(body):
    return b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body


HOSTILE_NOTE = "hand-written; the reader must refuse it before executing anything"


def hostile(fname, fmt, data, kind, entry, offset, **extra):
    path = OUT / fname
    if fmt == "zip":
        R.write_zip(path, [(entry, data), ("archive/version", b"3\n")])
    else:
        path.write_bytes(data)
    # torch's restricted unpickler must refuse it too (nothing is executed).
    try:
        torch.load(path, weights_only=True)
        raise AssertionError(f"{fname}: weights_only load accepted a hostile file")
    except pickle.UnpicklingError:
        pass
    err = {"kind": kind, **extra, "entry": entry if fmt == "zip" else None, "offset": offset}
    R.write_json(path.with_suffix(".expected.json"),
                 {"generator": GENERATOR, "file": fname, "format": fmt,
                  "expect_error": err, "note": HOSTILE_NOTE})
    print(f"  {fname:28s} {path.stat().st_size:7d} B  {kind} @ {offset}")


def global_at(buf, start, module, attr):
    (pos, m, a), = R.scan_pickle(buf, start)["globals"]
    assert (m, a) == (module, attr)
    return pos


def make_hostile():
    entry = "archive/data.pkl"
    # {'model': os.system('echo hostile fixture')} -- GLOBAL + REDUCE
    p = (b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01cos\nsystem\nq\x02"
         b"X\x14\x00\x00\x00echo hostile fixtureq\x03\x85q\x04Rq\x05s.")
    hostile("hostile_os_system.pth", "zip", p, "refusedGlobal", entry,
            global_at(p, 0, "os", "system"), module="os", name="system")

    # {'model': builtins.eval('6*7')} -- protocol 4, STACK_GLOBAL
    p = _frame(b"}\x94\x8c\x05model\x94\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94"
               b"\x8c\x036*7\x94\x85\x94R\x94s.")
    hostile("hostile_eval.pth", "zip", p, "refusedGlobal", entry,
            global_at(p, 0, "builtins", "eval"), module="builtins", name="eval")

    # {'model': <0xff>  -- not an opcode
    prefix = b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01"
    p = prefix + b"\xff."
    try:
        list(pickletools.genops(p))
        raise AssertionError("0xff accepted")
    except ValueError as e:
        assert f"at position {len(prefix)}" in str(e), e
    hostile("hostile_unknown_opcode.pth", "zip", p, "unknownOpcode", entry,
            len(prefix), opcode=0xFF)

    # legacy stream whose object pickle is {'model': subprocess.Popen('true')}
    head = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                            "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2))
    body = (b"\x80\x02}q\x00X\x05\x00\x00\x00modelq\x01csubprocess\nPopen\nq\x02"
            b"X\x04\x00\x00\x00trueq\x03\x85q\x04Rq\x05s.")
    data = head + body + pickle.dumps([], protocol=2)
    hostile("hostile_legacy_subprocess.pth", "legacy", data, "refusedGlobal", None,
            global_at(data, len(head), "subprocess", "Popen"), module="subprocess", name="Popen")


# ------------------------------------------------------------------ main

def main():
    print(f"torch {torch.__version__}  (python {sys.version.split()[0]})")
    OUT.mkdir(parents=True, exist_ok=True)
    save_pair("dtypes", dtypes_object())
    save_pair("views", views_object())
    save_pair("nested", nested_object(), ("state_dict",))
    make_proto(4)
    make_proto(5)
    make_deflated()
    make_bigendian()
    make_tar()
    make_hostile()
    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"Tests/Fixtures total: {total} bytes")


if __name__ == "__main__":
    main()
