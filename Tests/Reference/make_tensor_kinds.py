#!/usr/bin/env python3
"""Writes Tests/Fixtures/kinds/: checkpoints holding quantized, sparse, complex, meta
and newer-dtype tensors, each <stem>.pth with <stem>.expected.json.

Needs Debian's torch 1.13 (with its torchvision 0.14) and the ml_dtypes package.
Debian's interpreter has torch but not ml_dtypes, so run it from a venv that sees
the system packages. The fixtures were written with this setup (ml_dtypes 0.5.4
on numpy 1.24.2; --no-deps keeps pip from pulling numpy 2, which torch 1.13
cannot use):

    /usr/bin/python3 -m venv --system-site-packages /tmp/mlvenv
    /tmp/mlvenv/bin/pip install --no-deps ml_dtypes==0.5.4
    /tmp/mlvenv/bin/python Tests/Reference/make_tensor_kinds.py     # from the repository root

Deterministic: fixed seeds, one thread, torch's own zip writer (no timestamps)
for the files torch writes, fixed zip timestamps for the hand-built one, and the
unused tail bytes of sub-byte quantized storages set to zero.

Fixtures:
  quantized_mobilenet_v2  state_dict of torchvision's quantizable MobileNetV2
                          (width_mult 0.25, 10 classes), eager-mode post-training quantized
  quantized_kinds         per-tensor quint8/qint8/qint32, per-channel qint8 on axis 0 and 1,
                          a transposed qint8 view, quint4x2 and quint2x4, the state dicts of
                          quantized EmbeddingBag (quint4x2 and quint8) and quantized Linear
  sparse_kinds            COO (coalesced, uncoalesced, hybrid) and CSR
  complex                 complex64 and complex128 with -0.0, inf and NaN parts
  meta                    meta tensors (no data) beside a normal one
  numpy_kinds             numpy arrays (uint16/32/64, complex64/128, both byte orders) and scalars
  v3_dtypes               HAND-BUILT (torch 1.13 cannot write or read it): uint16/32/64,
                          complex32 and the float8 dtypes as torch >= 2.1 writes them, through
                          torch._utils._rebuild_tensor_v3 and torch.storage.UntypedStorage

Fields of <stem>.expected.json:
  generator, torch_version, file, format ("zip"), pickle_protocol (PROTO of data.pkl),
  torch_readable (torch 1.13's torch.load reads it), weights_only_1_13 (torch.load(..., weights_only=True) reads
  it; when false, weights_only_1_13_error holds torch 1.13's reason) for the files torch
  wrote, hand_built (only v3_dtypes, true), note (optional),
  globals: sorted unique "module.name" of every GLOBAL / STACK_GLOBAL in data.pkl,
  tensors: in the order a reader meets them (state-dict order; a tuple value <key> gives
           <key>.0, <key>.1, ..., None items skipped, each with "tuple_of": <key>), each
     name, dtype (torch's name without "torch."), shape, layout ("strided", "sparse_coo",
     "sparse_csr", ...), device ("cpu" | "meta"), requires_grad, parameter (an
     nn.Parameter), and by kind:
     strided (not quantized): stride, storage_offset, storage_bytes (of the whole storage),
         bytes_hex: the elements in row-major order as little-endian bytes (complex: numpy's
         complex64/complex128 bytes, i.e. real then imaginary part);
     quantized: stride, storage_offset, storage_bytes (bytes of the whole storage; for
         quint4x2/quint2x4 this is rows * ceil(last dim / elements per byte), while the data
         is packed without row padding), qscheme (str(t.qscheme()) without "torch."),
         pickled_qscheme (the qscheme global torch writes, "module.name"), and for per-tensor
         schemes scale (float) and zero_point (int), for per-channel schemes scales,
         scales_dtype, zero_points (ints or floats), zero_points_dtype, axis;
         int_repr_hex: bytes of t.int_repr() made contiguous (row-major; for quint4x2 and
         quint2x4 the packed uint8 bytes int_repr() returns, ceil(numel * bits / 8) of them,
         first element in the low bits); dequantized_f32_hex: t.dequantize() as row-major
         little-endian float32;
     sparse: dense_hex (t.to_dense() bytes), components: ordered [{name, dtype, shape,
         stride, storage_offset, bytes_hex}] -- COO: indices, values (t._indices(),
         t._values(), what torch pickles) plus sparse_dim, dense_dim, is_coalesced (of the
         tensor that was saved; torch 1.13 loads every COO tensor as not coalesced);
         CSR/BSR: crow_indices, col_indices, values; CSC/BSC: ccol_indices, row_indices,
         values;
     meta: stride, no bytes;
     hand-built (v3_dtypes): stride, storage_offset, storage_key, storage_bytes,
         storage_hex (the whole storage), bytes_hex (the exact bytes of the view's elements
         in row-major order), float32_hex for float8 tensors (each element's value as
         little-endian float32, from ml_dtypes) and for complex32 (real, imag interleaved).
     Any *_hex field of a tensor with more than 256 elements is replaced by *_sha256
     (hashlib.sha256 of the same bytes): bytes_sha256, int_repr_sha256,
     dequantized_f32_sha256, dense_sha256; so are the scales and zero_points lists of such
     a per-channel tensor: scales_sha256 and zero_points_sha256 hash their little-endian
     bytes in scales_dtype and zero_points_dtype.
  values: non-tensor state-dict entries in order, [{name, repr}] (repr() of the value,
          e.g. "torch.qint8" for the dtype of quantized Linear's packed params).
"""
import collections
import io
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

try:
    import ml_dtypes         # noqa: E402
except ImportError:
    sys.exit("make_tensor_kinds.py needs the ml_dtypes package beside torch 1.13. Set it up with\n"
             "    /usr/bin/python3 -m venv --system-site-packages /tmp/mlvenv\n"
             "    /tmp/mlvenv/bin/pip install --no-deps ml_dtypes==0.5.4\n"
             "and run /tmp/mlvenv/bin/python Tests/Reference/make_tensor_kinds.py")
import numpy as np           # noqa: E402
import torch                 # noqa: E402

GENERATOR = "Tests/Reference/make_tensor_kinds.py"
OUT = R.FIXTURES / "kinds"
LARGE = 256                  # tensors with more elements get *_sha256 instead of *_hex
ENGINE = "onednn"            # Debian's torch 1.13 is built without FBGEMM
KEEP_ALIVE = []               # quantized modules whose unpacked weights borrow their memory
warnings.filterwarnings("ignore")
torch.set_num_threads(1)


# ------------------------------------------------------------------ encoding

def name_of(x):
    return str(x).replace("torch.", "")


def put_bytes(d, field, data, numel):
    """d[field] = hex, or d[<field without _hex>_sha256] for more than LARGE elements."""
    if numel > LARGE:
        d[field[:-len("_hex")] + "_sha256"] = R.sha256_bytes(data)
    else:
        d[field] = data.hex()


def contiguous_bytes(t):
    return t.detach().contiguous().numpy().tobytes()


def component(name, t):
    d = {"name": name, "dtype": R.dtype_name(t.dtype), "shape": list(t.shape),
         "stride": list(t.stride()), "storage_offset": t.storage_offset()}
    put_bytes(d, "bytes_hex", contiguous_bytes(t), t.numel())
    return d


def pickled_qscheme(t):
    """The qscheme global that torch 1.13's Tensor.__reduce_ex__ hands to the pickler."""
    func, args = t._reduce_ex_internal(2)
    assert func is torch._utils._rebuild_qtensor
    return "torch." + name_of(args[4][0])


def sub_byte_bits(dtype):
    return {torch.quint4x2: 4, torch.quint2x4: 2}.get(dtype)


def encode_quantized(d, t):
    u = t.storage().untyped()
    d.update({"stride": list(t.stride()), "storage_offset": t.storage_offset(),
              "storage_bytes": u.nbytes(), "qscheme": name_of(t.qscheme()),
              "pickled_qscheme": pickled_qscheme(t)})
    if t.qscheme() == torch.per_tensor_affine:
        d["scale"] = t.q_scale()
        d["zero_point"] = t.q_zero_point()
    else:
        s, z = t.q_per_channel_scales(), t.q_per_channel_zero_points()
        if t.numel() > LARGE:
            d.update({"scales_sha256": R.sha256_bytes(contiguous_bytes(s)),
                      "scales_dtype": R.dtype_name(s.dtype),
                      "zero_points_sha256": R.sha256_bytes(contiguous_bytes(z)),
                      "zero_points_dtype": R.dtype_name(z.dtype)})
        else:
            d.update({"scales": s.tolist(), "scales_dtype": R.dtype_name(s.dtype),
                      "zero_points": z.tolist(), "zero_points_dtype": R.dtype_name(z.dtype)})
        d["axis"] = t.q_per_channel_axis()
    rep = t.int_repr().contiguous()
    bits = sub_byte_bits(t.dtype)
    if bits:
        assert rep.numel() == math.ceil(t.numel() * bits / 8)
    else:
        assert rep.numel() == t.numel()
    put_bytes(d, "int_repr_hex", rep.numpy().tobytes(), t.numel())
    deq = t.dequantize().contiguous().numpy().astype("<f4").tobytes()
    put_bytes(d, "dequantized_f32_hex", deq, t.numel())


def encode_sparse(d, t):
    put_bytes(d, "dense_hex", contiguous_bytes(t.to_dense()), t.numel())
    if t.layout == torch.sparse_coo:
        d.update({"sparse_dim": t.sparse_dim(), "dense_dim": t.dense_dim(),
                  "is_coalesced": t.is_coalesced()})
        comps = [("indices", t._indices()), ("values", t._values())]
    elif t.layout in (torch.sparse_csr, torch.sparse_bsr):
        comps = [("crow_indices", t.crow_indices()), ("col_indices", t.col_indices()),
                 ("values", t.values())]
    else:
        comps = [("ccol_indices", t.ccol_indices()), ("row_indices", t.row_indices()),
                 ("values", t.values())]
    d["components"] = [component(n, c) for n, c in comps]


def encode_tensor(name, t):
    d = {"name": name, "dtype": R.dtype_name(t.dtype), "shape": list(t.shape),
         "layout": name_of(t.layout), "device": t.device.type,
         "requires_grad": bool(t.requires_grad), "parameter": isinstance(t, torch.nn.Parameter)}
    if t.device.type == "meta":
        d["stride"] = list(t.stride())
    elif t.is_quantized:
        encode_quantized(d, t)
    elif t.layout != torch.strided:
        encode_sparse(d, t)
    else:
        d.update({"stride": list(t.stride()), "storage_offset": t.storage_offset(),
                  "storage_bytes": t.storage().untyped().nbytes()})
        put_bytes(d, "bytes_hex", R.tensor_le_bytes(t), t.numel())
    return d


def encode_entries(sd):
    """(tensors, values) of a flat dict, tuples of tensors expanded to <key>.<i>."""
    tensors, values = [], []
    for k, v in sd.items():
        if isinstance(v, torch.Tensor):
            tensors.append(encode_tensor(k, v))
        elif isinstance(v, tuple) and any(isinstance(x, torch.Tensor) for x in v):
            for i, x in enumerate(v):
                if x is None:
                    continue
                assert isinstance(x, torch.Tensor), (k, type(x))
                tensors.append({**encode_tensor(f"{k}.{i}", x), "tuple_of": k})
        else:
            values.append({"name": k, "repr": repr(v)})
    return tensors, values


# ------------------------------------------------------------------ files

def data_pkl(path):
    with zipfile.ZipFile(path) as z:
        return z.read(R.zip_data_pkl_name(path))


def header(path, readable):
    scan = R.scan_pickle(data_pkl(path))
    return {"generator": GENERATOR, "torch_version": torch.__version__,
            "file": path.name, "format": "zip", "pickle_protocol": scan["protocol"],
            "torch_readable": readable, "globals": R.global_names([scan])}


def weights_only(path):
    try:
        torch.load(path, weights_only=True)
        return True, None
    except Exception as e:                      # torch 1.13 raises UnpicklingError
        msg = str(e)
        cut = msg.find("WeightsUnpickler error")
        return False, (msg[cut:] if cut >= 0 else msg).splitlines()[0].strip()


def without_coalesced(tensors):
    return [{k: v for k, v in t.items() if k != "is_coalesced"} for t in tensors]


def save_fixture(stem, obj, note=None):
    path = OUT / f"{stem}.pth"
    torch.save(obj, path)
    tensors, values = encode_entries(obj)
    loaded = torch.load(path)
    assert list(loaded.keys()) == list(obj.keys()), stem
    ltensors, lvalues = encode_entries(loaded)
    assert without_coalesced(ltensors) == without_coalesced(tensors), f"{stem}: round trip differs"
    assert lvalues == values, stem
    exp = header(path, True)
    ok, err = weights_only(path)
    exp["weights_only_1_13"] = ok
    if err:
        exp["weights_only_1_13_error"] = err
    if note:
        exp["note"] = note
    exp["tensors"] = tensors
    exp["values"] = values
    emit(path, exp)
    return path


def emit(path, exp):
    R.write_json(path.with_suffix(".expected.json"), exp)
    print(f"  {path.name:30s} {path.stat().st_size:7d} B  tensors={len(exp['tensors']):3d}"
          f"  globals={len(exp['globals'])}")


# ------------------------------------------------------------------ 1. MobileNetV2

def make_mobilenet():
    from torchvision.models.quantization import mobilenet_v2
    torch.manual_seed(0)
    torch.backends.quantized.engine = ENGINE
    model = mobilenet_v2(weights=None, quantize=False, width_mult=0.25, num_classes=10)
    assert model.features[0][0].out_channels == 8            # width_mult reached the model
    assert model.classifier[1].out_features == 10
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.8, 1.25)
    model.eval()
    model.fuse_model()
    model.qconfig = torch.ao.quantization.get_default_qconfig("fbgemm")
    torch.ao.quantization.prepare(model, inplace=True)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(2, 3, 64, 64, generator=g))
    torch.ao.quantization.convert(model, inplace=True)
    sd = model.state_dict()
    for k, v in sd.items():                                   # no uninitialised storage bytes
        if isinstance(v, torch.Tensor) and v.is_quantized:
            assert v.storage().untyped().nbytes() == v.numel() * v.element_size(), k
    note = ("torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False, "
            "width_mult=0.25, num_classes=10), BatchNorm running stats randomised, fused, "
            "qconfig get_default_qconfig('fbgemm'), calibrated on 4 seeded [2,3,64,64] batches, "
            f"converted. Debian's torch 1.13 has no FBGEMM, so the quantized engine was '{ENGINE}' "
            "(the engine only changes how weights are packed at run time; the state dict holds "
            "them unpacked). Conv weights are per_channel_affine qint8 with float64 scales and "
            "int64 zero points; classifier.1 is a quantized Linear whose packed params are a "
            "tuple (weight, bias) with the bias an nn.Parameter.")
    return save_fixture("quantized_mobilenet_v2", sd, note)


# ------------------------------------------------------------------ 2. quantized kinds

def zero_sub_byte_tail(q):
    """quint4x2/quint2x4 storages have rows * ceil(cols / per_byte) bytes but the values are
    packed without row padding, so the last bytes are never written; zero them."""
    bits = sub_byte_bits(q.dtype)
    used = math.ceil(q.numel() * bits / 8)
    u = q.storage().untyped()
    for i in range(used, u.nbytes()):
        u[i] = 0
    return used, u.nbytes()


def quantized_kinds_object():
    torch.manual_seed(0)
    torch.backends.quantized.engine = ENGINE
    x = torch.randn(2, 3)
    obj = collections.OrderedDict()
    obj["q_quint8"] = torch.quantize_per_tensor(x, 0.02, 128, torch.quint8)
    obj["q_qint8"] = torch.quantize_per_tensor(x, 0.015625, -3, torch.qint8)
    obj["q_qint32"] = torch.quantize_per_tensor(x * 1000, 0.001, 7, torch.qint32)
    w = torch.randn(3, 4)
    obj["qc_axis0"] = torch.quantize_per_channel(
        w, torch.tensor([0.01, 0.02, 0.005], dtype=torch.float64),
        torch.tensor([3, -2, 0], dtype=torch.int64), 0, torch.qint8)
    obj["qc_axis1"] = torch.quantize_per_channel(
        w, torch.tensor([0.01, 0.0125, 0.02, 0.03], dtype=torch.float64),
        torch.tensor([-1, 5, 0, 2], dtype=torch.int64), 1, torch.qint8)
    base = torch.quantize_per_tensor(torch.randn(4, 3), 0.03, 1, torch.qint8)
    obj["q_transposed"] = base.t()                            # [3, 4], strides (1, 3)
    v = torch.rand(3, 5) * 1.5 - 0.2
    obj["q_quint4x2"] = torch.quantize_per_tensor(v, 0.1, 2, torch.quint4x2)
    obj["q_quint2x4"] = torch.quantize_per_tensor(v, 0.5, 1, torch.quint2x4)
    tails = {k: zero_sub_byte_tail(obj[k]) for k in ("q_quint4x2", "q_quint2x4")}

    qn = torch.ao.nn.quantized
    for prefix, (n, dim, dtype, qconfig) in (
            ("emb4.", (6, 8, torch.quint4x2, torch.ao.quantization.float_qparams_weight_only_qconfig_4bit)),
            ("emb8.", (5, 4, torch.quint8, torch.ao.quantization.float_qparams_weight_only_qconfig))):
        # The constructor's own weight is uninitialised memory (and always quint8), so the
        # weight comes from a seeded float EmbeddingBag, as from_float does.
        fe = torch.nn.EmbeddingBag(n, dim, mode="sum")
        fe.qconfig = qconfig
        qe = qn.EmbeddingBag.from_float(fe)
        assert isinstance(qe, qn.EmbeddingBag) and qe.weight().dtype == dtype
        assert (qe.num_embeddings, qe.embedding_dim) == (n, dim)
        # The unpacked weight's scales and zero points point into the module's packed
        # params (from_blob), so the module must outlive the save.
        KEEP_ALIVE.append(qe)
        for k, t in qe.state_dict().items():
            obj[prefix + k] = t
        wq = obj[prefix + "_packed_params._packed_weight"]
        step = wq.q_per_channel_scales().max().item()
        assert (wq.dequantize() - fe.weight.detach()).abs().max().item() <= step, prefix

    fc = qn.Linear(4, 3)
    wq = torch.quantize_per_tensor(torch.randn(3, 4), 0.02, 0, torch.qint8)
    fc.set_weight_bias(wq, torch.randn(3))
    for k, t in fc.state_dict().items():
        obj["fc." + k] = t
    return obj, tails


def make_quantized_kinds():
    obj, tails = quantized_kinds_object()
    t4, t2 = tails["q_quint4x2"], tails["q_quint2x4"]
    note = ("emb4./emb8. are the state dicts of torch.ao.nn.quantized.EmbeddingBag(6, 8, "
            "dtype=torch.quint4x2) and EmbeddingBag(5, 4, dtype=torch.quint8), built with "
            "from_float from seeded float EmbeddingBags (the constructor alone leaves the weight "
            "uninitialised). Their weights are per_channel_affine_float_qparams with float32 "
            "scales and zero points, but torch 1.13 pickles the qscheme as torch.per_channel_affine "
            "(pickled_qscheme); its loader gives float_qparams back because the zero points are "
            "floats. fc. is torch.ao.nn.quantized.Linear(4, 3) after set_weight_bias. "
            f"q_quint4x2 and q_quint2x4 ([3, 5]) have storages of {t4[1]} and {t2[1]} bytes "
            "(rows * ceil(5 / elements per byte)) but int_repr() packs the 15 values without row "
            f"padding into {t4[0]} and {t2[0]} bytes; the storage tail is never written by torch, "
            "so the generator zeroes it. q_transposed is base.t() of a [4, 3] qint8 tensor that "
            "is not saved itself.")
    return save_fixture("quantized_kinds", obj, note)


# ------------------------------------------------------------------ 3. sparse

def sparse_object():
    obj = collections.OrderedDict()
    dense = torch.tensor([[0.0, 1.5, 0.0, -2.0], [0.0, 0.0, 0.0, 0.0], [3.25, 0.0, -0.5, 0.0]])
    obj["coo"] = dense.to_sparse()
    assert obj["coo"].is_coalesced()
    idx = torch.tensor([[2, 0, 1, 0, 2], [1, 1, 2, 1, 0]])     # (0, 1) twice, out of order
    obj["coo_uncoalesced"] = torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0, 4.0, 8.0, -1.5]),
                                                     (3, 3))
    assert not obj["coo_uncoalesced"].is_coalesced()
    hyb = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0], [0.0, 0.0, 0.0], [0.5, 0.0, 4.0]])
    obj["coo_hybrid"] = hyb.to_sparse(1)                       # sparse_dim 1, dense_dim 1
    obj["csr"] = dense.to_sparse_csr()
    return obj, dense


def make_sparse():
    obj, dense = sparse_object()
    refused = []
    blocks = torch.arange(1.0, 17.0).reshape(4, 4)
    blocks[0:2, 2:4] = 0
    for name, make in (("csc", lambda: dense.to_sparse_csc()),
                       ("bsr", lambda: blocks.to_sparse_bsr((2, 2))),
                       ("bsc", lambda: blocks.to_sparse_bsc((2, 2)))):
        try:
            torch.save({name: make()}, io.BytesIO())
            obj[name] = make()
        except RuntimeError as e:
            refused.append((name, str(e)))
    note = ("torch 1.13 pickles COO through torch._utils._rebuild_sparse_tensor and CSR through "
            "_rebuild_sparse_csr_tensor; its loader marks every COO tensor as not coalesced. ")
    if refused:
        errors = sorted({e for _, e in refused})
        note += ("torch 1.13 cannot pickle " + ", ".join(n for n, _ in refused) + ", so they are "
                 "left out: its Tensor.__reduce_ex__ knows only sparse_coo and sparse_csr, the "
                 "others fall through to the strided path, which fails with RuntimeError: "
                 + "; ".join(errors) + ".")
    return save_fixture("sparse_kinds", obj, note.strip())


# ------------------------------------------------------------------ 4. complex

def make_complex():
    inf, nan = math.inf, math.nan
    obj = collections.OrderedDict()
    obj["complex64"] = torch.complex(
        torch.tensor([[1.5, -0.0, inf], [nan, 0.0, -2.25]], dtype=torch.float32),
        torch.tensor([[-0.5, 0.0, -inf], [1.0, nan, 3.0e38]], dtype=torch.float32))
    obj["complex128"] = torch.complex(
        torch.tensor([math.pi, -0.0, inf, 5e-324], dtype=torch.float64),
        torch.tensor([nan, -1.0, 2.0, -0.0], dtype=torch.float64))
    try:
        torch.save({"c": torch.tensor([1 + 2j], dtype=torch.complex32)}, io.BytesIO())
        obj["complex32"] = torch.tensor([1.5 - 2j, -0.0 + 65504j], dtype=torch.complex32)
        note = None
    except Exception as e:
        note = (f"torch 1.13 cannot save complex32 ({type(e).__name__}: {e}), so it is left "
                "out; v3_dtypes.pth has a hand-built complex32 tensor.")
    return save_fixture("complex", obj, note)


# ------------------------------------------------------------------ 5. meta

def make_meta():
    obj = collections.OrderedDict()
    obj["meta_f32"] = torch.empty(2, 3, device="meta")
    obj["meta_i64_strided"] = torch.empty_strided((5,), (2,), dtype=torch.int64, device="meta")
    obj["meta_i64_transposed"] = torch.empty_strided((2, 3), (1, 2), dtype=torch.int64, device="meta")
    obj["meta_f16_grad"] = torch.empty(3, dtype=torch.float16, device="meta").requires_grad_()
    obj["cpu_f32"] = torch.tensor([0.25, -8.0])
    note = ("torch 1.13 pickles a meta tensor as torch._utils._rebuild_meta_tensor_no_storage"
            "(dtype, size, stride, requires_grad): no storage, no storage offset.")
    return save_fixture("meta", obj, note)


# ------------------------------------------------------------------ 6. v3 dtypes (hand-built)

class Proto2Writer:
    """A protocol-2 pickle written opcode by opcode, memoized the way pickle.Pickler does:
    every string, global and non-empty tuple gets a BINPUT, repeats of a string or global
    become BINGET."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")                       # PROTO 2
        self.memo = {}

    def _put(self, key):
        i = len(self.memo)
        self.memo[key] = i
        self.out += b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i)

    def _get_or_false(self, key):
        if key not in self.memo:
            return False
        i = self.memo[key]
        self.out += b"h" + bytes([i]) if i < 256 else b"j" + struct.pack("<I", i)
        return True

    def glob(self, module, name):
        if not self._get_or_false(("global", module, name)):
            self.out += b"c" + f"{module}\n{name}\n".encode("ascii")    # GLOBAL
            self._put(("global", module, name))

    def string(self, s):
        if not self._get_or_false(("str", s)):
            b = s.encode("utf-8")
            self.out += b"X" + struct.pack("<I", len(b)) + b            # BINUNICODE
            self._put(("str", s))

    def int(self, n):
        if 0 <= n < 256:
            self.out += b"K" + bytes([n])                               # BININT1
        elif 0 <= n < 65536:
            self.out += b"M" + struct.pack("<H", n)                     # BININT2
        else:
            self.out += b"J" + struct.pack("<i", n)                     # BININT

    def false(self):
        self.out += b"\x89"                                             # NEWFALSE

    def tuple(self, *emit):
        if not emit:
            self.out += b")"                                            # EMPTY_TUPLE
            return
        if len(emit) > 3:
            self.out += b"("                                            # MARK
        for e in emit:
            e()
        self.out += b"t" if len(emit) > 3 else b"\x85\x86\x87"[len(emit) - 1:len(emit)]
        self._put(("tuple", len(self.memo)))

    def ordered_dict(self):
        self.glob("collections", "OrderedDict")
        self.out += b")R"                                               # EMPTY_TUPLE REDUCE
        self._put(("obj", len(self.memo)))

    def ints(self, xs):
        self.tuple(*[(lambda v=v: self.int(v)) for v in xs])

    def rebuild_tensor_v3(self, key, nbytes, offset, size, stride, dtype):
        """torch._utils._rebuild_tensor_v3(storage, offset, size, stride, False, OrderedDict(),
        torch.<dtype>), the storage being persistent id
        ('storage', torch.storage.UntypedStorage, key, 'cpu', nbytes)."""
        self.glob("torch._utils", "_rebuild_tensor_v3")
        self.out += b"("                                                # MARK (args)
        self.tuple(lambda: self.string("storage"),
                   lambda: self.glob("torch.storage", "UntypedStorage"),
                   lambda: self.string(key), lambda: self.string("cpu"),
                   lambda: self.int(nbytes))
        self.out += b"Q"                                                # BINPERSID
        self.int(offset)
        self.ints(size)
        self.ints(stride)
        self.false()
        self.ordered_dict()
        self.glob("torch", dtype)
        self.out += b"t"                                                # TUPLE
        self._put(("tuple", len(self.memo)))
        self.out += b"R"                                                # REDUCE
        self._put(("obj", len(self.memo)))

    def stop(self):
        self.out += b"."
        return bytes(self.out)


ML_FLOAT8 = {"float8_e4m3fn": ml_dtypes.float8_e4m3fn, "float8_e5m2": ml_dtypes.float8_e5m2,
             "float8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
             "float8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
             "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu}


def e8m0_f32(b):
    """float8_e8m0fnu by hand: 2 ** (b - 127), 0xFF is NaN (cross-check for ml_dtypes)."""
    return np.float32(np.nan) if b == 0xFF else np.float32(2.0 ** (b - 127))


def v3_tensors():
    """[(name, dtype, storage bytes, offset, size, stride, element size, float32 values or None)]"""
    out = []
    u16 = np.array([0, 1, 65535], dtype="<u2")
    out.append(("uint16", "uint16", u16.tobytes(), 0, [3], [1], 2, None))
    u32 = np.array([[0, 1], [2**31, 4294967295]], dtype="<u4")
    out.append(("uint32", "uint32", u32.tobytes(), 0, [2, 2], [2, 1], 4, None))
    u64 = np.array([0, 2**63, 2**64 - 1], dtype="<u8")
    out.append(("uint64", "uint64", u64.tobytes(), 0, [3], [1], 8, None))
    c32 = np.array([1.5, -2.0, -0.0, np.inf], dtype="<f2")     # (1.5 - 2j), (-0 + inf j)
    out.append(("complex32", "complex32", c32.tobytes(), 0, [2], [1], 4, c32.astype("<f4")))
    patterns = np.arange(256, dtype=np.uint8)
    for dt, ml in ML_FLOAT8.items():
        f32 = patterns.view(ml).astype(np.float32)
        if dt == "float8_e8m0fnu":
            mine = np.array([e8m0_f32(int(b)) for b in patterns], dtype=np.float32)
            assert np.array_equal(mine, f32, equal_nan=True)
        out.append((dt, dt, patterns.tobytes(), 0, [16, 16], [16, 1], 1, f32))
    view = np.array([0x38, 0x40, 0xC0, 0x7F, 0x00, 0x80, 0x01, 0xFE], dtype=np.uint8)
    out.append(("float8_e4m3fn_view", "float8_e4m3fn", view.tobytes(), 1, [2, 2], [1, 4], 1, None))
    return out


def view_bytes(storage, offset, size, stride, esize):
    """Bytes of the elements of a strided view, row-major."""
    out = bytearray()
    for idx in np.ndindex(*size):
        e = offset + sum(i * s for i, s in zip(idx, stride))
        out += storage[e * esize:(e + 1) * esize]
    return bytes(out)


class V3Checker(pickle.Unpickler):
    """Unpickles v3_dtypes' data.pkl with inert stand-ins, to check the hand-written opcodes."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            return lambda *args: ("v3",) + args
        if (module, name) == ("torch.storage", "UntypedStorage"):
            return "UntypedStorage"
        if module == "torch":
            return "dtype:" + name
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        return ("pid",) + pid


def make_v3():
    stem = "v3_dtypes"
    path = OUT / f"{stem}.pth"
    specs = v3_tensors()
    w = Proto2Writer()
    w.ordered_dict()
    w.out += b"("                                                       # MARK (items)
    for key, (name, dt, storage, off, size, stride, esize, _) in enumerate(specs):
        w.string(name)
        w.rebuild_tensor_v3(str(key), len(storage), off, size, stride, dt)
    w.out += b"u"                                                       # SETITEMS
    pkl = w.stop()
    list(pickletools.genops(pkl))                                       # well-formed
    entries = [(f"{stem}/data.pkl", pkl), (f"{stem}/byteorder", b"little")]
    entries += [(f"{stem}/data/{k}", s[2]) for k, s in enumerate(specs)]
    entries += [(f"{stem}/version", b"3\n")]
    R.write_zip(path, entries)

    # Read it back through the zip and the pickle, and rebuild each view with numpy.
    with zipfile.ZipFile(path) as z:
        obj = V3Checker(io.BytesIO(z.read(f"{stem}/data.pkl"))).load()
        blobs = {n: z.read(n) for n in z.namelist()}
    assert list(obj) == [s[0] for s in specs]
    tensors = []
    for key, (name, dt, storage, off, size, stride, esize, f32) in enumerate(specs):
        tag, pid, o, sz, st, rg, hooks, dtype = obj[name]
        assert pid == ("pid", "storage", "UntypedStorage", str(key), "cpu", len(storage))
        assert (tag, o, list(sz), list(st), rg, hooks, dtype) == \
            ("v3", off, size, stride, False, collections.OrderedDict(), "dtype:" + dt)
        assert blobs[f"{stem}/data/{key}"] == storage
        data = view_bytes(storage, off, size, stride, esize)
        d = {"name": name, "dtype": dt, "shape": size, "layout": "strided", "device": "cpu",
             "requires_grad": False, "parameter": False, "stride": stride,
             "storage_offset": off, "storage_key": str(key), "storage_bytes": len(storage),
             "storage_hex": storage.hex(), "bytes_hex": data.hex()}
        if dt.startswith("float8"):
            vals = np.frombuffer(data, dtype=np.uint8).view(ML_FLOAT8[dt]).astype("<f4")
            if f32 is not None:
                assert np.array_equal(vals, f32, equal_nan=True)
            d["float32_hex"] = vals.tobytes().hex()
        elif dt == "complex32":
            d["float32_hex"] = f32.tobytes().hex()
        tensors.append(d)
    try:
        torch.load(path)
        readable = True
    except Exception:
        readable = False
    assert not readable, "torch 1.13 was expected to refuse v3_dtypes.pth"
    exp = header(path, False)
    exp["hand_built"] = True
    exp["note"] = (
        "hand-built: torch 1.13 has none of these dtypes. Laid out as torch >= 2.1 writes "
        "them: data.pkl (protocol 2) is an OrderedDict of torch._utils._rebuild_tensor_v3("
        "storage, storage_offset, size, stride, False, OrderedDict(), torch.<dtype>) whose "
        "storage is the persistent id ('storage', torch.storage.UntypedStorage, key, 'cpu', "
        "number of bytes); entries data.pkl, byteorder ('little'), data/<key>, version "
        "('3\\n'), stored, fixed timestamps, data aligned to 64 bytes. Current torch also "
        "writes .format_version, .storage_alignment and .data/serialization_id, left out here. "
        "float32_hex comes from ml_dtypes " + ml_dtypes.__version__ + ", kept as is: a NaN "
        "element becomes the quiet NaN 0x7fc00000 carrying the element's sign bit (0xffc00000 "
        "for 0xff of e4m3fn/e5m2 and for 0x80 of the fnuz types), with no payload, so compare "
        "NaNs as NaNs. float8_e4m3fn_view is offset 1, size (2, 2), stride (1, 4) into an "
        "8-byte storage of its own.")
    exp["tensors"] = tensors
    exp["values"] = []
    emit(path, exp)
    return path


# ------------------------------------------------------------------ main

# ------------------------------------------------------------------ 7. numpy

NUMPY_TORCH = {"uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
               "complex64": "complex64", "complex128": "complex128"}


def make_numpy():
    """numpy arrays and scalars of the dtypes torch added late (unsigned, complex), in both byte
    orders: torch.save pickles them with numpy's own reconstructors."""
    obj = collections.OrderedDict()
    obj["u2"] = np.array([0, 1, 65535], dtype="<u2")
    obj["u4_be"] = np.array([[4294967295, 7], [1, 0]], dtype=">u4")
    obj["u8_be"] = np.array([2**64 - 1, 3], dtype=">u8")
    obj["c8_be"] = np.array([1 + 2j, -0.5j, np.inf - 0j], dtype=">c8")
    obj["c16"] = np.array([[1.5 - 2j]], dtype="<c16")
    obj["scalar_u8"] = np.uint64(2**64 - 1)
    obj["scalar_c8_be"] = np.array([2 + 5j], dtype=">c8")[0]
    path = OUT / "numpy_kinds.pth"
    torch.save(obj, path)
    loaded = torch.load(path)
    tensors, values = [], []
    for k, v in obj.items():
        assert np.array_equal(np.asarray(loaded[k]), np.asarray(v)), k
        if isinstance(v, np.ndarray):
            le = v.astype(v.dtype.newbyteorder("<"))
            tensors.append({"name": k, "dtype": NUMPY_TORCH[le.dtype.name], "shape": list(v.shape),
                            "layout": "strided", "device": "cpu", "requires_grad": False,
                            "parameter": False, "stride": [s // v.itemsize for s in v.strides],
                            "storage_offset": 0, "bytes_hex": le.tobytes().hex()})
        else:
            values.append({"name": k, "repr": repr(v)})
    exp = header(path, True)
    ok, err = weights_only(path)
    exp["weights_only_1_13"] = ok
    if err:
        exp["weights_only_1_13_error"] = err
    exp["note"] = ("numpy arrays and scalars, not torch tensors: a reader takes the arrays as tensors "
                   "(little-endian bytes in bytes_hex) and the scalars as values")
    exp["tensors"] = tensors
    exp["values"] = values
    emit(path, exp)


def main():
    print(f"torch {torch.__version__}  numpy {np.__version__}  ml_dtypes {ml_dtypes.__version__}"
          f"  (python {sys.version.split()[0]})")
    OUT.mkdir(parents=True, exist_ok=True)
    make_mobilenet()
    make_quantized_kinds()
    make_sparse()
    make_complex()
    make_meta()
    make_v3()
    make_numpy()
    total = sum(p.stat().st_size for p in OUT.iterdir() if p.is_file())
    print(f"Tests/Fixtures/kinds total: {total} bytes")


if __name__ == "__main__":
    main()
