"""Writes the hostile corpus: Tests/Fixtures/hostile/*, and manifest.json with the exact error each
file must produce. Also writes Tests/Fixtures/swt_small.swt, the valid .swt the .swt cases are cut from.

    python3 Tests/Reference/make_hostile.py

Standard library only (no torch: every byte is assembled here, opcode by opcode, so each file differs
from a valid checkpoint by the one defect it names). Deterministic: running it again gives the same bytes.

Each manifest entry: file, format (which reader, and which fuzz harness it seeds), hostile (why), and
expect: the error of Checkpoint(path:) -- or, with stage "read", of reading tensor read_tensor --
as CheckpointError fields: kind and its payload, part, offset, tensor; detail is a substring of the
message. Offsets are computed here from the bytes written, not copied from the reader.
"""
import json
import struct
import zipfile
import zlib
from pathlib import Path

import refutil as R
import tar_writer as T

OUT = R.FIXTURES / "hostile"
GENERATOR = "Tests/Reference/make_hostile.py"
PKL = "archive/data.pkl"
MANIFEST = []


# ---------------------------------------------------------------- pickle assembly

class Pk:
    """A pickle written opcode by opcode; `at[label]` is the offset of a labelled opcode."""

    def __init__(self, proto=2):
        self.b = bytearray(b"\x80" + bytes([proto]))
        self.at = {}

    def op(self, raw, label=None):
        if label:
            self.at[label] = len(self.b)
        self.b += raw
        return self

    def int(self, v, label=None):
        if 0 <= v < 256:
            return self.op(b"K" + bytes([v]), label)
        if -2**31 <= v < 2**31:
            return self.op(b"J" + struct.pack("<i", v), label)
        n = (v.bit_length() + 8) // 8          # LONG1: little-endian two's complement
        return self.op(b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True), label)

    def str(self, s, label=None):
        b = s.encode()
        return self.op(b"X" + struct.pack("<I", len(b)) + b, label)

    def glob(self, module, name, label=None):
        return self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n", label)

    def ints(self, vs):
        self.op(b"(")
        for v in vs:
            self.int(v)
        return self.op(b"t")

    def done(self):
        return bytes(self.b + b".")


def tensor_v2(p, name, key="0", numel=4, size=(4,), stride=(1,), offset=0, cls="FloatStorage", legacy=False):
    """`_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`, as torch writes it;
    labels NAME.persid and NAME.reduce."""
    p.glob("torch._utils", "_rebuild_tensor_v2")
    p.op(b"(")
    p.op(b"(").str("storage").glob("torch", cls).str(key).str("cpu").int(numel)
    if legacy:
        p.op(b"N")                              # view_metadata
    p.op(b"t").op(b"Q", f"{name}.persid")       # BINPERSID
    p.int(offset).ints(size).ints(stride).op(b"\x89")
    p.glob("collections", "OrderedDict").op(b")R")
    p.op(b"t").op(b"R", f"{name}.reduce")


def state_dict(tensors, legacy=False):
    """OrderedDict([(name, tensor), ...]); tensors: [dict(name=..., **tensor_v2 args)]."""
    p = Pk()
    p.glob("collections", "OrderedDict").op(b")R").op(b"(")
    for t in tensors:
        p.str(t["name"])
        tensor_v2(p, legacy=legacy, **t)
    p.op(b"u", "setitems")
    return p


def f32(*vs):
    return struct.pack(f"<{len(vs)}f", *vs)


def i64(*vs):
    return struct.pack(f"<{len(vs)}q", *vs)


def f64(*vs):
    return struct.pack(f"<{len(vs)}d", *vs)


# The other tensor kinds, as torch 1.13 pickles them (Tests/Fixtures/kinds/*.pth, without the memo).
# Each returns a writer `write(p, name)` that leaves one tensor on the stack; labels NAME.reduce
# (the outer REDUCE) and NAME.<component>.persid / .reduce for the tensors inside.

def entries(items):
    """OrderedDict([(name, tensor), ...]); items: [(name, writer)]."""
    p = Pk()
    p.glob("collections", "OrderedDict").op(b")R").op(b"(")
    for name, write in items:
        p.str(name)
        write(p, name)
    p.op(b"u", "setitems")
    return p


def strided(**t):
    """A `_rebuild_tensor_v2` tensor, with tensor_v2's arguments."""
    return lambda p, name: tensor_v2(p, name, **t)


def layout(p, name):
    p.glob("torch.serialization", "_get_layout").str(f"torch.{name}").op(b"\x85R")


def torch_size(p, dims):
    p.glob("torch", "Size").ints(dims).op(b"\x85R")


def sparse_coo(indices, values, dims):
    """`_rebuild_sparse_tensor(_get_layout('torch.sparse_coo'), (indices, values, torch.Size(dims)))`."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_sparse_tensor")
        layout(p, "sparse_coo")
        indices(p, f"{name}.indices")
        values(p, f"{name}.values")
        torch_size(p, dims)
        p.op(b"\x87\x86").op(b"R", f"{name}.reduce")
    return write


def sparse_csr(crow, col, values, dims):
    """`_rebuild_sparse_csr_tensor(_get_layout('torch.sparse_csr'), (crow_indices, col_indices, values,
    torch.Size(dims)))`."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_sparse_csr_tensor")
        layout(p, "sparse_csr")
        p.op(b"(")
        crow(p, f"{name}.crow")
        col(p, f"{name}.col")
        values(p, f"{name}.values")
        torch_size(p, dims)
        p.op(b"t\x86").op(b"R", f"{name}.reduce")
    return write


def per_tensor(scale, zero_point):
    """quantizer_params `(torch.per_tensor_affine, scale, zero_point)`."""
    def write(p, name):
        p.glob("torch", "per_tensor_affine").op(b"G" + struct.pack(">d", scale)).int(zero_point).op(b"\x87")
    return write


def per_channel(scales, zero_points, axis):
    """quantizer_params `(torch.per_channel_affine, scales, zero_points, axis)`."""
    def write(p, name):
        p.op(b"(").glob("torch", "per_channel_affine")
        scales(p, f"{name}.scales")
        zero_points(p, f"{name}.zero_points")
        p.int(axis).op(b"t")
    return write


def qtensor(params, key="0", cls="QInt8Storage", numel=4, size=(4,), stride=(1,), offset=0):
    """`_rebuild_qtensor(storage, offset, size, stride, quantizer_params, False, OrderedDict())`."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_qtensor").op(b"(")
        p.op(b"(").str("storage").glob("torch", cls).str(key).str("cpu").int(numel)
        p.op(b"t").op(b"Q", f"{name}.persid")
        p.int(offset).ints(size).ints(stride)
        params(p, name)
        p.op(b"\x89").glob("collections", "OrderedDict").op(b")R")
        p.op(b"t").op(b"R", f"{name}.reduce")
    return write


def meta(size, stride, dtype="float32"):
    """`_rebuild_meta_tensor_no_storage(torch.<dtype>, size, stride, False)`."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_meta_tensor_no_storage").op(b"(")
        p.glob("torch", dtype).ints(size).ints(stride).op(b"\x89t").op(b"R", f"{name}.reduce")
    return write


def tensor_v3(dtype, nbytes, size, stride, key="0", offset=0):
    """`_rebuild_tensor_v3(storage, offset, size, stride, False, OrderedDict(), torch.<dtype>)` on the
    untyped storage ('storage', torch.storage.UntypedStorage, key, 'cpu', nbytes), as torch >= 2.1 writes it."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_tensor_v3").op(b"(")
        p.op(b"(").str("storage").glob("torch.storage", "UntypedStorage").str(key).str("cpu").int(nbytes)
        p.op(b"t").op(b"Q", f"{name}.persid")
        p.int(offset).ints(size).ints(stride).op(b"\x89")
        p.glob("collections", "OrderedDict").op(b")R").glob("torch", dtype)
        p.op(b"t").op(b"R", f"{name}.reduce")
    return write


def wrapper(size, stride, offset, dtype="float32", device="meta"):
    """`_rebuild_wrapper_subclass(torch.Tensor, torch.<dtype>, size, stride, offset, torch.strided,
    torch.device(device), False)`: a tensor subclass without data, as torch >= 2.0 writes one."""
    def write(p, name):
        p.glob("torch._utils", "_rebuild_wrapper_subclass").op(b"(")
        p.glob("torch", "Tensor").glob("torch", dtype).ints(size).ints(stride).int(offset)
        p.glob("torch", "strided").glob("torch", "device").str(device).op(b"\x85R")
        p.op(b"\x89t").op(b"R", f"{name}.reduce")
    return write


# ---------------------------------------------------------------- containers

def write_zip(path, entries, deflate=()):
    """torch's layout: stored entries 64-byte aligned; names in `deflate` are deflated."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o600 << 16
            if name in deflate:
                zi.compress_type = zipfile.ZIP_DEFLATED
            else:
                zi.compress_type = zipfile.ZIP_STORED
                start = z.fp.tell() + 30 + len(name.encode()) + 4
                pad = -start % 64
                zi.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
            z.writestr(zi, data)


def zip_checkpoint(path, pkl, storages=(("0", f32(1, 2, 3, 4)),), extra=(), deflate=()):
    entries = [(PKL, pkl)] + [(f"archive/data/{k}", v) for k, v in storages]
    entries += [("archive/version", b"3\n")] + list(extra)
    write_zip(path, entries, deflate)


def zip_records(buf):
    """{name: (local_header_offset, central_record_offset)} from the central directory."""
    eocd = buf.rindex(b"PK\x05\x06")
    n, = struct.unpack_from("<H", buf, eocd + 10)
    cd, = struct.unpack_from("<I", buf, eocd + 16)
    out, pos = {}, cd
    for _ in range(n):
        nlen, elen, clen = struct.unpack_from("<HHH", buf, pos + 28)
        local, = struct.unpack_from("<I", buf, pos + 42)
        out[buf[pos + 46:pos + 46 + nlen].decode()] = (local, pos)
        pos += 46 + nlen + elen + clen
    return out


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def legacy_head(magic=LEGACY_MAGIC):
    p = Pk()
    p.int(magic)
    head = p.done()
    head += Pk().int(1001).done()
    s = Pk()
    s.op(b"}(").str("protocol_version").int(1001).str("little_endian").op(b"\x88")
    s.str("type_sizes").op(b"}(").str("short").int(2).str("int").int(4).str("long").int(8).op(b"uu")
    return head + s.done()


def legacy_keys(keys):
    p = Pk()
    p.op(b"(")
    for k in keys:
        p.str(k)
    return p.op(b"l").done()


def tar_members_at(buf):
    """[(name, header_offset, data_offset, size)] of regular members."""
    out, pos = [], 0
    while pos + 512 <= len(buf) and buf[pos:pos + 512] != bytes(512):
        h = buf[pos:pos + 512]
        size = int(h[124:136].rstrip(b"\0 ").decode() or "0", 8)
        if h[156:157] in (b"0", b"\0"):
            out.append((h[0:100].rstrip(b"\0").decode(), pos, pos + 512, size))
        pos += 512 + (size + 511) // 512 * 512
    return out


def small_tar(extra_members=()):
    """A two-tensor tar checkpoint in PyTorch 0.1's layout (tar_writer), plus extra members."""
    storages = [(71, "FloatStorage", 4, f32(1, 2, 3, 4)), (72, "FloatStorage", 2, f32(5, 6))]
    tensors = [(81, 71, "FloatTensor", [2, 2], [2, 1], 0, bytes(4)),
               (82, 72, "FloatTensor", [2], [1], 0, bytes(4))]
    members = [("sys_info", T.sys_info_pickle()),
               ("pickle", T.state_pickle([("a", 81, True), ("b", 82, False)])),
               ("tensors", T.tensors_member(tensors)),
               ("storages", T.storages_member(storages, []))]
    members += list(extra_members)
    return T.tar_archive([(n, d, "1500000000.0") for n, d in members]), storages, tensors


# ---------------------------------------------------------------- .swt

def swt_bytes(entries, data, metadata=None, raw_header=None, declared=None):
    """safetensors' layout: u64 header length, JSON padded with spaces to a 64-byte boundary, data."""
    if raw_header is None:
        h = {"__metadata__": metadata or {"format": "pt"}}
        h.update(entries)
        raw_header = json.dumps(h, separators=(",", ":")).encode()
    raw_header += b" " * (-(8 + len(raw_header)) % 64)
    n = len(raw_header) if declared is None else declared
    return struct.pack("<Q", n) + raw_header + data


SWT_A = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
SWT_B = {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]}
SWT_DATA = f32(1, 2, 3, 4) + struct.pack("<2q", -7, 2**40)


# ---------------------------------------------------------------- the manifest

def add(fname, fmt, data, why, stage="open", part=None, offset=None, tensor=None, read_tensor=None, **kind):
    path = OUT / fname
    if data is not None:
        path.write_bytes(data)
    size = path.stat().st_size
    assert size < 100_000, f"{fname} is {size} bytes"
    expect = {"stage": stage, **kind, "part": part, "offset": offset, "tensor": tensor}
    if stage == "read":
        expect["read_tensor"] = read_tensor
    MANIFEST.append({"file": fname, "format": fmt, "bytes": size, "hostile": why, "expect": expect})
    print(f"  {fname:36s} {size:6d} B  {kind['kind']}")


def refused_global(fname, p, label, module, name, why, fmt="zip"):
    pkl = p.done()
    zip_checkpoint(OUT / fname, pkl)
    add(fname, fmt, None, why, part=PKL, offset=p.at[label], kind="refusedGlobal", module=module, name=name)


def in_zip(fname, pkl, why, storages=(("0", f32(1, 2, 3, 4)),), deflate=(), **expect):
    zip_checkpoint(OUT / fname, pkl, storages=storages, deflate=deflate)
    add(fname, "zip", None, why, **expect)


def pickles():
    # Code execution through REDUCE: the globals torch's weights_only unpickler refuses.
    p = Pk().op(b"}").str("model")
    p.glob("os", "system", "g").str("echo pwned").op(b"\x85R").op(b"s")
    refused_global("reduce_os_system.pth", p, "g", "os", "system",
                   "GLOBAL os.system + REDUCE: runs a shell command on load")

    p = Pk(4)
    src = b"__import__('os').getcwd()"
    p.op(b"}\x8c\x05model\x8c\x08builtins\x8c\x04eval").op(b"\x93", "g").op(b"\x8c" + bytes([len(src)]) + src + b"\x85R").op(b"s")
    refused_global("reduce_builtins_eval.pth", p, "g", "builtins", "eval",
                   "STACK_GLOBAL builtins.eval + REDUCE (protocol 4): evaluates Python source")

    p = Pk().op(b"}").str("model").glob("subprocess", "check_output", "g")
    p.op(b"(").str("id").op(b"l\x85R").op(b"s")
    refused_global("reduce_subprocess.pth", p, "g", "subprocess", "check_output",
                   "GLOBAL subprocess.check_output + REDUCE: runs a program")

    p = Pk().op(b"}").str("model").op(b"(").str("echo pwned")
    p.op(b"iposix\nsystem\n", "g").op(b"s")
    refused_global("inst_posix_system.pth", p, "g", "posix", "system",
                   "INST posix.system: protocol 0's call-a-class opcode, os.system's other module name")

    p = Pk().op(b"}").str("model").glob("__builtin__", "eval", "g").str("1").op(b"\x85R").op(b"s")
    refused_global("reduce_py2_builtin_eval.pth", p, "g", "__builtin__", "eval",
                   "Python 2's __builtin__.eval: the module alias of builtins must not open a side door")

    p = Pk().op(b"}").str("model").glob("builtins", "getattr", "g")
    p.glob("collections", "OrderedDict").str("__init__").op(b"\x86R").op(b"s")
    refused_global("global_getattr.pth", p, "g", "builtins", "getattr",
                   "builtins.getattr on an allowed class: the classic way from an allowed global to any attribute")

    p = Pk().op(b"}").str("model").glob("torch", "load", "g").str("/tmp/x.pth").op(b"\x85R").op(b"s")
    refused_global("global_torch_load.pth", p, "g", "torch", "load",
                   "torch.load from inside a pickle: the torch module is allowed attribute by attribute, not whole")

    # numpy's reconstructor is read for plain ndarrays (data: shape, dtype, bytes); a subclass brings its
    # own __setstate__, so its class is refused where it is named.
    p = Pk().op(b"}").str("model").glob("numpy.core.multiarray", "_reconstruct")
    p.glob("numpy.ma.core", "MaskedArray", "g").op(b")R").op(b"s")
    refused_global("global_numpy_reconstruct.pth", p, "g", "numpy.ma.core", "MaskedArray",
                   "numpy's array reconstructor given an ndarray subclass (MaskedArray runs its own __setstate__)")

    # Allowed globals used the wrong way.
    p = Pk().op(b"}").str("model").glob("torch", "FloatStorage").op(b")").op(b"R", "r").op(b"s")
    in_zip("reduce_storage_class.pth", p.done(),
           "REDUCE on torch.FloatStorage: an allowed class, but torch never calls it through REDUCE",
           part=PKL, offset=p.at["r"], kind="refusedCall", detail="torch.FloatStorage cannot be called through REDUCE")

    p = Pk().op(b"}").str("model").op(b"}").op(b"}").str("__class__").int(1).op(b"s").op(b"b", "b").op(b"s")
    in_zip("build_on_dict.pth", p.done(),
           "BUILD on a plain dict: BUILD is __setstate__ / __dict__.update, torch allows it on tensors and OrderedDict only",
           part=PKL, offset=p.at["b"], kind="refusedCall", detail="BUILD on a dict")

    p = Pk().op(b"}").str("model").glob("builtins", "set").op(b")").op(b"\x81", "n").op(b"s")
    in_zip("newobj_set.pth", p.done(),
           "NEWOBJ on builtins.set: allowed as a REDUCE call, never as cls.__new__",
           part=PKL, offset=p.at["n"], kind="refusedCall", detail="builtins.set cannot be instantiated")

    p = Pk().op(b"}").str("model").op(b"\x82\x01", "e").op(b"s")
    in_zip("ext1_registry.pth", p.done(),
           "EXT1: a global named through copyreg's extension registry, a lookup outside the pickle",
           part=PKL, offset=p.at["e"], kind="refusedCall", detail="copyreg extension registry")

    p = Pk().op(b"}").str("model").op(b"(").str("module").str("torch.nn.Linear").str("x").op(b"t")
    p.op(b"Q", "q").op(b"s")
    in_zip("persistent_module.pth", p.done(),
           "a persistent id of kind 'module' (old torch pickled whole modules): only 'storage' ids are data",
           part=PKL, offset=p.at["q"], kind="badPersistentID", detail="'module', expected 'storage'")

    # Memory and time: memo, stack, marks, nesting, integers, shared containers.
    n = 1 << 20
    body = b"N" + b"\x94" * (n + 1)
    in_zip("memo_flood.pth", b"\x80\x04" + body + b".",
           f"{n + 1} MEMOIZE opcodes (deflated to a few KB): one memo entry each, past PickleLimits.maxMemo",
           deflate=(PKL,), part=PKL, offset=2 + 1 + n, kind="limitExceeded", cap="maxMemo", limit=n)

    in_zip("stack_flood.pth", b"\x80\x02" + b"N" * (n + 1) + b".",
           f"{n + 1} NONE opcodes (deflated): the stack grows past PickleLimits.maxStack",
           deflate=(PKL,), part=PKL, offset=2 + n, kind="limitExceeded", cap="maxStack", limit=n)

    m = 1 << 16
    in_zip("mark_flood.pth", b"\x80\x02" + b"(" * (m + 1) + b".",
           f"{m + 1} MARK opcodes: more open marks than PickleLimits.maxMarks",
           deflate=(PKL,), part=PKL, offset=2 + m, kind="limitExceeded", cap="maxMarks", limit=m)

    p = Pk().op(b"}").str("model")
    p.op(b"](" + b"N" * 10 + b"e").op(b"q\x000")           # BINPUT 0, POP
    for level in range(1, 31):
        p.op(b"](" + (b"h" + bytes([level - 1])) * 10 + b"e").op(b"q" + bytes([level]))
        if level < 30:
            p.op(b"0")
    p.op(b"s")
    in_zip("memo_billion_laughs.pth", p.done(),
           "30 nested lists of 10 references to the list below (memo GETs): 10^30 values from 700 bytes",
           part=PKL, kind="limitExceeded", cap="maxValues", limit=1 << 20)

    p = Pk().op(b"}").str("model").op(b"]" * 600 + b"a" * 599).op(b"s")
    in_zip("deep_nesting.pth", p.done(), "600 nested lists, past PickleLimits.maxDepth (512)",
           part=PKL, kind="limitExceeded", cap="maxDepth", limit=512)

    p = Pk().op(b"}").op(b"N" + b"\x85" * 600).str("v").op(b"s", "s")
    in_zip("deep_tuple_key.pth", p.done(),
           "a dict key that is a tuple 600 levels deep: hashing it would recurse 600 frames, and 100,000 would overflow the stack",
           part=PKL, offset=p.at["s"], kind="limitExceeded", cap="maxDepth", limit=512)

    p = Pk().op(b"}").op(b"N\x85q\x000")
    for level in range(1, 41):                  # t_k = (t_{k-1}, t_{k-1}) through the memo
        p.op(b"h" + bytes([level - 1]) * 1 + b"h" + bytes([level - 1]) + b"\x86q" + bytes([level]) + b"0")
    p.op(b"h\x28N").op(b"s", "s")
    in_zip("key_hash_bomb.pth", p.done(),
           "a dict key of 40 nested pairs (t, t) through the memo: hashing it visits 2^40 tuples",
           part=PKL, offset=p.at["s"], kind="limitExceeded", cap="maxValues", limit=1 << 20)

    p = Pk().op(b"}").str("model").op(b"]q\x00h\x00a").op(b"s")
    in_zip("self_cycle.pth", p.done(), "a list that contains itself: infinite when converted or walked",
           part=PKL, kind="limitExceeded", cap="maxDepth", limit=512)

    p = Pk().op(b"}").str("model").op(b"\x8b" + struct.pack("<i", 300) + b"\x01" * 300, "l").op(b"s")
    in_zip("huge_long4.pth", p.done(),
           "a 300-byte LONG4 integer: big-integer conversion is quadratic, so PickleLimits.maxIntegerBytes caps it",
           part=PKL, offset=p.at["l"], kind="limitExceeded", cap="maxIntegerBytes", limit=256)

    p = state_dict([dict(name="w"), dict(name="w", key="1")])
    in_zip("duplicate_key.pth", p.done(),
           "the state dict names 'w' twice: Python keeps the last, another reader the first",
           storages=(("0", f32(1, 2, 3, 4)), ("1", f32(5, 6, 7, 8))),
           part=PKL, offset=p.at["setitems"], kind="malformedPickle", detail="the key 'w' is given twice")


def tensors():
    def case(fname, why, t, tensor_error, detail, storages=(("0", f32(1, 2, 3, 4)),)):
        p = state_dict([dict(name="w", **t)])
        in_zip(fname, p.done(), why, storages=storages, part=PKL, offset=p.at["w.reduce"],
               kind="invalidTensor", tensor_error=tensor_error, detail=detail)

    case("shape_overflow.pth", "size (2^32, 2^32): the element count overflows Int64",
         dict(size=(2**32, 2**32), stride=(2**32, 1)), "elementCountOverflow", "[4294967296, 4294967296]")
    case("shape_bytes_overflow.pth", "size (2^61,) of float32 with stride 0: the count fits Int64, its bytes do not",
         dict(size=(2**61,), stride=(0,)), "elementCountOverflow", "[2305843009213693952, 4]")
    case("negative_stride.pth", "stride -1: reads before the storage", dict(size=(4,), stride=(-1,), offset=3),
         "negativeStride", "[-1]")
    case("huge_stride.pth", "stride 2^63-1 over 3 elements: (size-1)*stride overflows",
         dict(size=(3,), stride=(2**63 - 1,)), "viewOutOfRange", "strides [9223372036854775807]")
    case("negative_offset.pth", "storage offset -1", dict(offset=-1), "negativeOffset", "-1")
    case("huge_offset.pth", "storage offset 2^40 in a 4-element storage", dict(offset=2**40),
         "viewOutOfRange", "offset 1099511627776")
    case("tensor_past_storage.pth", "a [10] tensor on a 4-element storage", dict(size=(10,)),
         "viewOutOfRange", "storage of 4 elements")

    p = state_dict([dict(name="w", numel=100, size=(100,))])
    in_zip("storage_short.pth", p.done(),
           "the persistent id declares 100 elements, the entry holds 16 bytes",
           part=PKL, offset=p.at["w.persid"], kind="invalidTensor", tensor_error="storageSizeMismatch",
           detail="storage 0 should hold 400 bytes but has 16")

    p = state_dict([dict(name="w", numel=1, size=(2**40,), stride=(0,))])
    in_zip("expand_bomb.pth", p.done(),
           "a stride-0 tensor of 2^40 float32 over one element: 4 TiB when read, from a 1 KB file",
           storages=(("0", f32(1)),), tensor="w",
           kind="limitExceeded", cap="maxTensorBytesRatio", limit=16)


def kinds():
    """Quantized, sparse, meta and untyped-storage tensors: one tensor 'w', each one defect away from
    what torch writes."""
    def case(fname, why, write, storages, **expect):
        p = entries([("w", write)])
        if expect.get("tensor") is None:
            expect.update(part=PKL, offset=p.at["w.reduce"])
        in_zip(fname, p.done(), why, storages=storages, **expect)

    def sparse(fname, why, write, storages, detail):
        case(fname, why, write, storages, kind="invalidTensor", tensor_error="sparse", detail=detail)

    def longs(key, n, **t):
        return strided(key=key, numel=n, cls="LongStorage", **t)

    def floats(key, n, **t):
        return strided(key=key, numel=n, **t)

    # COO over (3, 4): indices [2, 2] int64 (columns (0, 1) and (2, 3)), values [2] float32.
    def coo(index_data, indices=None, dims=(3, 4)):
        write = sparse_coo(indices or longs("0", 4, size=(2, 2), stride=(2, 1)), floats("1", 2, size=(2,)), dims)
        return write, (("0", index_data), ("1", f32(1.5, -2)))

    sparse("sparse_coo_index_past_dim.pth", "a COO index of 4 in dimension 1 of size 4: densifying writes past the row",
           *coo(i64(0, 2, 1, 4)), "index 4 at [1, 1] is outside dimension 1 of size 4")
    sparse("sparse_coo_negative_index.pth", "a COO index of -1: densifying writes before the tensor",
           *coo(i64(0, -1, 1, 3)), "index -1 at [0, 1] is outside dimension 0 of size 3")
    sparse("sparse_coo_float_indices.pth",
           "COO indices stored as float32 (torch 1.13 casts them to int64, dropping fractions): indices are int64",
           *coo(f32(0, 2, 1, 3), indices=floats("0", 4, size=(2, 2), stride=(2, 1))),
           "indices must be a 2-D int64 tensor, got float32 [2, 2]")
    sparse("sparse_coo_meta_indices.pth", "COO indices that are a meta tensor: no values to check or place",
           sparse_coo(meta((2, 2), (2, 1), "int64"), floats("0", 2, size=(2,)), (3, 4)), (("0", f32(1.5, -2)),),
           "the indices are not a plain tensor with values")

    one = (("0", i64(5, 7)), ("1", f32(1)))
    onecoo = (longs("0", 2, size=(2, 1), stride=(1, 1)), floats("1", 1, size=(1,)))
    case("sparse_coo_dense_overflow.pth", "a COO tensor of dense size (2^40, 2^40) with one value: 2^80 elements",
         sparse_coo(*onecoo, (2**40, 2**40)), one,
         kind="invalidTensor", tensor_error="elementCountOverflow", detail="[1099511627776, 1099511627776]")
    case("sparse_coo_dense_bomb.pth",
         "a COO tensor of dense size (2^20, 2^20) float32 with one value: 4 TiB when densified, from a 1 KB file",
         sparse_coo(*onecoo, (2**20, 2**20)), one, tensor="w",
         kind="limitExceeded", cap="maxTensorBytesRatio", limit=16)

    # Components that are stride-0 views of one element: torch saves each component whole.
    sparse("sparse_coo_expanded_indices.pth",
           "COO indices of size (2, 2^40) with stride 0 over one int64: a 1 KB file asks for 16 TiB of indices",
           sparse_coo(longs("0", 1, size=(2, 2**40), stride=(0, 0)), floats("1", 1, size=(2**40,), stride=(0,)),
                      (3, 4)),
           (("0", i64(0)), ("1", f32(1))),
           "the indices view 2199023255552 elements of a storage of 1 (stride [0, 0]); torch saves components whole")
    n, d = 1024, 2**24
    sparse("sparse_coo_expanded_values.pth",
           f"{n} duplicate COO indices with values of size ({n}, 2^24), stride 0 over one float32: "
           "coalescing sums 64 GiB of values into one row, from a 9 KB file",
           sparse_coo(longs("0", n, size=(1, n), stride=(n, 1)), floats("1", 1, size=(n, d), stride=(0, 0)), (1, d)),
           (("0", i64(*[0] * n)), ("1", f32(1))),
           "the values view 17179869184 elements of a storage of 1 (stride [0, 0]); torch saves components whole")

    # CSR over (3, 4): rows [1, 3], [], [0]; crow_indices [4], col_indices [3] int64, values [3] float32.
    def csr(crow, col):
        write = sparse_csr(longs("0", 4), longs("1", 3, size=(3,)), floats("2", 3, size=(3,)), (3, 4))
        return write, (("0", i64(*crow)), ("1", i64(*col)), ("2", f32(1, 2, 3)))

    sparse("sparse_csr_crow_decreasing.pth", "crow_indices [0, 2, 1, 3]: row 1 would end before it starts",
           *csr((0, 2, 1, 3), (1, 3, 0)), "crow_indices goes from 2 to 1 at 1")
    sparse("sparse_csr_crow_overshoot.pth",
           "crow_indices [0, 4, 2, 3] for 3 values: row 0 reads a fourth col_index and value, past the end of both",
           *csr((0, 4, 2, 3), (0, 1, 2)),
           "crow_indices goes from 0 to 4 at 0: it must rise by 0 to 4 and stay within the 3 values")
    sparse("sparse_csr_crow_last_not_nnz.pth", "crow_indices ends at 2 for 3 values",
           *csr((0, 2, 2, 2), (1, 3, 0)), "crow_indices[3] is 2, not the 3 values")
    sparse("sparse_csr_col_out_of_range.pth", "a col_index of 4 in a tensor of 4 columns",
           *csr((0, 2, 2, 3), (1, 4, 0)), "col_indices[1] is 4, outside [0, 4)")
    sparse("sparse_csr_col_duplicate.pth", "col_indices [3, 3] in one row: one element given twice",
           *csr((0, 2, 2, 3), (3, 3, 0)), "col_indices is not strictly increasing at 1 (3 then 3) within slice 0")
    sparse("sparse_csr_expanded_crow.pth",
           "crow_indices of 2^40 + 1 entries with stride 0 over one int64: a 1 KB file asks for 8 TiB of indices",
           sparse_csr(longs("0", 1, size=(2**40 + 1,), stride=(0,)), longs("1", 0, size=(0,)),
                      floats("2", 0, size=(0,)), (2**40, 4)),
           (("0", i64(0)), ("1", b""), ("2", b"")),
           "the crow_indices view 1099511627777 elements of a storage of 1 (stride [0]); torch saves components whole")

    # Quantized: qint8 [2, 4], per tensor or per channel (float64 scales, int64 zero points).
    q8 = ("0", bytes([1, 2, 3, 250, 4, 5, 6, 7]))

    def channels(n, axis):
        return per_channel(strided(key="1", numel=n, size=(n,), cls="DoubleStorage"),
                           longs("2", 4, size=(4,)), axis)

    case("quant_scale_count.pth", "per-channel qint8 with 3 scales for axis 1 of length 4: the fourth column has none",
         qtensor(channels(3, 1), numel=8, size=(2, 4), stride=(4, 1)),
         (q8, ("1", f64(0.5, 0.25, 0.125)), ("2", i64(1, -1, 0, 2))),
         kind="invalidTensor", tensor_error="quantization", detail="3 scales of shape [3] for axis 1 of length 4")
    case("quant_axis_past_rank.pth", "per-channel axis 5 on a 2-D tensor (torch 1.13 loads it; dequantize() fails)",
         qtensor(channels(4, 5), numel=8, size=(2, 4), stride=(4, 1)),
         (q8, ("1", f64(0.5, 0.25, 0.125, 1)), ("2", i64(1, -1, 0, 2))),
         kind="invalidTensor", tensor_error="quantization", detail="axis 5 is outside a tensor of 2 dimensions")
    case("quant_scale_nan.pth", "a per-tensor scale that is NaN: every dequantized value NaN",
         qtensor(per_tensor(float("nan"), 3), numel=8, size=(2, 4), stride=(4, 1)), (q8,),
         kind="invalidTensor", tensor_error="quantization", detail="the scale nan is not finite")
    case("quant_float_storage.pth", "_rebuild_qtensor on a torch.FloatStorage: float bytes read as quantized integers",
         qtensor(per_tensor(0.5, 3), cls="FloatStorage", size=(2, 2), stride=(2, 1)), (("0", f32(1, 2, 3, 4)),),
         kind="refusedCall", detail="_rebuild_qtensor on a float32 storage")
    case("quant_packed_past_storage.pth",
         "a quint4x2 [3, 5] tensor (8 packed bytes) on a QUInt4x2Storage of 4 elements holding 4 bytes "
         "(torch 1.13 loads it, and its int_repr() reads 4 bytes past the storage)",
         qtensor(per_tensor(0.1, 2), cls="QUInt4x2Storage", numel=4, size=(3, 5), stride=(5, 1)),
         (("0", bytes([0x21, 0x43, 0x65, 0x87])),), kind="invalidTensor", tensor_error="packedView",
         detail="is not a contiguous run of whole bytes inside its storage of 4 bytes")

    case("v3_ragged_untyped.pth", "_rebuild_tensor_v3 as torch.uint32 on an untyped storage of 6 bytes",
         tensor_v3("uint32", 6, (1,), (1,)), (("0", bytes(range(6))),),
         kind="refusedCall", detail="an untyped storage of 6 bytes is not a whole number of uint32 elements")
    case("v3_quantized_dtype.pth",
         "_rebuild_tensor_v3 as torch.qint8 on an untyped storage: quantized integers without a scale",
         tensor_v3("qint8", 4, (4,), (1,)), (("0", bytes(range(4))),),
         kind="refusedCall", detail="_rebuild_tensor_v3 on a qint8 storage")

    case("meta_shape_overflow.pth", "a meta tensor of size (2^62, 4): the element count overflows Int64",
         meta((2**62, 4), (4, 1)), (), kind="invalidTensor", tensor_error="elementCountOverflow",
         detail="[4611686018427387904, 4]")
    case("meta_negative_size.pth", "a meta tensor of size (-1, 4)", meta((-1, 4), (4, 1)), (),
         kind="invalidTensor", tensor_error="negativeSize", detail="negative size -1")
    case("wrapper_offset_overflow.pth",
         "a wrapper-subclass tensor with storage offset 2^63-1: the storage it needs, offset + 1 elements, "
         "overflows Int64",
         wrapper((1,), (1,), 2**63 - 1), (), kind="invalidTensor", tensor_error="elementCountOverflow",
         detail="[9223372036854775807, 1]")


def zips():
    pkl = state_dict([dict(name="w")]).done()

    zip_checkpoint(OUT / "zip_path_traversal.pth", pkl, extra=[("archive/../../../tmp/pwned", b"x")])
    add("zip_path_traversal.pth", "zip", None, "an entry named archive/../../../tmp/pwned: writes outside the folder if extracted",
        kind="unsafeEntryName", name="archive/../../../tmp/pwned")

    zip_checkpoint(OUT / "zip_absolute_path.pth", pkl, extra=[("/etc/cron.d/pwned", b"x")])
    add("zip_absolute_path.pth", "zip", None, "an entry with an absolute name",
        kind="unsafeEntryName", name="/etc/cron.d/pwned")

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # zipfile warns about the duplicate name
        zip_checkpoint(OUT / "zip_duplicate_entry.pth", pkl, extra=[("archive/data/0", f32(9, 9, 9, 9))])
    add("zip_duplicate_entry.pth", "zip", None,
        "two entries named archive/data/0 with different bytes: which one is 'w' depends on the reader",
        kind="malformedArchive", detail="two entries have the same name")

    path = OUT / "zip_bad_crc.pth"
    zip_checkpoint(path, pkl)
    buf = bytearray(path.read_bytes())
    local, central = zip_records(bytes(buf))["archive/data/0"]
    for at in (local + 14, central + 16):
        buf[at:at + 4] = struct.pack("<I", zlib.crc32(f32(1, 2, 3, 9)))
    add("zip_bad_crc.pth", "zip", bytes(buf),
        "a stored storage whose CRC-32 (local and central) is of other bytes: corrupted or substituted data",
        stage="read", read_tensor="w", part="archive/data/0",
        kind="malformedArchive", detail="but the directory says 0x")

    path = OUT / "zip_bad_crc_pickle.pth"
    zip_checkpoint(path, pkl)
    buf = bytearray(path.read_bytes())
    local, central = zip_records(bytes(buf))[PKL]
    for at in (local + 14, central + 16):
        buf[at:at + 4] = struct.pack("<I", zlib.crc32(pkl) ^ 1)
    add("zip_bad_crc_pickle.pth", "zip", bytes(buf), "data.pkl whose CRC-32 does not match (libzip checks it)",
        part=PKL, offset=len(pkl), kind="zip", detail="CRC error")

    big = 40 << 20
    zip_checkpoint(OUT / "zip_bomb.pth", state_dict([dict(name="w", numel=big // 4, size=(big // 4,))]).done(),
                   storages=(("0", bytes(big)),), deflate=("archive/data/0",))
    add("zip_bomb.pth", "zip", None,
        "a deflated storage of 40 MiB of zeros in a 40 KB file: refused from the directory, never inflated",
        part="archive/data/0", kind="limitExceeded", cap="maxInflationRatio", limit=32)

    # Overlapping entries (a non-recursive zip bomb): ten central records share one deflated local file.
    path = OUT / "zip_overlap_bomb.pth"
    zip_checkpoint(path, pkl, storages=(("0", bytes(4 << 20)),), deflate=("archive/data/0",))
    buf = path.read_bytes()
    eocd = buf.rindex(b"PK\x05\x06")
    n, = struct.unpack_from("<H", buf, eocd + 10)
    cd, = struct.unpack_from("<I", buf, eocd + 16)
    _, rec = zip_records(buf)["archive/data/0"]
    nlen, elen, clen = struct.unpack_from("<HHH", buf, rec + 28)
    record = buf[rec:rec + 46 + nlen + elen + clen]
    extra_records = b"".join(record.replace(b"archive/data/0", b"archive/data/%d" % i) for i in range(1, 10))
    central = buf[cd:eocd] + extra_records
    end = bytearray(buf[eocd:])
    struct.pack_into("<HHI", end, 8, n + 9, n + 9, len(central))
    add("zip_overlap_bomb.pth", "zip", buf[:cd] + central + bytes(end),
        "ten directory records share one deflated local entry (an overlapping-files zip bomb)",
        kind="zip", detail="inconsistent")


def legacy():
    head = legacy_head()
    p = Pk().op(b"}").str("model").glob("subprocess", "Popen", "g").str("true").op(b"\x85R").op(b"s")
    add("legacy_subprocess.pth", "legacy", head + p.done() + legacy_keys([]),
        "a legacy file whose object is subprocess.Popen('true')",
        offset=len(head) + p.at["g"], kind="refusedGlobal", module="subprocess", name="Popen")

    obj = state_dict([dict(name="a", key="0"), dict(name="b", key="1")], legacy=True).done()
    keys = legacy_keys(["0"])
    data = head + obj + keys + struct.pack("<q", 4) + f32(1, 2, 3, 4)
    add("legacy_missing_storage.pth", "legacy", data,
        "the object uses storages 0 and 1; the file holds bytes for 0 only",
        offset=len(data), kind="missingStorage", detail="1: the object uses it but the file holds no bytes for it")

    obj = state_dict([dict(name="a", key="0")], legacy=True).done()
    keys = legacy_keys(["0"])
    data = head + obj + keys + struct.pack("<q", 3) + f32(1, 2, 3)
    add("legacy_numel_mismatch.pth", "legacy", data,
        "storage 0 is declared with 4 elements in the object and 3 where its bytes are",
        offset=len(head) + len(obj) + len(keys), kind="malformedArchive",
        detail="storage 0 holds 3 elements here but 4 where the object declared it")

    bad = legacy_head(magic=0x1950A86A20F9469CFC6D)
    data = bad + obj + keys + struct.pack("<q", 4) + f32(1, 2, 3, 4)
    add("legacy_bad_magic.pth", "legacy", data, "a stacked-pickle file whose magic number is off by one",
        offset=0, kind="badMagic", detail="0x1950a86a20f9469cfc6c")


def tars():
    good, storages, _ = small_tar()
    members = tar_members_at(good)
    name, _, data_at, size = members[-1]
    assert name == "storages"
    # Cut inside the second storage's bytes: its header still says the whole size.
    first = T._count(2) + T._triple(71, "cpu", "torch", "FloatStorage") + struct.pack("<q", 4) + f32(1, 2, 3, 4)
    second_data = data_at + len(first) + len(T._triple(72, "cpu", "torch", "FloatStorage")) + 8
    cut = second_data + 4
    add("tar_member_past_eof.pth", "tar", good[:cut],
        "the file ends inside the 'storages' member, whose header declares more bytes than remain",
        part="tar member 'storages'", offset=second_data, kind="truncated", needed=8, available=4)

    evil = T.state_pickle([("a", 82, False)])
    dup, _, _ = small_tar([("pickle", evil)])
    header = [m for m in tar_members_at(dup) if m[0] == "pickle"][1][1]
    add("tar_duplicate_member.pth", "tar", dup,
        "a second member named 'pickle': tar extractors keep the last, a reader looking up the first sees another object",
        offset=header, kind="malformedArchive", detail="two tar members are named 'pickle'")

    trav, _, _ = small_tar([("../../.bashrc", b"echo pwned\n")])
    header = [m for m in tar_members_at(trav) if m[0] == "../../.bashrc"][0][1]
    add("tar_path_traversal.pth", "tar", trav, "a member named ../../.bashrc",
        offset=header, kind="unsafeEntryName", name="../../.bashrc")

    storages = [(71, "FloatStorage", 4, f32(1, 2, 3, 4))]
    tensors = [(81, 71, "FloatTensor", [3, 2], [2, 1], 0, bytes(4))]
    members = [("sys_info", T.sys_info_pickle()), ("pickle", T.state_pickle([("a", 81, True)])),
               ("tensors", T.tensors_member(tensors)), ("storages", T.storages_member(storages, []))]
    data = T.tar_archive([(n, d, "1500000000.0") for n, d in members])
    add("tar_tensor_past_storage.pth", "tar", data, "a [3, 2] tensor record on a 4-element storage",
        part="tar member 'tensors'", tensor="record 81", kind="invalidTensor", tensor_error="viewOutOfRange",
        detail="storage of 4 elements")


def swts():
    base = swt_bytes({"a": SWT_A, "b": SWT_B}, SWT_DATA)
    (R.FIXTURES / "swt_small.swt").write_bytes(base)

    def case(fname, why, swt_error, detail, data=None, offset=None, **entries):
        e = {"a": SWT_A, "b": SWT_B}
        e.update(entries)
        add(fname, "swt", data if data is not None else swt_bytes(e, SWT_DATA), why, offset=offset,
            kind="swtHeader", swt_error=swt_error, detail=detail)

    case("swt_overlap.swt", "b's bytes start inside a's: two tensors alias one region",
         "overlap", "entry 'b' overlaps 'a' at data byte 8",
         b={"dtype": "F32", "shape": [6], "data_offsets": [8, 32]})
    case("swt_offset_past_end.swt", "b's data_offsets end 32 bytes past the data region",
         "offsetOutOfRange", "data_offsets [16, 64] are outside the data region of 32 bytes",
         b={"dtype": "I64", "shape": [6], "data_offsets": [16, 64]})
    case("swt_shape_overflow.swt", "shape [2^62, 4] of F32: the byte count overflows Int64",
         "badShape", "entry 'b'", b={"dtype": "F32", "shape": [2**62, 4], "data_offsets": [16, 32]})
    case("swt_zero_dim_overflow.swt", "shape [0, 2^40, 2^40] of U8: no bytes, but its row-major strides overflow "
         "(found in review: Tensor.contiguousStrides trapped)", "badShape", "entry 'z'",
         z={"dtype": "U8", "shape": [0, 2**40, 2**40], "data_offsets": [32, 32]})
    case("swt_negative_dim.swt", "shape [-4]", "badShape", "entry 'b'",
         b={"dtype": "I64", "shape": [-4], "data_offsets": [16, 32]})
    case("swt_size_mismatch.swt", "shape [2] of I64 over 8 bytes", "sizeMismatch", "need 16",
         b={"dtype": "I64", "shape": [2], "data_offsets": [16, 24]},
         c={"dtype": "U8", "shape": [8], "data_offsets": [24, 32]})
    raw = (b'{"__metadata__":{"format":"pt"},"a":' + json.dumps(SWT_A).encode()
           + b',"b":' + json.dumps(SWT_B).encode() + b',"a":' + json.dumps(SWT_A).encode() + b"}")
    case("swt_duplicate_name.swt", "'a' appears twice in the header", "duplicateName", "'a'",
         data=swt_bytes(None, SWT_DATA, raw_header=raw))
    base_len = len(base) - len(SWT_DATA) - 8
    case("swt_huge_header_length.swt", "the header length is 2^63", "headerLength", "header length 9223372036854775808",
         data=swt_bytes({"a": SWT_A, "b": SWT_B}, SWT_DATA, declared=2**63))
    case("swt_header_past_file.swt", "the header length runs one byte past the end of the file", "headerLength",
         f"header length {base_len + 32 + 1}",
         data=swt_bytes({"a": SWT_A, "b": SWT_B}, SWT_DATA, declared=base_len + 32 + 1))
    deep = b'{"__metadata__":' + b'{"x":' * 12 + b'"y"' + b"}" * 12 + b"}"
    case("swt_deep_json.swt", "JSON nested 13 levels deep in the header (the limit is 8)",
         "notJSON", "nesting deeper than 8 levels", data=swt_bytes(None, b"", raw_header=deep),
         offset=8 + deep.index(b'{"x":' * 8) + 5 * 8)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    pickles()
    tensors()
    kinds()
    zips()
    legacy()
    tars()
    swts()
    names = [m["file"] for m in MANIFEST]
    assert len(names) == len(set(names))
    R.write_json(OUT / "manifest.json", {
        "generator": GENERATOR,
        "note": "Every file must be refused with exactly this error; see Tests/Fixtures/README.md",
        "files": MANIFEST,
    })
    total = sum(m["bytes"] for m in MANIFEST)
    print(f"{len(MANIFEST)} hostile files, {total} bytes")


if __name__ == "__main__":
    main()
