"""Golden dtype casts: what torch 1.13's CPU casts give for float32 and float64 inputs.

    /usr/bin/python3 Tests/Reference/make_casts.py

Writes Tests/Fixtures/casts.expected.json: input bit patterns and torch's float16, bfloat16 and
float32 results as bit patterns (hex), for hand-picked edge cases (ties, subnormals, overflow,
infinities, NaNs) and seeded random values. pth2swt convert --dtype must reproduce every one
(CastTests in Tests/CheckpointTests).
"""
import json
import struct

import torch

from refutil import FIXTURES


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def main():
    g = torch.Generator().manual_seed(20261123)
    edge = [
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e6, -1e6, 6.1e-5, 5.96e-8, 2.98e-8,
        1e-10, float("inf"), float("-inf"), float("nan"), 3.14159265, 1.00048828125, 1.0009765625,
        1.001953125, 0.1, 1.0 / 3.0, 3.4e38, 1.17549435e-38, 1e-45,
    ]
    # Exact ties for float16 (11-bit significand) and bfloat16 (8-bit): 1 + k·2^-11 and 1 + k·2^-8 ± half ulp.
    ties = [1 + k * 2.0**-11 for k in range(1, 8)] + [1 + (2 * k + 1) * 2.0**-9 for k in range(4)]
    rand = (torch.randn(200, generator=g) * torch.logspace(-8, 8, 200)).tolist()
    f32 = torch.tensor(edge + ties + rand, dtype=torch.float32)
    # Negative NaN too: torch keeps the sign for half, not for bfloat16.
    f32 = torch.cat([f32, -torch.tensor([float("nan")])])
    f64 = torch.tensor(edge + ties + rand, dtype=torch.float64) * (1 + 2.0**-30)

    def bits16(t):
        return [f"{v & 0xFFFF:04x}" for v in t.view(torch.int16).tolist()]

    out = {
        "generator": "Tests/Reference/make_casts.py",
        "torch": torch.__version__,
        "float32": {
            "input": [f"{v & 0xFFFFFFFF:08x}" for v in f32.view(torch.int32).tolist()],
            "float16": bits16(f32.half()),
            "bfloat16": bits16(f32.bfloat16()),
        },
        "float64": {
            "input": [f"{v & 0xFFFFFFFFFFFFFFFF:016x}" for v in f64.view(torch.int64).tolist()],
            "float16": bits16(f64.half()),
            "bfloat16": bits16(f64.bfloat16()),
            "float32": [f"{v & 0xFFFFFFFF:08x}" for v in f64.float().view(torch.int32).tolist()],
        },
    }
    path = FIXTURES / "casts.expected.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}: {len(out['float32']['input'])} float32 and {len(out['float64']['input'])} float64 inputs")


if __name__ == "__main__":
    main()
