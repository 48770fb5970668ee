"""Writer for the PyTorch 0.1 tar checkpoint layout (written from scratch).

The layout mirrors torchvision's original resnet18-5c106cde.pth (see the head
in ../shared/weights): a POSIX tar in PAX format where every member is preceded
by a `././@PaxHeader` ('x') record carrying a fractional `mtime=`; the ustar
mtime field itself is 0. Members, in order:

  sys_info  protocol-2 pickle of {'little_endian', 'protocol_version', 'type_sizes'}
  pickle    protocol-2 pickle of an OrderedDict (GLOBAL + EMPTY_TUPLE + REDUCE,
            MARK ... SETITEMS); parameters are Parameter via EMPTY_TUPLE NEWOBJ +
            BUILD(5-tuple (BINPERSID '<tensor key>', None, None, True, False)),
            buffers are a bare BINPERSID '<tensor key>'
  tensors   pickle(count), then per tensor: pickle((key, storage_key, torch.XTensor)),
            int32 ndim, 4 padding bytes, ndim int64 sizes, ndim int64 strides,
            int64 storage offset
  storages  pickle(count), then per storage: pickle((key, 'cpu', torch.XStorage)),
            int64 numel, raw little-endian elements; finally
            pickle([(view_key, root_key, offset, numel), ...])

The pickles are emitted opcode by opcode in the style of Python 2's cPickle
(BINUNICODE strings, BINPUT after every memoizable object, TUPLE3 for triples).
"""
import struct

PROTO2 = b"\x80\x02"


class P2:
    """Tiny protocol-2 pickle emitter."""

    def __init__(self):
        self.out = bytearray(PROTO2)
        self.n_memo = 0
        self.globals = {}

    def put(self):
        i = self.n_memo
        self.n_memo += 1
        self.out += b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)
        return i

    def get(self, i):
        self.out += b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)

    def int(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        elif -2**31 <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)
        else:                                   # LONG1, two's complement LE
            n = (v.bit_length() + 8) // 8
            self.out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    def str(self, s):
        b = s.encode("utf-8")
        self.out += b"X" + struct.pack("<I", len(b)) + b
        self.put()

    def glob(self, module, name):
        key = (module, name)
        if key in self.globals:
            self.get(self.globals[key])
        else:
            self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            self.globals[key] = self.put()

    def op(self, b):
        self.out += b

    def done(self):
        self.out += b"."
        return bytes(self.out)


def sys_info_pickle():
    p = P2()
    p.op(b"}")
    p.put()
    p.op(b"(")
    p.str("little_endian"); p.op(b"\x88")
    p.str("protocol_version"); p.int(1000)
    p.str("type_sizes"); p.op(b"}"); p.put(); p.op(b"(")
    for k, v in (("int", 4), ("short", 2), ("long", 4)):
        p.str(k); p.int(v)
    p.op(b"u")
    p.op(b"u")
    return p.done()


def state_pickle(entries):
    """entries: [(name, tensor_key:int, is_parameter:bool)] in dict order."""
    p = P2()
    p.glob("collections", "OrderedDict")
    p.op(b")R")
    p.put()
    p.op(b"(")
    for name, key, is_param in entries:
        p.str(name)
        if is_param:
            p.glob("torch.nn.parameter", "Parameter")
            p.op(b")\x81")                      # EMPTY_TUPLE NEWOBJ
            p.put()
            p.op(b"(")
            p.str(str(key)); p.op(b"Q")         # BINPERSID: data
            p.op(b"NN\x88\x89")                 # grad, backward_hooks, requires_grad, volatile
            p.op(b"t")
            p.put()
            p.op(b"b")                          # BUILD -> Tensor.__setstate__
        else:
            p.str(str(key)); p.op(b"Q")
    p.op(b"u")
    return p.done()


def _count(n):
    p = P2()
    p.int(n)
    return p.done()


def _triple(a, b, module, name):
    p = P2()
    p.int(a)
    if isinstance(b, str):
        p.str(b)
    else:
        p.int(b)
    p.glob(module, name)
    p.op(b"\x87")                               # TUPLE3
    p.put()
    return p.done()


def tensors_member(tensors):
    """tensors: [(key, storage_key, 'FloatTensor', sizes, strides, offset, pad4)]."""
    out = bytearray(_count(len(tensors)))
    for key, skey, cls, sizes, strides, offset, pad in tensors:
        assert len(sizes) == len(strides) and len(pad) == 4
        out += _triple(key, skey, "torch", cls)
        out += struct.pack("<i", len(sizes)) + pad
        out += struct.pack(f"<{len(sizes)}q", *sizes)
        out += struct.pack(f"<{len(strides)}q", *strides)
        out += struct.pack("<q", offset)
    return bytes(out)


def storages_member(storages, views):
    """storages: [(key, 'FloatStorage', numel, raw_bytes)]; views: [(view, root, offset, numel)]."""
    out = bytearray(_count(len(storages)))
    for key, cls, numel, raw in storages:
        out += _triple(key, "cpu", "torch", cls)
        out += struct.pack("<q", numel) + raw
    p = P2()
    p.op(b"]")
    p.put()
    if views:
        if len(views) > 1:
            p.op(b"(")
        for view in views:
            p.op(b"(")
            for v in view:
                p.int(v)
            p.op(b"t")
            p.put()
        p.op(b"e" if len(views) > 1 else b"a")
    out += p.done()
    return bytes(out)


# ---------------------------------------------------------------- tar framing

def _octal(v, width):
    return b"%0*o" % (width - 1, v) + b"\0"


def _header(name, size, kind, mode=0, uid=0, gid=0, uname=b"", gname=b""):
    h = bytearray(512)
    h[0:100] = name.ljust(100, b"\0")
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(0, 12)                  # real mtime lives in the PAX record
    h[148:156] = b" " * 8                       # checksum placeholder
    h[156:157] = kind
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[265:297] = uname.ljust(32, b"\0")
    h[297:329] = gname.ljust(32, b"\0")
    h[329:337] = _octal(0, 8)
    h[337:345] = _octal(0, 8)
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _pad(b):
    return b + bytes(-len(b) % 512)


def _pax_record(key, value):
    body = f" {key}={value}\n"
    n = len(body) + len(str(len(body)))
    if len(str(n)) + len(body) != n:            # the length counts its own digits
        n += 1
    return f"{n}{body}".encode()


def tar_archive(members):
    """members: [(name, data, mtime_string)] -> bytes of a PAX tar archive."""
    out = bytearray()
    for name, data, mtime in members:
        rec = _pax_record("mtime", mtime)
        out += _header(b"././@PaxHeader", len(rec), b"x") + _pad(rec)
        out += _header(name.encode(), len(data), b"0", mode=0o600, uid=1000, gid=100,
                       uname=b"fixture", gname=b"users")
        out += _pad(data)
    out += bytes(1024)                          # end-of-archive marker
    out += bytes(-len(out) % 10240)             # tar record size, as tarfile pads
    return bytes(out)


def tar_checkpoint(entries, tensors, storages, views, mtime0=1500000000.0):
    """Whole checkpoint file bytes. See the module docstring for the arguments."""
    members = [("sys_info", sys_info_pickle()),
               ("pickle", state_pickle(entries)),
               ("tensors", tensors_member(tensors)),
               ("storages", storages_member(storages, views))]
    return tar_archive([(name, data, repr(mtime0 + 0.015625 * i))
                        for i, (name, data) in enumerate(members)])
