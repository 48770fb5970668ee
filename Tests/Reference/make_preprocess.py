#!/usr/bin/env -S /usr/bin/python3
"""Writes the preprocessing fixtures in Tests/Fixtures/images and their expected values.

Run from the repository root with Debian's Python (Pillow 9.4, torch 1.13, torchvision 0.14):
    /usr/bin/python3 Tests/Reference/make_preprocess.py

Deterministic: the synthetic images come from seeded numpy generators, Pillow's encoders and this
file's own PNG writer are deterministic, and the photographs are committed files (see
Tests/Fixtures/images/README.md; they are copied in from python-matplotlib-data only when absent).

The image set is fixed here, before any Swift runs. For every image, images.expected.json holds what
Pillow and torchvision make of it:

  decoded   PIL.Image.open(f).convert("RGB")
  resized   transforms.Resize(256) of that (Pillow's bilinear resize)
  cropped   transforms.CenterCrop(224) of that
  tensor    ToTensor() + Normalize(ImageNet mean, std) of that, float32 little-endian

Each stage has its size, the sha256 of its bytes and a grid of samples (every `stride`-th row and
column, base64; the tensor's are the cropped samples looked up in the table) so a mismatch can be
measured, not just detected. The script checks that
Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(...)]) gives the same tensor as the
stages one by one, and that the tensor is a per-channel lookup of the cropped bytes in the stored
`normalize_table`.

Also written: resize cases (a small image resized by Pillow to many sizes, both directions; bilinear, and bicubic as "resize_bicubic"), the
output sizes torchvision's Resize computes (with max_size), CenterCrop on small images (padding and
halves-to-even offsets), and corruptions of some files (truncations, flipped bytes) with whether
Pillow decodes them.
"""
import base64
import hashlib
import io
import json
import re
import shutil
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "images"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
PIPELINE = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
PHOTO_SOURCE = Path("/usr/share/matplotlib/mpl-data/sample_data")

warnings.simplefilter("ignore")  # Pillow warns about palette transparency given as bytes


# --------------------------------------------------------------------------
# Synthetic content

def synth(w, h, seed, noise=6.0):
    """Gradients, a sine pattern, hard-edged shapes, a 1-pixel checkerboard and a diagonal line, plus
    seeded Gaussian noise: everything a resampler can get wrong."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        255.0 * x / max(w - 1, 1),
        255.0 * y / max(h - 1, 1),
        127.5 + 127.5 * np.sin(x / 5.0 + y / 7.0),
    ], -1)
    img[h // 5: h // 2, w // 6: w // 3] = [250, 20, 40]
    disc = (x - 0.65 * w) ** 2 + (y - 0.6 * h) ** 2 < (0.18 * min(w, h)) ** 2
    img[disc] = [10, 200, 90]
    patch = (x > 0.7 * w) & (y < 0.3 * h)
    checker = (x.astype(int) + y.astype(int)) % 2 == 0
    img[patch & checker] = [255, 255, 255]
    img[patch & ~checker] = [0, 0, 0]
    img[np.abs(x - y * w / h) < 0.8] = [0, 0, 0]
    img += rng.normal(0.0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def gray_of(rgb):
    return np.asarray(Image.fromarray(rgb).convert("L"))


# --------------------------------------------------------------------------
# A small PNG writer, for what Pillow cannot write: 1/2/4-bit grayscale and palettes, 16-bit colour,
# Adam7 interlacing, palettes shorter than the indices they are used with. Rows cycle through the
# five filter types so the unfiltering is exercised too.

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-D array of ints of one row (channels interleaved)."""
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    per = 8 // depth
    out = bytearray((len(samples) + per - 1) // per)
    for i, v in enumerate(samples):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(kind, row, prev, bpp):
    out = bytearray(len(row))
    for i, v in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev is not None else 0
        c = prev[i - bpp] if prev is not None and i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out[i] = (v - pred) & 0xFF
    return bytes([kind]) + bytes(out)


def write_png(path, arr, depth, color_type, interlace=False, chunks=()):
    """arr: (h, w, channels) ints already in the file's sample range."""
    h, w, ch = arr.shape
    bpp = max(1, ch * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    for xs, ys, dx, dy in passes:
        sub = arr[ys::dy, xs::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        prev = None
        for r, row in enumerate(sub):
            packed = pack_row(row.reshape(-1), depth)
            raw += filter_row(r % 5, packed, prev, bpp)
            prev = packed
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
    for kind, payload in chunks:
        data += png_chunk(kind, payload)
    data += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b"")
    path.write_bytes(data)


# --------------------------------------------------------------------------
# The image set

def make_images():
    """Writes the fixture images; returns [(file, description)] in a fixed order."""
    made = []

    def add(name, what):
        made.append((name, what))
        return OUT / name

    base = synth(161, 107, seed=1)  # odd sizes; Resize(256) upsamples to 385×256
    gray = gray_of(base)
    small = base[:61, :97]  # for the 16-bit files, which compress badly
    rng = np.random.default_rng(2)

    # JPEG
    Image.fromarray(base).save(add("jpeg_rgb420.jpg", "JPEG RGB q90 4:2:0"), quality=90, subsampling=2)
    Image.fromarray(base).save(add("jpeg_rgb444.jpg", "JPEG RGB q90 4:4:4"), quality=90, subsampling=0)
    Image.fromarray(base).save(add("jpeg_rgb422_progressive.jpg", "JPEG RGB q90 4:2:2 progressive"),
                               quality=90, subsampling=1, progressive=True)
    Image.fromarray(gray).save(add("jpeg_gray.jpg", "JPEG grayscale q90"), quality=90)
    k = np.clip(np.linspace(0, 200, base.shape[1])[None, :] + rng.normal(0, 8, base.shape[:2]), 0, 255)
    cmyk = np.dstack([255 - base, k.astype(np.uint8)]).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(add("jpeg_cmyk.jpg", "JPEG CMYK q90 (Pillow writes Adobe-inverted CMYK)"),
                                       quality=90)

    # PNG through Pillow's encoder
    Image.fromarray(gray).save(add("png_gray8.png", "PNG 8-bit grayscale"))
    alpha = np.clip(np.linspace(-40, 300, base.shape[1])[None, :].repeat(base.shape[0], 0), 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(add("png_gray_alpha.png", "PNG 8-bit gray + alpha"))
    Image.fromarray(base).save(add("png_rgb.png", "PNG 8-bit RGB"))
    Image.fromarray(np.dstack([base, alpha]), "RGBA").save(add("png_rgba.png", "PNG 8-bit RGBA (alpha 0 on a stripe)"))
    pal = Image.fromarray(base).quantize(200)
    pal.save(add("png_palette.png", "PNG 8-bit palette, 200 entries"))
    pal.save(add("png_palette_trns.png", "PNG 8-bit palette with a tRNS alpha per entry"),
             transparency=bytes(int(v) for v in rng.integers(0, 256, 200)))
    Image.fromarray(gray).save(add("png_gray_trns.png", "PNG 8-bit grayscale with a tRNS colour"), transparency=17)
    Image.fromarray(base).save(add("png_rgb_trns.png", "PNG 8-bit RGB with a tRNS colour"), transparency=(0, 0, 0))

    # PNG through the writer above
    write_png(add("png_gray1.png", "PNG 1-bit grayscale"), (gray >> 7)[..., None], 1, 0)
    write_png(add("png_gray2_interlaced.png", "PNG 2-bit grayscale, Adam7"), (gray >> 6)[..., None], 2, 0, interlace=True)
    write_png(add("png_gray4.png", "PNG 4-bit grayscale"), (gray >> 4)[..., None], 4, 0)
    g16 = np.clip(gray_of(small).astype(np.int64) * 3 + rng.integers(0, 60, small.shape[:2]), 0, 65535)
    write_png(add("png_gray16.png", "PNG 16-bit grayscale, values 0..824 (Pillow: mode I, clipped)"), g16[..., None], 16, 0)
    lo = rng.integers(0, 256, small.shape)
    write_png(add("png_rgb16.png", "PNG 16-bit RGB, random low bytes"), small.astype(np.int64) * 256 + lo, 16, 2)
    la16 = np.dstack([gray_of(small).astype(np.int64) * 256 + lo[..., 0], alpha[:61, :97].astype(np.int64) * 257])
    write_png(add("png_gray_alpha16.png", "PNG 16-bit gray + alpha"), la16, 16, 4)
    rgba16 = np.dstack([small.astype(np.int64) * 256 + lo, alpha[:61, :97].astype(np.int64) * 257])
    write_png(add("png_rgba16_interlaced.png", "PNG 16-bit RGBA, Adam7"), rgba16, 16, 6, interlace=True)
    write_png(add("png_rgb_interlaced.png", "PNG 8-bit RGB, Adam7"), base, 8, 2, interlace=True)
    q16 = Image.fromarray(base).quantize(16)
    plte16 = bytes(q16.getpalette()[:48])
    write_png(add("png_palette4.png", "PNG 4-bit palette, 16 entries"), np.asarray(q16)[..., None], 4, 3,
              chunks=[(b"PLTE", plte16)])
    idx = (np.asarray(pal).astype(np.int64) * 7) % 256
    plte40 = bytes(int(v) for v in rng.integers(0, 256, 40 * 3))
    write_png(add("png_palette_short.png", "PNG 8-bit palette of 40 entries, indices up to 255 (Pillow: gray ramp)"),
              idx[..., None], 8, 3, chunks=[(b"PLTE", plte40)])

    # Geometry: JPEG 4:2:0 q90 unless noted
    for (w, h), what in [
        ((300, 200), "landscape, downscaled to 384×256"),
        ((181, 263), "portrait, odd sizes, upscaled to 256×371"),
        ((50, 40), "tiny, upscaled to 320×256"),
        ((400, 270), "short side above 256, downscaled to 379×256"),
        ((302, 300), "resized to 257×256: crop left = round(16.5) = 16, halves to even"),
        ((256, 300), "already 256 on the short side: Resize returns it unchanged"),
        ((33, 97), "thin portrait, upscaled to 256×752"),
    ]:
        img = synth(w, h, seed=w * 1000 + h)
        Image.fromarray(img).save(add("geom_%dx%d.jpg" % (w, h), "JPEG RGB q90 4:2:0 %d×%d, %s" % (w, h, what)),
                                  quality=90, subsampling=2)
    write_png(add("geom_5x3.png", "PNG RGB 5×3, upscaled to 426×256"), synth(5, 3, seed=53, noise=40), 8, 2)

    # Photographs (see README.md)
    for name in ["grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"]:
        target = OUT / ("photo_" + name)
        if not target.exists():
            shutil.copyfile(PHOTO_SOURCE / name, target)
    made.append(("photo_grace_hopper.jpg", "photograph, JPEG 512×600 4:2:0 as published (downscaled by 2)"))
    hopper = Image.open(OUT / "photo_grace_hopper.jpg").convert("RGB").crop((96, 120, 416, 360))
    hopper.save(add("photo_grace_hopper_crop_422_progressive.jpg",
                    "photograph crop 320×240 re-encoded: JPEG q85 4:2:2 progressive"),
                quality=85, subsampling=1, progressive=True)
    made.append(("photo_Minduka_Present_Blue_Pack.png", "clip art, PNG RGBA 128×128 as published"))
    return made


# --------------------------------------------------------------------------
# Expected values

def sha(b):
    return hashlib.sha256(b).hexdigest()


def grid(arr, stride):
    """arr: (h, w, ...) — the rows and columns at multiples of stride, as bytes."""
    return np.ascontiguousarray(arr[::stride, ::stride]).tobytes()


def stage(img):
    # About 500 sampled pixels per stage, at least every 7th row and column.
    stride = max(7, int(np.ceil(np.sqrt(img.width * img.height / 500))))
    a = np.asarray(img)
    return {"size": [img.width, img.height], "sha256": sha(a.tobytes()), "stride": stride,
            "samples": base64.b64encode(grid(a, stride)).decode()}


def normalize_table():
    """ToTensor + Normalize of a 256-pixel image holding every byte value in every channel."""
    row = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)[None]
    t = T.Normalize(MEAN, STD)(T.ToTensor()(Image.fromarray(row))).numpy()  # (3, 1, 256)
    return t.reshape(3, 256).astype("<f4")


def expected_for(name, table):
    with Image.open(OUT / name) as f:
        mode = f.mode
        decoded = f.convert("RGB")
    resized = T.Resize(256)(decoded)
    cropped = T.CenterCrop(224)(resized)
    tensor = T.Normalize(MEAN, STD)(T.ToTensor()(cropped)).numpy().astype("<f4")
    assert np.array_equal(PIPELINE(decoded).numpy(), tensor), name
    c = np.asarray(cropped)
    looked_up = np.stack([table[ch][c[..., ch]] for ch in range(3)])
    assert np.array_equal(looked_up.view(np.uint32), tensor.view(np.uint32)), name
    return {
        "pil_mode": mode,
        "decoded": stage(decoded),
        "resized": stage(resized),
        "cropped": stage(cropped),
        # The samples of the tensor are those of `cropped` looked up in normalize_table (checked above).
        "tensor": {"shape": list(tensor.shape), "sha256": sha(tensor.tobytes()),
                   "min": float(tensor.min()), "max": float(tensor.max())},
    }


def pillow_outcome(data):
    try:
        with Image.open(io.BytesIO(data)) as f:
            img = f.convert("RGB")
        a = np.asarray(img)
        return {"pillow": "ok", "size": [img.width, img.height], "sha256": sha(a.tobytes())}
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, zlib.error...
        text = re.sub(r" object at 0x[0-9a-f]+", " object", str(e))[:80]
        return {"pillow": "error", "error": "%s: %s" % (type(e).__name__, text)}


def corruptions(name):
    data = (OUT / name).read_bytes()
    n = len(data)
    cases = []
    for length in sorted({0, 2, 7, 12, 40, n // 10, n // 3, n // 2, n * 9 // 10, n - 30}):
        if 0 <= length < n:
            cases.append(dict({"kind": "truncate", "length": length}, **pillow_outcome(data[:length])))
    for offset in sorted({0, 3, 9, 17, 24, 33, n // 7, 2 * n // 7, 3 * n // 7, 4 * n // 7, 5 * n // 7, 6 * n // 7}):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        cases.append(dict({"kind": "flip", "offset": offset, "xor": 255}, **pillow_outcome(bytes(flipped))))
    return {"file": name, "size": n, "cases": cases}


def resize_cases(resample=Image.BILINEAR):
    src = synth(37, 23, seed=3723, noise=30)
    sizes = [(1, 1), (3, 2), (18, 11), (36, 23), (37, 22), (37, 5), (64, 23), (100, 61), (300, 5), (9, 300),
             (12, 69)]
    out = []
    for w, h in sizes:
        r = np.asarray(Image.fromarray(src).resize((w, h), resample))
        out.append({"size": [w, h], "sha256": sha(r.tobytes()), "pixels": base64.b64encode(r.tobytes()).decode()})
    return {"source": {"size": [37, 23], "pixels": base64.b64encode(src.tobytes()).decode()}, "cases": out}


def resized_size_cases():
    rng = np.random.default_rng(7)
    shapes = [(256, 256), (256, 300), (300, 256), (257, 256), (302, 300), (1, 1), (1, 1000), (1000, 1),
              (640, 480), (480, 640), (500, 375), (375, 500), (333, 500), (3, 7), (65535, 17)]
    shapes += [tuple(int(v) for v in rng.integers(1, 3000, 2)) for _ in range(40)]
    out = []
    for w, h in shapes:
        for size, max_size in [(256, None), (224, None), (256, 300), (32, 1000)]:
            nh, nw = F._compute_resized_output_size((h, w), [size], max_size)
            out.append({"in": [w, h], "size": size, "max_size": max_size, "out": [nw, nh]})
    return out


def center_crop_cases():
    rng = np.random.default_rng(11)
    out = []
    for (w, h), (cw, ch) in [((5, 7), (8, 4)), ((9, 9), (4, 4)), ((10, 3), (3, 10)), ((1, 1), (2, 3)),
                             ((5, 6), (4, 4)), ((7, 6), (4, 3)), ((9, 8), (4, 4)), ((4, 4), (4, 4)),
                             ((6, 5), (9, 9)), ((11, 2), (6, 5))]:
        src = rng.integers(1, 256, (h, w, 3), dtype=np.uint8)
        r = np.asarray(F.center_crop(Image.fromarray(src), [ch, cw]))
        assert r.shape == (ch, cw, 3)
        out.append({"in": [w, h], "crop": [cw, ch], "source": base64.b64encode(src.tobytes()).decode(),
                    "pixels": base64.b64encode(r.tobytes()).decode()})
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    images = make_images()
    table = normalize_table()
    entries = []
    for name, what in images:
        e = {"file": name, "what": what}
        e.update(expected_for(name, table))
        entries.append(e)
    corrupt = [corruptions(n) for n in ["jpeg_rgb420.jpg", "jpeg_rgb422_progressive.jpg", "jpeg_cmyk.jpg",
                                        "png_rgb.png", "png_rgb_interlaced.png", "png_palette_trns.png",
                                        "png_gray16.png"]]
    doc = {
        "generator": "Tests/Reference/make_preprocess.py",
        "pillow_version": PIL.__version__,
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "mean": MEAN,
        "std": STD,
        "normalize_table": base64.b64encode(table.tobytes()).decode(),
        "images": entries,
        "resize": resize_cases(),
        "resize_bicubic": resize_cases(Image.BICUBIC),
        "resized_size": resized_size_cases(),
        "center_crop": center_crop_cases(),
        "corruptions": corrupt,
    }
    (OUT / "images.expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print("wrote %d images, %d corruption sets; Tests/Fixtures/images holds %d bytes" % (
        len(entries), len(corrupt), total), file=sys.stderr)


if __name__ == "__main__":
    main()
