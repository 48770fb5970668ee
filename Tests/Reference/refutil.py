"""Shared helpers for the reference ("oracle") scripts in Tests/Reference.

Run the scripts with Debian's interpreter, which has torch 1.13:
    /usr/bin/python3 Tests/Reference/<script>.py

Nothing here executes code from the files it inspects: pickles are either
walked opcode by opcode (pickletools.genops) or unpickled with SafeUnpickler,
which only resolves a short allow-list of globals to inert stand-ins.
"""
import collections
import hashlib
import io
import json
import math
import pickle
import pickletools
import struct
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"

# Element size of each legacy storage class name (torch.<X>Storage).
STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1,
    "ByteStorage": 1, "BoolStorage": 1,
    "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
}

assert sys.byteorder == "little", "the oracle assumes a little-endian host"


# --------------------------------------------------------------------------
# JSON

def to_json(obj, indent=0, width=100):
    """Indented JSON where any value that fits in `width` columns stays on one line."""
    flat = json.dumps(obj, ensure_ascii=True, allow_nan=False)
    if not isinstance(obj, (list, dict)) or not obj or indent + len(flat) <= width:
        return flat
    pad = " " * (indent + 1)
    if isinstance(obj, list):
        items = [pad + to_json(v, indent + 1, width) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [pad + json.dumps(k) + ": " + to_json(v, indent + 1, width) for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def write_json(path, obj):
    """Deterministic, diff-friendly JSON with a trailing newline."""
    text = to_json(obj)
    assert json.loads(text) == obj
    Path(path).write_text(text + "\n")


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------
# Tensors (torch needed only from here on, imported lazily)

def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def tensor_le_bytes(t):
    """Logical values of `t` as contiguous C-order little-endian bytes."""
    import torch
    # clone() with contiguous_format yields a fresh storage of exactly numel
    # elements, even for expanded (stride 0) or offset views.
    c = t.detach().clone(memory_format=torch.contiguous_format)
    if c.dtype == torch.bfloat16:       # numpy has no bfloat16: same-size view
        c = c.view(torch.int16)
    return c.numpy().tobytes()


def _untyped(t):
    # torch 1.13: Tensor.storage() is a TypedStorage wrapping an UntypedStorage;
    # _cdata is the address of the c10::StorageImpl (stable identity).
    return t.storage()._storage


class StorageLabels:
    """Assigns "s0", "s1", ... to storages, numbered by first appearance.

    A storage whose bytes lie inside a bigger storage (a legacy tar
    `storage_views` entry becomes a slice of its root storage) is labelled with
    that root; the tensor's storage_offset is then re-expressed relative to the
    root and the view is reported in "storage_view".
    """

    def __init__(self, tensors):
        self.info = {}              # cdata -> (data_ptr, nbytes)
        for t in tensors:
            u = _untyped(t)
            self.info.setdefault(u._cdata, (u.data_ptr(), u.nbytes()))
        self.root = {}
        for k, (p, n) in self.info.items():
            best = k
            if n > 0:               # empty storages may all have data_ptr 0
                for k2, (p2, n2) in self.info.items():
                    if p2 <= p and p + n <= p2 + n2 and n2 > self.info[best][1]:
                        best = k2
            self.root[k] = best
        self.labels = {}

    def describe(self, t):
        u = _untyped(t)
        root = self.root[u._cdata]
        label = self.labels.setdefault(root, f"s{len(self.labels)}")
        size = t.element_size()
        rptr, rbytes = self.info[root]
        view_off = (u.data_ptr() - rptr) // size if root != u._cdata else 0
        out = {"storage": label, "storage_numel": rbytes // size,
               "storage_offset": view_off + t.storage_offset()}
        if root != u._cdata:
            out["storage_view"] = {"offset": view_off, "numel": u.nbytes() // size}
        return out


def encode_tensor(t, labels):
    import torch
    data = tensor_le_bytes(t)
    s = labels.describe(t)
    d = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "stride": list(t.stride()),
         "storage_offset": s["storage_offset"], "storage": s["storage"],
         "storage_numel": s["storage_numel"], "requires_grad": bool(t.requires_grad),
         "parameter": isinstance(t, torch.nn.Parameter),
         "hex": data.hex(), "sha256": sha256_bytes(data)}
    if "storage_view" in s:
        d["storage_view"] = s["storage_view"]
    return d


def _walk_tensors(obj, out):
    import torch
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _walk_tensors(x, out)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _walk_tensors(k, out)
            _walk_tensors(v, out)
        md = getattr(obj, "_metadata", None)
        if md is not None:
            _walk_tensors(md, out)
    return out


def encode_object(root):
    """Tagged JSON encoding of an unpickled checkpoint (see make_fixtures.py)."""
    import torch
    labels = StorageLabels(_walk_tensors(root, []))

    def enc(o):
        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, int):
            return {"int": str(o)}
        if isinstance(o, float):
            assert math.isfinite(o), "non-finite plain float cannot be encoded"
            return {"float": o}
        if isinstance(o, (bytes, bytearray)):
            return {"bytes": bytes(o).hex()}
        if isinstance(o, torch.Tensor):
            return {"tensor": encode_tensor(o, labels)}
        if isinstance(o, list):
            return {"list": [enc(x) for x in o]}
        if isinstance(o, tuple):            # includes torch.Size
            return {"tuple": [enc(x) for x in o]}
        if isinstance(o, dict):             # includes OrderedDict
            d = {"dict": [[enc(k), enc(v)] for k, v in o.items()]}
            md = getattr(o, "_metadata", None)
            if md is not None:
                d["metadata"] = enc(md)
            return d
        raise TypeError(f"cannot encode {type(o)!r}")

    return enc(root)


def tensor_list(state_dict):
    import torch
    return [{"name": k, "dtype": dtype_name(v.dtype), "shape": list(v.shape)}
            for k, v in state_dict.items() if isinstance(v, torch.Tensor)]


# --------------------------------------------------------------------------
# Static pickle inspection (no unpickling)

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
               "SHORT_BINSTRING", "BINSTRING", "STRING"}


def scan_pickle(buf, start=0):
    """Walk one pickle in `buf` from byte `start` up to its STOP.

    Returns dict(protocol, globals=[(offset, module, name)], opcodes=set, end).
    Offsets are positions in `buf`. STACK_GLOBAL operands are resolved with a
    crude value trace: string pushes, memo puts/gets (incl. MEMOIZE); any other
    opcode pushes an unknown. That suffices for what picklers emit.
    """
    f = io.BytesIO(buf)
    f.seek(start)
    memo, vals, found, ops, proto = {}, [], [], set(), None
    for op, arg, pos in pickletools.genops(f):
        name = op.name
        ops.add(name)
        if name == "PROTO":
            proto = arg
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            found.append((pos, module, attr))
            vals.append(None)
        elif name == "STACK_GLOBAL":
            attr, module = vals.pop(), vals.pop()
            assert isinstance(module, str) and isinstance(attr, str), "unresolved STACK_GLOBAL"
            found.append((pos, module, attr))
            vals.append(None)
        elif name in _STRING_OPS:
            vals.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = vals[-1] if vals else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = vals[-1] if vals else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            vals.append(memo.get(arg))
        elif name not in ("FRAME", "STOP"):
            vals.append(None)
    return {"protocol": proto, "globals": found, "opcodes": ops, "end": f.tell()}


def global_names(scans):
    return sorted({f"{m}.{n}" for s in scans for _, m, n in s["globals"]})


# --------------------------------------------------------------------------
# Safe unpickling of legacy/tar metadata pickles (inert stand-ins only)

class Stub:
    """Stand-in for an allowed global such as torch.FloatStorage."""

    def __init__(self, qualname):
        self.qualname = qualname

    def __repr__(self):
        return self.qualname

    def __call__(self, *args):          # used for REDUCE of rebuild functions
        return (self.qualname, args)


class StubParameter:
    """torch.nn.parameter.Parameter as built by EMPTY_TUPLE NEWOBJ + BUILD."""

    def __setstate__(self, state):
        self.state = state


class SafeUnpickler(pickle.Unpickler):
    def __init__(self, f):
        super().__init__(f)
        self.persistent_ids = []

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch.nn.parameter", "Parameter"):
            return StubParameter
        if (module, name) == ("_codecs", "encode"):
            import codecs
            return codecs.encode
        if module == "torch" and (name.endswith("Storage") or name.endswith("Tensor")):
            return Stub(f"torch.{name}")
        if module == "torch._utils" and name.startswith("_rebuild_"):
            return Stub(f"torch._utils.{name}")
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        self.persistent_ids.append(pid)
        return ("persistent", pid)


def safe_load_at(buf, pos):
    """Unpickle the pickle starting at buf[pos]; return (obj, end, unpickler)."""
    f = io.BytesIO(buf)
    f.seek(pos)
    u = SafeUnpickler(f)
    obj = u.load()
    return obj, f.tell(), u


# --------------------------------------------------------------------------
# Tar (PyTorch 0.1) parsing that also works on truncated files

def tar_members(buf):
    """{name: (data_offset, size)} for regular members; PAX 'x' records skipped.

    Stops quietly at the end of `buf` or at the end-of-archive zero block.
    """
    out, pos = {}, 0
    while pos + 512 <= len(buf):
        h = buf[pos:pos + 512]
        if h == bytes(512):
            break
        name = h[0:100].rstrip(b"\0").decode()
        size = int(h[124:136].rstrip(b"\0 ").decode() or "0", 8)
        kind = h[156:157]
        if kind in (b"0", b"\0"):
            out[name] = (pos + 512, size)
        pos += 512 + (size + 511) // 512 * 512
    return out


def parse_tar_tensors(buf, off):
    """Records of the 'tensors' member: (key, storage_key, cls, sizes, strides, offset)."""
    count, pos, _ = safe_load_at(buf, off)
    scans = [scan_pickle(buf, off)]
    recs = []
    for _ in range(count):
        scans.append(scan_pickle(buf, pos))
        (key, skey, cls), pos, _ = safe_load_at(buf, pos)
        ndim, = struct.unpack_from("<i", buf, pos)
        pos += 8                                # int32 ndim + 4 bytes of padding
        sizes = struct.unpack_from(f"<{ndim}q", buf, pos); pos += 8 * ndim
        strides = struct.unpack_from(f"<{ndim}q", buf, pos); pos += 8 * ndim
        soff, = struct.unpack_from("<q", buf, pos); pos += 8
        recs.append((key, skey, cls.qualname, list(sizes), list(strides), soff))
    return recs, scans


def parse_tar_storages(buf, off, limit=None):
    """Records of the 'storages' member: dict(key, type, numel, data_offset, whole).

    `limit` is the number of bytes actually available (for truncated files);
    parsing stops at the first incomplete record. Returns (records, views, scans);
    views is None when the trailing storage_views pickle was not reached.
    """
    limit = len(buf) if limit is None else limit
    count, pos, _ = safe_load_at(buf, off)
    scans = [scan_pickle(buf, off)]
    recs = []
    for _ in range(count):
        scans.append(scan_pickle(buf, pos))
        (key, location, stype), pos, _ = safe_load_at(buf, pos)
        numel, = struct.unpack_from("<q", buf, pos)
        pos += 8
        tname = stype.qualname
        nbytes = numel * STORAGE_ELEMENT_SIZE[tname.split(".")[-1]]
        whole = pos + nbytes <= limit
        recs.append({"key": key, "location": location, "type": tname, "numel": numel,
                     "data_offset": pos, "whole": whole})
        if not whole:
            return recs, None, scans
        pos += nbytes
    scans.append(scan_pickle(buf, pos))
    views, _, _ = safe_load_at(buf, pos)
    return recs, views, scans


def tar_pickle_names(buf, off):
    """OrderedDict name -> (tensor key string, is_parameter) from the 'pickle' member."""
    obj, _, _ = safe_load_at(buf, off)
    out = collections.OrderedDict()
    for name, v in obj.items():
        if isinstance(v, StubParameter):
            out[name] = (v.state[0][1], True)
        else:
            out[name] = (v[1], False)
    return out


# --------------------------------------------------------------------------
# Zip helpers

def zip_data_pkl_name(path):
    with zipfile.ZipFile(path) as z:
        return next(n for n in z.namelist() if n.endswith("/data.pkl"))


def write_zip(path, entries, compression=zipfile.ZIP_STORED, align=64):
    """Write (name, bytes) entries deterministically.

    Stored entries get an 'FB' padding extra field so that their data starts on
    an `align`-byte boundary, as torch's own writer does.
    """
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = compression
            zi.external_attr = 0o600 << 16
            if compression == zipfile.ZIP_STORED and align:
                start = z.fp.tell() + 30 + len(name.encode()) + 4
                pad = -start % align
                zi.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
            z.writestr(zi, data)


# --- Benchmarks (bench_convert.py, bench_peers.py) ---

def median_ms(fn, runs, warmup):
    """Median wall time of fn() in milliseconds over `runs` runs after `warmup` unmeasured ones."""
    import statistics
    import time
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# Appended to a `python -c` child's code: prints the child's peak resident set (VmHWM) in KiB. VmHWM,
# not ru_maxrss, which would count the memory of the parent the child was forked from.
PRINT_VMHWM_KIB = "print([l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1])\n"
