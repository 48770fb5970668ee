#!/usr/bin/env -S /usr/bin/python3
"""Plain pickles of one object at every protocol 0-5, for the pickle machine's opcode coverage.

Run from the repository root: /usr/bin/python3 Tests/Reference/make_pickles.py
Writes Tests/Fixtures/pickles/proto{0..5}.pkl and pickles.expected.json (the object in the tagged
encoding of Tests/Fixtures/README.md). Protocols 0 and 1 exercise the text opcodes (INT, LONG, FLOAT,
STRING/UNICODE, GET/PUT, DICT, LIST, TUPLE), 4 and 5 FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL.
"""
import pickle
import pickletools
import sys
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refutil  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "Tests" / "Fixtures" / "pickles"

shared = [7, "shared"]
OBJ = {
    "ints": [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**63 - 1, -2**63, 2**70, -2**70, 10**30],
    "floats": [0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, 0.1],
    "strings": ["", "ascii", "héllo wörld", "tab\tnew\nline 'q' \"dq\" \\", "日本語", "\U0001F600"],
    "bytes": [b"", b"\x00\xff\x7f", b"abc" * 100],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "nested": {"a": {"b": {"c": [None, True, False]}}},
    "ordered": OrderedDict([("z", 1), ("a", 2)]),
    "memo": [shared, shared],
    1: "int key",
    (1, "t"): "tuple key",
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for proto in range(6):
        data = pickle.dumps(OBJ, protocol=proto)
        assert pickle.loads(data) == OBJ
        (OUT / f"proto{proto}.pkl").write_bytes(data)
        ops = {op.name for op, _, _ in pickletools.genops(data)}
        print(f"proto{proto}.pkl: {len(data)} bytes, {len(ops)} distinct opcodes: {' '.join(sorted(ops))}")
    refutil.write_json(OUT / "pickles.expected.json", {
        "generator": "Tests/Reference/make_pickles.py",
        "python_version": sys.version.split()[0],
        "files": [f"proto{p}.pkl" for p in range(6)],
        "object": refutil.encode_object(OBJ),
    })


if __name__ == "__main__":
    main()
