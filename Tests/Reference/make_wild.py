#!/usr/bin/env -S /usr/bin/python3
"""Writes Tests/Fixtures/wild: one small checkpoint for each kind of file found in the wild that
pth2swt once refused, with what torch says is in it.

    /usr/bin/python3 Tests/Reference/make_wild.py      (Debian python3-torch 1.13, torchvision 0.14)
    ref/bin/python Tests/Reference/make_wild.py        (the same torch, plus omegaconf for omegaconf_hparams)

Every <stem>.pth gets <stem>.expected.json:

  generator, torch_version, file, note,
  stub_classes      true when pth2swt needs --stub-classes (LoadOptions.stubClasses) to read it;
  refused_global    then: the first global outside the reader's default allowlist, which the
                    default mode must refuse by name;
  stubbed           the globals that become records: those torch 1.13's weights_only unpickler
                    refuses (torch._weights_only_unpickler._get_allowed_globals), less EXTRA_ALLOWED,
                    in order of first use (TorchScript: its __torch__ classes, read as records by
                    default);
  torchscript       true for a torch.jit.save archive;
  state_dict_path   the dotted path of the state dict pth2swt should pick ("" = the root);
  state_dict_kind   dict | module | tensor;
  tensors           [{name, dtype, shape, sha256}] of that state dict in order, from torch.load
                    (torch.load(...)[path], model.state_dict() for a whole model,
                    torch.jit.load(f).state_dict() for TorchScript); sha256 of the contiguous
                    little-endian bytes;
  all_tensors       optional: the same for every tensor and numpy array in the file, named by
                    dotted path (dict keys, list indices, attributes; a module's _modules,
                    _parameters and _buffers left out);
  values            optional: numpy scalars as torch.load gives them, {"int"|"float"|"bool": value}.

TorchScript archives differ from run to run in bytes pth2swt does not read (serialization ids),
and so does whole_legacy_sequential.pth in the order of its storages (torch sorts them by memory
address; the keys themselves are renumbered); the expected JSON does not.

Files that torch 1.13 cannot write (a PyTorch 0.3 OrderedDict built from [key, value] lists, the
_rebuild_tensor v1 function, cuda:0 storages, 0.4's Parameter/Variable reductions) are assembled
opcode by opcode below, and torch.load (map_location='cpu') must read each before it is kept.
Deterministic: fixed seeds, fixed zip timestamps.
"""
import argparse
import collections
import hashlib
import io
import json
import math
import os
import pickle
import struct
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_consumer_fixture  # noqa: E402  (its periodic `pattern` keeps a whole resnet18 small)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "wild"
GENERATOR = "Tests/Reference/make_wild.py"

# Globals pth2swt reads by default beyond torch 1.13's weights_only allowlist: older and newer tensor
# rebuild functions, and numpy's constructors of plain arrays, dtypes and scalars.
EXTRA_ALLOWED = {
    # torch 2.x allows these too: how protocol 2 spells bytes, and the builtin containers.
    "_codecs.encode", "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.bytes",
    "builtins.complex",
    "builtins.dict", "builtins.object", "__builtin__.object",
    "torch._utils._rebuild_tensor", "torch.autograd.variable.Variable",
    "torch._tensor._rebuild_from_type", "torch._tensor._rebuild_from_type_v2",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "copyreg.__newobj__", "copyreg._reconstructor",
    "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype",
    "numpy.core.multiarray.scalar", "numpy.core.numeric._frombuffer",
}


def allowed_by_torch():
    from torch._weights_only_unpickler import _get_allowed_globals
    names = set(_get_allowed_globals())
    # Storage classes are allowed by a rule, not by name, in torch 1.13.
    names |= {f"torch.{t}Storage" for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int",
                                              "Short", "Char", "Byte", "Bool")}
    names |= {f"torch.cuda.{t}Storage" for t in ("Float", "Long")}
    return names


def globals_in(pkl):
    """module.name of every GLOBAL / STACK_GLOBAL, first use first (refutil's static scan)."""
    import refutil as R
    scan = R.scan_pickle(pkl)
    out = []
    for _, m, n in scan["globals"]:
        g = f"{m}.{n}"                     # as the file spells it (Python 2's __builtin__ included)
        if g not in out:
            out.append(g)
    return out


def sha(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        raw = t.view(torch.int16).numpy().tobytes()
    else:
        raw = t.numpy().tobytes()
    return hashlib.sha256(raw).hexdigest()


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def tensor_rows(items):
    rows = []
    for name, t in items:
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(t).astype(t.dtype.newbyteorder("<")))
        rows.append({"name": name, "dtype": dtype_name(t.dtype), "shape": list(t.shape), "sha256": sha(t)})
    return rows


def walk(obj, path=()):
    """Every tensor / ndarray with its dotted path, as pth2swt's --all-tensors names them."""
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        yield (".".join(path) or "tensor"), obj
    elif isinstance(obj, torch.nn.Module):
        for k, v in vars(obj).items():
            if k in ("_modules", "_parameters", "_buffers"):
                for k2, v2 in v.items():
                    yield from walk(v2, path + (k2,))
            else:
                yield from walk(v, path + (k,))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, path + (str(k),))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from walk(v, path + (str(i),))
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        for k, v in vars(obj).items():
            yield from walk(v, path + (k,))


def data_pkl(path):
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


def legacy_object_pkl(path):
    import refutil as R
    buf = Path(path).read_bytes()
    pos = 0
    for _ in range(3):
        pos = R.scan_pickle(buf, pos)["end"]
    end = R.scan_pickle(buf, pos)["end"]
    return buf[pos:end]


def emit(stem, exp, path):
    exp = {"generator": GENERATOR, "torch_version": torch.__version__, "file": path.name, **exp}
    with open(OUT / f"{stem}.expected.json", "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")
    print(f"  {path.name:32s} {path.stat().st_size:9d} B  {exp['state_dict_kind']:6s} "
          f"'{exp['state_dict_path']}'  {len(exp['tensors'])} tensors  stub={exp['stub_classes']}")


def describe(stem, pkl, *, note, sd_path, kind, sd_items, all_items=None, values=None, torchscript=False):
    names = globals_in(pkl)
    torch_ok = allowed_by_torch()
    if torchscript:
        stubbed = [g for g in names if g.startswith("__torch__")]
        outside = []
    else:
        def known(g):
            g2 = "builtins." + g[len("__builtin__."):] if g.startswith("__builtin__.") else g
            return g2 in torch_ok or g2 in EXTRA_ALLOWED
        outside = [g for g in names if not known(g)]
        stubbed = outside
    exp = {"note": note, "stub_classes": bool(outside)}
    if outside:
        exp["refused_global"] = outside[0]
    exp.update({"stubbed": stubbed, "torchscript": torchscript, "state_dict_path": sd_path,
                "state_dict_kind": kind, "tensors": tensor_rows(sd_items)})
    if all_items is not None:
        exp["all_tensors"] = tensor_rows(all_items)
    if values is not None:
        exp["values"] = values
    return exp


def small_sd(seed, width=4):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3), torch.nn.BatchNorm2d(width), torch.nn.Flatten(),
                            torch.nn.Linear(width, 2))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].num_batches_tracked += 3
    return m, m.state_dict()


def save(obj, stem, **kw):
    path = OUT / f"{stem}.pth"
    torch.save(obj, path, **kw)
    return path


def fixed_zip(path):
    """Rewrite a torch.save zip with fixed timestamps (torch writes fixed ones already; kept for
    archives written through zipfile)."""
    return path


# ---------------------------------------------------------------------------------------------
# Hand-assembled pickles (PyTorch 0.3 / 0.4 era)

class P:
    """A protocol 2 pickle written opcode by opcode."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")

    def g(self, module, name):
        self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def mark(self): self.b += b"("
    def tuple(self): self.b += b"t"
    def list(self): self.b += b"l"
    def reduce(self): self.b += b"R"
    def build(self): self.b += b"b"
    def persid(self): self.b += b"Q"
    def none(self): self.b += b"N"
    def true(self): self.b += b"\x88"
    def false(self): self.b += b"\x89"
    def empty_dict(self): self.b += b"}"
    def empty_tuple(self): self.b += b")"
    def setitems(self): self.b += b"u"
    def stop(self): self.b += b"."

    def int(self, v): self.b += b"J" + struct.pack("<i", v)

    def py2str(self, s):     # SHORT_BINSTRING: Python 2's str
        e = s.encode()
        self.b += b"U" + bytes([len(e)]) + e

    def str(self, s):
        e = s.encode()
        self.b += b"X" + struct.pack("<I", len(e)) + e

    def ints(self, xs):
        self.mark()
        for x in xs:
            self.int(x)
        self.tuple()

    def storage(self, cls_module, cls, key, location, numel):
        self.mark(); self.str("storage"); self.g(cls_module, cls); self.str(key); self.str(location)
        self.int(numel); self.none(); self.tuple(); self.persid()

    def ordered_dict_empty(self):
        self.g("collections", "OrderedDict"); self.empty_tuple(); self.reduce()


def legacy_file(path, obj_pickle, storages):
    """storages: [(key, raw bytes, numel)] in file order."""
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=4))
    with open(path, "wb") as f:
        f.write(pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2))
        f.write(pickle.dumps(1001, protocol=2))
        f.write(pickle.dumps(sys_info, protocol=2))
        f.write(bytes(obj_pickle))
        f.write(pickle.dumps([k for k, _, _ in storages], protocol=2))
        for _, raw, numel in storages:
            f.write(struct.pack("<q", numel))
            f.write(raw)


def make_legacy_v03():
    """0.3: OrderedDict(REDUCE, [[key, tensor], …]) with Python 2 str keys, _rebuild_tensor v1,
    torch.cuda storages saved on cuda:0, two tensors sharing one storage at different offsets."""
    torch.manual_seed(3)
    w = torch.randn(6, 5)
    b = torch.randn(6)
    counts = torch.tensor([7, -2, 1 << 40], dtype=torch.int64)
    shared = torch.arange(12, dtype=torch.float32) * 0.5
    p = P()
    p.g("collections", "OrderedDict")
    p.mark()                       # the argument tuple
    p.mark()                       # the list of pairs

    def pair(key, skey, numel, cls, size, stride, offset=0, location="cuda:0"):
        p.mark(); p.py2str(key)
        p.g("torch._utils", "_rebuild_tensor")
        p.mark(); p.storage("torch.cuda", cls, skey, location, numel); p.int(offset); p.ints(size); p.ints(stride); p.tuple()
        p.reduce()
        p.list()

    pair("lin.weight", "1", 30, "FloatStorage", [6, 5], [5, 1])
    pair("lin.bias", "2", 6, "FloatStorage", [6], [1])
    pair("counts", "3", 3, "LongStorage", [3], [1])
    pair("shared.a", "4", 12, "FloatStorage", [2, 3], [3, 1], offset=0)
    pair("shared.b", "4", 12, "FloatStorage", [3, 2], [1, 3], offset=6)
    p.list()
    p.tuple()
    p.reduce()
    p.stop()
    path = OUT / "legacy_v03_lists.pth"
    legacy_file(path, p.b, [("1", w.numpy().tobytes(), 30), ("2", b.numpy().tobytes(), 6),
                            ("3", counts.numpy().tobytes(), 3), ("4", shared.numpy().tobytes(), 12)])
    got = torch.load(path, map_location="cpu")
    assert isinstance(got, collections.OrderedDict) and list(got) == ["lin.weight", "lin.bias", "counts", "shared.a", "shared.b"]
    assert torch.equal(got["lin.weight"], w) and torch.equal(got["counts"], counts)
    assert torch.equal(got["shared.b"], shared[6:].reshape(2, 3).t())
    exp = describe("legacy_v03_lists", legacy_object_pkl(path),
                   note="PyTorch 0.3 era: OrderedDict from [key, value] lists, _rebuild_tensor, cuda:0 storages",
                   sd_path="", kind="dict", sd_items=list(got.items()))
    exp["storage_locations"] = ["cuda:0"]
    emit("legacy_v03_lists", exp, path)


def make_legacy_rebuilds():
    """Every tensor reduction torch.load has accepted since 0.3, one entry each."""
    torch.manual_seed(4)
    ts = {k: torch.randn(2, 3) for k in ("v1", "v2", "param04", "variable03", "param10", "fromtype", "numpy")}
    p = P()
    p.empty_dict()
    p.mark()
    keys = list(ts)
    def storage_of(i):
        p.storage("torch", "FloatStorage", str(i), "cpu", 6)

    def v2(i, rg=False):
        p.g("torch._utils", "_rebuild_tensor_v2")
        p.mark(); storage_of(i); p.int(0); p.ints([2, 3]); p.ints([3, 1]); (p.true() if rg else p.false()); p.ordered_dict_empty(); p.tuple()
        p.reduce()

    # v1
    p.str("v1"); p.g("torch._utils", "_rebuild_tensor"); p.mark(); storage_of(0); p.int(0); p.ints([2, 3]); p.ints([3, 1]); p.tuple(); p.reduce()
    # v2
    p.str("v2"); v2(1)
    # 0.4: (Parameter, (data, requires_grad))
    p.str("param04"); p.g("torch.nn.parameter", "Parameter"); p.mark(); v2(2); p.true(); p.tuple(); p.reduce()
    # 0.3: (Variable, (data,)) then BUILD (requires_grad, volatile, backward_hooks)
    p.str("variable03"); p.g("torch.autograd.variable", "Variable"); p.mark(); v2(3); p.tuple(); p.reduce()
    p.mark(); p.true(); p.false(); p.ordered_dict_empty(); p.tuple(); p.build()
    # 1.0: _rebuild_parameter(data, requires_grad, backward_hooks)
    p.str("param10"); p.g("torch._utils", "_rebuild_parameter"); p.mark(); v2(4); p.false(); p.ordered_dict_empty(); p.tuple(); p.reduce()
    # 1.10: _rebuild_from_type_v2(func, new_type, args, state)
    p.str("fromtype"); p.g("torch._tensor", "_rebuild_from_type_v2"); p.mark()
    p.g("torch._utils", "_rebuild_tensor_v2"); p.g("torch", "Tensor")
    p.mark(); storage_of(5); p.int(0); p.ints([2, 3]); p.ints([3, 1]); p.false(); p.ordered_dict_empty(); p.tuple()
    p.empty_dict(); p.tuple(); p.reduce()
    # _rebuild_device_tensor_from_numpy(ndarray, dtype, device, requires_grad)
    arr = pickle.dumps(ts["numpy"].numpy(), protocol=2)
    assert arr[:2] == b"\x80\x02" and arr[-1:] == b"."
    p.str("numpy"); p.g("torch._utils", "_rebuild_device_tensor_from_numpy"); p.mark()
    # The ndarray's own pickle, memo indices shifted out of the way of ours (we use none).
    p.b += arr[2:-1]
    p.g("torch", "float32"); p.str("cpu"); p.false(); p.tuple(); p.reduce()
    p.setitems()
    p.stop()
    path = OUT / "legacy_rebuilds.pth"
    order = [k for k in keys if k != "numpy"]
    legacy_file(path, p.b, [(str(i), ts[k].numpy().tobytes(), 6) for i, k in enumerate(order)])
    got = torch.load(path)
    assert list(got) == keys, list(got)
    for k in keys:
        assert torch.equal(got[k], ts[k]), k
    assert isinstance(got["param04"], torch.nn.Parameter) and got["variable03"].requires_grad
    exp = describe("legacy_rebuilds", legacy_object_pkl(path),
                   note="every tensor reduction since 0.3: _rebuild_tensor, _v2, (Parameter, (t, rg)), "
                        "(Variable, (t,)) + BUILD, _rebuild_parameter, _rebuild_from_type_v2, "
                        "_rebuild_device_tensor_from_numpy",
                   sd_path="", kind="dict", sd_items=list(got.items()))
    exp["requires_grad"] = {k: bool(v.requires_grad) for k, v in got.items()}
    emit("legacy_rebuilds", exp, path)


# ---------------------------------------------------------------------------------------------

def make_nesting():
    m, sd = small_sd(10)
    opt = torch.optim.Adam(m.parameters(), lr=0.1)
    m(torch.randn(2, 3, 3, 3)).sum().backward()
    opt.step()
    shapes = {
        "nest_model_state": ({"step": torch.tensor(5), "model_state": sd, "optimizer_state": opt.state_dict()},
                             "model_state", "training checkpoint: a stray tensor at the root, the optimizer's moments"),
        "nest_model_state_dict": ({"model": {"state_dict": sd}, "epoch": 3}, "model.state_dict", "{'model': {'state_dict': …}}"),
        "nest_net_ema": ({"net": sd, "ema": small_sd(11)[1], "optimizer": opt.state_dict()}, "net",
                         "two state dicts: 'net' is preferred over 'ema'"),
        "nest_deep": ({"run": {"checkpoints": [{"weights": sd, "tag": "last"}]}}, "run.checkpoints.0.weights",
                      "a state dict four levels down, under a list"),
    }
    for stem, (obj, sd_path, note) in shapes.items():
        path = save(obj, stem)
        got = torch.load(path)
        target = got
        for k in sd_path.split("."):
            target = target[int(k)] if isinstance(target, list) else target[k]
        exp = describe(stem, data_pkl(path), note=note, sd_path=sd_path, kind="dict", sd_items=list(target.items()),
                       all_items=list(walk(got)))
        emit(stem, exp, path)


def make_bare():
    t = torch.tensor(2.6592)                      # CLIP's logit_scale, saved alone
    path = save(t, "bare_tensor")
    got = torch.load(path)
    emit("bare_tensor", describe("bare_tensor", data_pkl(path), note="torch.save(0-d tensor)", sd_path="",
                                 kind="tensor", sd_items=[("tensor", got)]), path)
    torch.manual_seed(5)
    prm = torch.nn.Parameter(torch.randn(3, 4))
    path = save(prm, "bare_parameter")
    got = torch.load(path)
    assert isinstance(got, torch.nn.Parameter)
    emit("bare_parameter", describe("bare_parameter", data_pkl(path), note="torch.save(Parameter)", sd_path="",
                                    kind="tensor", sd_items=[("tensor", got)]), path)


def make_numpy():
    _, sd = small_sd(12)
    obj = {
        "state_dict": sd,
        "config": {
            "mean": np.array([0.485, 0.456, 0.406], dtype=np.float32),
            "index": np.arange(5, dtype=np.int64),
            "mask": np.array([True, False, True]),
            "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
            "big_endian": np.arange(4, dtype=">i4"),
            "half": np.array([1.5, -2.25], dtype=np.float16),
            "bytes": np.array([1, 2, 255], dtype=np.uint8),
            "scale": np.float64(1.5),
            "lr": np.float32(0.25),
            "steps": np.int64(7),
            "small": np.int8(-3),
            "flag": np.bool_(True),
            "dtype": np.dtype("float32"),
        },
    }
    path = save(obj, "numpy_values")
    got = torch.load(path)
    def typed(v):
        v = v.item()
        return {"bool": v} if isinstance(v, bool) else {"int": v} if isinstance(v, int) else {"float": v}
    values = {k: typed(v) for k, v in got["config"].items() if isinstance(v, np.generic)}
    exp = describe("numpy_values", data_pkl(path), note="numpy arrays (C and Fortran order, big-endian, "
                   "float16, bool, uint8) and scalars in a training config", sd_path="state_dict", kind="dict",
                   sd_items=list(got["state_dict"].items()), all_items=list(walk(got)), values=values)
    emit("numpy_values", exp, path)

    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    path = save(a, "numpy_root")
    got = torch.load(path)
    emit("numpy_root", describe("numpy_root", data_pkl(path), note="torch.save(numpy array)", sd_path="",
                                kind="tensor", sd_items=[("tensor", got)]), path)


def make_namespace():
    _, sd = small_sd(13)
    args = argparse.Namespace(lr=0.001, hidden=[300, 300], activation="ReLU", seed=0)
    path = save({"args": args, "state_dict": sd}, "namespace_args")
    got = torch.load(path)
    emit("namespace_args", describe("namespace_args", data_pkl(path),
                                    note="chemprop style: {'args': argparse.Namespace, 'state_dict': …}",
                                    sd_path="state_dict", kind="dict", sd_items=list(got["state_dict"].items())), path)


def make_whole_resnet18():
    model = torchvision.models.resnet18()
    with torch.no_grad():
        for k, t in model.state_dict().items():
            t.copy_(make_consumer_fixture.pattern(k, list(t.shape)).to(t.dtype))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    stored = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    path = OUT / "whole_resnet18.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info in stored.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            head = info.file_size == 1000 * 512 * 4     # fc.weight stays stored: see make_consumer_fixture
            entry.compress_type = zipfile.ZIP_STORED if head else zipfile.ZIP_DEFLATED
            z.writestr(entry, stored.read(info.filename))
    got = torch.load(path)
    assert type(got).__name__ == "ResNet"
    sd = got.state_dict()
    emit("whole_resnet18", describe("whole_resnet18", data_pkl(path),
                                    note="torch.save(torchvision.models.resnet18()), whole; periodic weights, deflated",
                                    sd_path="", kind="module", sd_items=list(sd.items()),
                                    all_items=list(walk(got))), path)


def renumber_legacy_storages(path):
    """Legacy files key storages by memory address; renumber them in the order torch wrote them.
    Only the object pickle's BINUNICODE keys and the key list change (found by opcode scans; nothing
    is unpickled but the key list, a list of str)."""
    import refutil as R
    buf = Path(path).read_bytes()
    pos = 0
    for _ in range(3):
        pos = R.scan_pickle(buf, pos)["end"]
    obj_start, obj_end = pos, R.scan_pickle(buf, pos)["end"]
    keys_end = R.scan_pickle(buf, obj_end)["end"]
    keys = pickle.loads(buf[obj_end:keys_end])
    assert all(isinstance(k, str) for k in keys)
    new = {k: str(140000000000000 + 4096 * i) for i, k in enumerate(keys)}
    body = buf[obj_start:obj_end]
    for old, k in new.items():
        pat = b"X" + struct.pack("<I", len(old)) + old.encode()
        assert body.count(pat) >= 1
        body = body.replace(pat, b"X" + struct.pack("<I", len(k)) + k.encode())
    Path(path).write_bytes(buf[:obj_start] + body + pickle.dumps([new[k] for k in keys], protocol=2) + buf[keys_end:])


def make_whole_legacy():
    """torch.save(model, _use_new_zipfile_serialization=False): the legacy writer's persistent ids
    name each module class with its source text: ('module', class, source_file, source)."""
    torch.manual_seed(16)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    path = OUT / "whole_legacy_sequential.pth"
    torch.save(model, path, _use_new_zipfile_serialization=False)
    renumber_legacy_storages(path)
    got = torch.load(path)
    assert isinstance(got, torch.nn.Sequential)
    emit("whole_legacy_sequential", describe("whole_legacy_sequential", legacy_object_pkl(path),
         note="a whole nn.Sequential in the legacy format: ('module', class, source_file, source) persistent ids",
         sd_path="", kind="module", sd_items=list(got.state_dict().items()), all_items=list(walk(got))), path)


LIGHTNING_MODULE = '''
class AttributeDict(dict):
    """Like pytorch_lightning.utilities.parsing.AttributeDict."""
    def __getattr__(self, key):
        return self[key]


class LoopState:
    def __init__(self, step, best):
        self.step = step
        self.best = best
'''


def make_lightning():
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "throwaway_lightning.py"), "w") as f:
        f.write(LIGHTNING_MODULE)
    sys.path.insert(0, tmp)
    import throwaway_lightning as L
    m, sd = small_sd(14)
    prefixed = collections.OrderedDict(("model." + k, v) for k, v in sd.items())
    prefixed._metadata = sd._metadata
    obj = {
        "epoch": 4, "global_step": 120, "pytorch-lightning_version": "1.9.0",
        "state_dict": prefixed,
        "loops": {"fit_loop": L.LoopState(step=120, best=torch.tensor(0.125))},
        "hyper_parameters": L.AttributeDict(lr=0.01, layers=[3, 4], name="tiny"),
    }
    path = save(obj, "lightning_like")
    got = torch.load(path)
    exp = describe("lightning_like", data_pkl(path),
                   note="Lightning-like: AttributeDict (a dict subclass) and a custom class from a module only the "
                        "writer had (throwaway_lightning, deleted after writing)",
                   sd_path="state_dict", kind="dict", sd_items=list(got["state_dict"].items()),
                   all_items=list(walk(got)))
    emit("lightning_like", exp, path)
    sys.path.remove(tmp)


YOLO_MODULE = '''
import torch


class Conv(torch.nn.Module):
    """Like ultralytics.nn.modules.conv.Conv: conv, batch norm, SiLU."""
    def __init__(self, c1, c2, k=1, s=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = torch.nn.BatchNorm2d(c2)
        self.act = torch.nn.SiLU()


class DetectionModel(torch.nn.Module):
    """Like ultralytics.nn.tasks.DetectionModel: a Sequential under .model, plus plain attributes."""
    def __init__(self):
        super().__init__()
        self.yaml = {"nc": 3, "depth_multiple": 0.33, "backbone": [[-1, 1, "Conv", [8, 3, 2]]]}
        self.model = torch.nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), torch.nn.Conv2d(16, 8, 1))
        self.names = {0: "cat", 1: "dog", 2: "bird"}
        self.stride = torch.tensor([8.0, 16.0, 32.0])
'''


def make_ultralytics_like():
    """An Ultralytics-style .pt: {'model': DetectionModel in float16, 'ema': None, …}, classes from a
    module only the writer had."""
    tmp = tempfile.mkdtemp()
    with open(os.path.join(tmp, "throwaway_yolo.py"), "w") as f:
        f.write(YOLO_MODULE)
    sys.path.insert(0, tmp)
    import throwaway_yolo as Y
    torch.manual_seed(17)
    model = Y.DetectionModel().half()
    obj = {"epoch": -1, "best_fitness": None, "model": model, "ema": None, "updates": None, "optimizer": None,
           "train_args": {"imgsz": 64, "batch": 2, "data": "toy.yaml"}, "date": "2026-12-02T00:00:00", "version": "8.0.0"}
    path = save(obj, "ultralytics_like")
    got = torch.load(path)
    emit("ultralytics_like", describe("ultralytics_like", data_pkl(path),
         note="Ultralytics-style .pt: the whole DetectionModel (float16) under 'model', None beside it",
         sd_path="model", kind="module", sd_items=list(got["model"].state_dict().items()),
         all_items=list(walk(got))), path)
    sys.path.remove(tmp)


def make_omegaconf():
    """Hyper-parameters as omegaconf's DictConfig/ListConfig (the real classes). Needs omegaconf, which
    Debian does not package: run this script with the peer venv's python (ref/bin/python, which sees
    Debian's torch) after `ref/bin/pip install omegaconf`; elsewhere the fixture is left as it is."""
    try:
        from omegaconf import OmegaConf, __version__ as omegaconf_version
    except ImportError:
        print("  omegaconf_hparams.pth: skipped, omegaconf is not installed (see make_omegaconf)")
        return
    _, sd = small_sd(18)
    hparams = OmegaConf.create({"lr": 0.001, "layers": [3, 4], "optim": {"name": "adam", "betas": [0.9, 0.999]}})
    path = save({"state_dict": sd, "hyper_parameters": hparams, "epoch": 2}, "omegaconf_hparams")
    got = torch.load(path)
    exp = describe("omegaconf_hparams", data_pkl(path),
                   note=f"Lightning-style checkpoint whose hyper_parameters are omegaconf {omegaconf_version} "
                        "DictConfig/ListConfig objects",
                   sd_path="state_dict", kind="dict", sd_items=list(got["state_dict"].items()))
    emit("omegaconf_hparams", exp, path)


class SmallResNet(torch.nn.Module):
    """torchvision's BasicBlock at 8 and 16 channels: a resnet small enough to commit."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(8, 8)
        down = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, stride=2, bias=False), torch.nn.BatchNorm2d(16))
        self.layer2 = BasicBlock(8, 16, stride=2, downsample=down)
        self.fc = torch.nn.Linear(16, 5)
        self.register_buffer("temperature", torch.tensor(1.5))
        self.register_buffer("scratch", torch.zeros(2), persistent=False)

    def forward(self, x):
        x = self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean((2, 3))) / self.temperature


def make_torchscript():
    torch.manual_seed(15)
    m = SmallResNet().eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
    path = OUT / "torchscript_small_resnet.pt"
    torch.jit.save(torch.jit.script(m), str(path))
    loaded = torch.jit.load(str(path))
    sd = loaded.state_dict()
    emit("torchscript_small_resnet", describe("torchscript_small_resnet", data_pkl(path),
         note="torch.jit.save(torch.jit.script(small resnet)); names as torch.jit.load(f).state_dict()",
         sd_path="", kind="module", sd_items=list(sd.items()), torchscript=True), path)

    class WithConstant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.offset = torch.arange(2, dtype=torch.float32) * 3

        def forward(self, x):
            return self.lin(x) + self.offset

    traced = torch.jit.trace(WithConstant(), torch.zeros(1, 2))
    path = OUT / "torchscript_traced.pt"
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path))
    sd = loaded.state_dict()
    with zipfile.ZipFile(path) as z:
        folder = z.namelist()[0].split("/")[0]
        constants = torch.jit._pickle if False else None
    # The traced constant lives in constants.pkl (storages constants/N): torch gives it no name.
    consts = [loaded.code_with_constants[1].const_mapping[k] for k in sorted(loaded.code_with_constants[1].const_mapping)]
    all_items = list(sd.items()) + [(f"constants.{i}", c) for i, c in enumerate(consts)]
    emit("torchscript_traced", describe("torchscript_traced", data_pkl(path),
         note="torch.jit.trace with a tensor constant (constants.pkl, constants/0)",
         sd_path="", kind="module", sd_items=list(sd.items()), all_items=all_items, torchscript=True), path)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {np.__version__}")
    make_legacy_v03()
    make_legacy_rebuilds()
    make_nesting()
    make_bare()
    make_numpy()
    make_namespace()
    make_whole_resnet18()
    make_whole_legacy()
    make_lightning()
    make_ultralytics_like()
    make_omegaconf()
    make_torchscript()


if __name__ == "__main__":
    main()
