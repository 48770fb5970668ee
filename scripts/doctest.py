#!/usr/bin/env python3
"""Runs the shell examples in README.md and docs/*.md against a pth2swt binary and checks their output.

    python3 scripts/doctest.py [--binary PATH] [--lines N] [--timeout S] [--show] [--keep] [FILE.md ...]

Standard library only. Conventions for the examples in the Markdown files:

* Only fenced blocks whose info string is `console` are run:

      ```console
      $ pth2swt inspect Tests/Fixtures/tar_small.pth
      Tests/Fixtures/tar_small.pth: tar format, 20,480 bytes, pickle protocol 2, little-endian
      ```

  Blocks marked `text`, `sh`, `bash` or anything else (or nothing) are illustrations: their
  `$ pth2swt` lines are listed as skipped, never run. Use them for commands that need the network,
  take minutes, or show output that differs from machine to machine.
* In a `console` block, a line starting with `$ pth2swt ` is a command; a line ending in a backslash
  continues it on the next line. The lines after it, up to the next line starting with `$ ` or the end
  of the block, are its expected output. Other `$ ` lines (`$ bash scripts/...`) are not run.
* The command runs under bash in a scratch directory, with the binary as `pth2swt` first on the PATH.
  The scratch directory holds a copy of the repository's `Tests/` (so `Tests/...` paths work and
  nothing an example writes reaches the repository), its own `Weights/` with links to the files in the
  repository's, and `../shared` is the repository's `../shared` when that exists. Nothing else of the
  repository is there. Each Markdown file gets a fresh scratch directory, and its examples run in
  order, so an example may read what an earlier one in the same file wrote. Write outputs to relative
  paths.
* What is compared: the first N non-blank lines of the expected output (N = --lines, default 3; 0 means
  all), ignoring trailing whitespace, against the start of what the command printed, stdout then
  stderr. Output past what the example shows is not checked.
  - A line that is only `…` or `...` stands for any number of lines (none included).
  - `…` inside a line stands for any text within that line.
  - Numbers followed by a unit of time or rate (`0.095 s`, `12 ms`, `59.31 img/s`, `GB/s`, `GFLOP/s`)
    are masked on both sides, so timings may differ from run to run.
  - An example with no expected output must exit with status 0.
* An example that needs a file that is absent (a path in its arguments that does not exist, such as
  ../shared/weights/... or Weights/mobilenet_v2-b0353104.pth before scripts/fetch_mobilenet_v2.sh) is
  skipped with the reason printed. Outputs (`convert`'s second argument, `--out`, `--dir`, `--out-dir`) are not
  inputs. An example whose expected output is an error saying that the path is absent ("No such file
  or directory") runs anyway.

Prints one line per example (ok, skip: reason, FAIL with the difference) and at the end
`N passed, N failed, N skipped`; exits 1 when any example failed.
"""

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Flags that take no value, so the word after them is a positional argument.
BOOLEAN_FLAGS = {
    "--json", "--all-tensors", "--stub-classes", "-q", "--quiet", "--nesterov", "--amsgrad",
    "--no-decay-bn-bias", "--augment", "--no-augment", "--direct", "--tune", "--unfused", "--layers",
    "--profile", "--force", "--list", "--no-verify-crc", "--hash", "-h", "--help", "--version",
}
OUTPUT_FLAGS = {"--out", "--dir", "--out-dir"}
# Flags whose value holds a slash but names no file.
NOT_PATH_FLAGS = {"--shard"}
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "<"}
FILE_SUFFIXES = (".pth", ".pt", ".swt", ".safetensors", ".jpg", ".jpeg", ".png", ".npy", ".bin", ".tar")

TIMING = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?=\s?(?:s|ms|µs|us|ns|min|img/s|GB/s|MB/s|GFLOP/s)(?![\w/]))")
ELISION_LINES = {"…", "..."}


class Example:
    def __init__(self, path, line, command, expected, runnable, info):
        self.path, self.line, self.command, self.expected = path, line, command, expected
        self.runnable, self.info = runnable, info

    def label(self):
        first = self.command.split("\n")[0]
        return f"{os.path.relpath(self.path, REPO)}:{self.line}: {first[:90]}"


def parse(path):
    """Every `$ pth2swt` example in the fenced blocks of one Markdown file."""
    examples = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(```+)\s*([^\s`]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2)
        i += 1
        block = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            block.append((i + 1, lines[i]))
            i += 1
        i += 1
        j = 0
        while j < len(block):
            number, text = block[j]
            if not text.startswith("$ pth2swt "):
                j += 1
                continue
            command = text[2:]
            while command.endswith("\\") and j + 1 < len(block):
                j += 1
                command = command + "\n" + block[j][1]
            j += 1
            expected = []
            while j < len(block) and not block[j][1].startswith("$ "):
                expected.append(block[j][1])
                j += 1
            examples.append(Example(path, number, command, expected, info == "console", info or "untagged"))
    return examples


def words(command):
    """The command's words up to the first shell operator."""
    try:
        parts = shlex.split(command.replace("\\\n", " "), comments=True)
    except ValueError:
        return []
    out = []
    for p in parts:
        if p in SHELL_OPERATORS:
            break
        out.append(p)
    return out


def inputs(command):
    """Path-like arguments that the command reads (not the ones it writes)."""
    argv = words(command)[1:]
    positionals, candidates = [], []
    k = 0
    while k < len(argv):
        w = argv[k]
        if w.startswith("-") and len(w) > 1:
            name, _, value = w.partition("=")
            if name in BOOLEAN_FLAGS:
                k += 1
                continue
            if not value:
                k += 1
                value = argv[k] if k < len(argv) else ""
            if name not in OUTPUT_FLAGS and name not in NOT_PATH_FLAGS:
                candidates.append(value)
        else:
            positionals.append(w)
        k += 1
    outputs = set()
    # convert IN OUT; with --out-dir every positional is an input.
    if positionals[:1] == ["convert"] and len(positionals) > 2 and "--out-dir" not in argv:
        outputs.add(2)
    if positionals[:2] == ["bench", "convert"] and len(positionals) > 3:
        outputs.add(3)
    candidates += [p for n, p in enumerate(positionals) if n not in outputs]
    return [c for c in candidates if "://" not in c and ("/" in c or c.lower().endswith(FILE_SUFFIXES))]


def normalise(line):
    return TIMING.sub("#", line.rstrip())


def line_matches(want, got):
    pattern = "".join(".*" if part == "…" else re.escape(part) for part in re.split(r"(…)", want))
    return re.fullmatch(pattern, got) is not None


def prefix_matches(pattern, actual):
    """Whether the pattern lines match the start of the actual lines (elision lines match any run)."""
    def match(i, j):
        if i == len(pattern):
            return True
        if pattern[i].strip() in ELISION_LINES:
            return any(match(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and line_matches(pattern[i], actual[j]) and match(i + 1, j + 1)
    return match(0, 0)


def checked_lines(expected, limit):
    """The expected lines that are compared: the first `limit` non-blank ones, elisions among them kept."""
    kept, concrete = [], 0
    for line in expected:
        if not line.strip():
            continue
        if limit and concrete == limit:
            break
        kept.append(normalise(line))
        if line.strip() not in ELISION_LINES:
            concrete += 1
    while kept and kept[-1].strip() in ELISION_LINES:
        kept.pop()
    return kept


def make_scratch(root):
    """A working directory that looks like the repository's root to the examples but shares nothing
    they could write into: a copy of Tests/ (golden-local, which can be gigabytes, as a link), Weights/
    as links to the repository's files (writers rename into place, which replaces the link), and
    ../shared as a link to the repository's ../shared when there is one."""
    work = os.path.join(root, "main")
    os.makedirs(work)
    big = os.path.join(REPO, "Tests", "Fixtures", "golden-local")
    shutil.copytree(os.path.join(REPO, "Tests"), os.path.join(work, "Tests"), symlinks=True,
                    ignore=lambda d, names: [n for n in names if os.path.join(d, n) == big or n == ".build"])
    if os.path.isdir(big):
        os.symlink(big, os.path.join(work, "Tests", "Fixtures", "golden-local"))
    weights = os.path.join(work, "Weights")
    os.makedirs(weights)
    source = os.path.join(REPO, "Weights")
    if os.path.isdir(source):
        for name in os.listdir(source):
            os.symlink(os.path.join(source, name), os.path.join(weights, name))
    shared = os.path.realpath(os.path.join(REPO, "..", "shared"))
    if os.path.isdir(shared):
        os.symlink(shared, os.path.join(root, "shared"))
    return work


def run(example, work, env, timeout):
    started = time.monotonic()
    try:
        r = subprocess.run(["bash", "-c", example.command], cwd=work, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s", time.monotonic() - started
    text = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    return r.returncode, text, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description="Run the `$ pth2swt` examples in README.md and docs/*.md.")
    parser.add_argument("files", nargs="*", help="Markdown files (default: README.md and docs/*.md)")
    parser.add_argument("--binary", default=".build/debug/pth2swt", help="the pth2swt to run (default %(default)s)")
    parser.add_argument("--lines", type=int, default=3, help="expected lines compared per example; 0: all (default 3)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one example may take (default 600)")
    parser.add_argument("--show", action="store_true", help="also print what each example printed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories and print where")
    args = parser.parse_args()

    binary = os.path.abspath(args.binary if os.path.isabs(args.binary) else os.path.join(os.getcwd(), args.binary))
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        print(f"doctest: no executable at {args.binary} (build it first: swift build)")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    files = args.files or [os.path.join(REPO, "README.md")] + sorted(
        os.path.join(REPO, "docs", f) for f in os.listdir(os.path.join(REPO, "docs")) if f.endswith(".md"))

    passed = failed = skipped = 0
    started = time.monotonic()
    for path in files:
        examples = parse(path)
        if not examples:
            continue
        root = tempfile.mkdtemp(prefix="pth2swt-doctest.")
        work = make_scratch(root)
        bindir = os.path.join(root, "bin")
        os.makedirs(bindir)
        os.symlink(binary, os.path.join(bindir, "pth2swt"))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        def shows_absent(shown, path):
            """True when the example's point is that `path` is missing: its error names it as absent."""
            first = shown.split("\n", 1)[0]
            return first.startswith("error:") and path in first and "No such file or directory" in first

        try:
            for ex in examples:
                if not ex.runnable:
                    skipped += 1
                    print(f"skip  {ex.label()}  (```{ex.info} block: not run)")
                    continue
                shown = "\n".join(ex.expected)
                missing = [p for p in inputs(ex.command)
                           if not os.path.exists(os.path.join(work, p)) and not shows_absent(shown, p)]
                if missing:
                    skipped += 1
                    print(f"skip  {ex.label()}  (needs {missing[0]}, which is absent)")
                    continue
                status, text, seconds = run(ex, work, env, args.timeout)
                got = [normalise(l) for l in text.split("\n") if l.strip()]
                want = checked_lines(ex.expected, args.lines)
                if status is None:
                    ok, why = False, text
                elif not want:
                    ok, why = status == 0, f"exit status {status}, expected 0"
                else:
                    ok, why = prefix_matches(want, got), "output differs"
                if ok:
                    passed += 1
                    print(f"ok    {ex.label()}  ({seconds:.1f} s)")
                else:
                    failed += 1
                    print(f"FAIL  {ex.label()}  ({why})")
                    shown_got = got[:max(len(want) + 3, 5)]
                    for d in difflib.unified_diff(want, shown_got, "expected", "got", lineterm="", n=len(want) + 3):
                        print("      " + (d if len(d) <= 240 else d[:240] + " …"))
                if args.show:
                    for l in text.rstrip("\n").split("\n"):
                        print("    | " + l)
        finally:
            if args.keep:
                print(f"doctest: kept {work}")
            else:
                shutil.rmtree(root, ignore_errors=True)
    print(f"doctest: {len(files)} files in {time.monotonic() - started:.0f} s with {binary}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
