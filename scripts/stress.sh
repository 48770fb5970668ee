#!/usr/bin/env bash
# Runs every hostile fixture through `pth2swt inspect` and `pth2swt convert`, N times each, and fails on
# any exit by signal (a crash), any hang, any conversion that succeeds, or any file left behind (an
# output or a .partial temporary). The fuzzers call the readers in process; this runs the whole tool,
# threads and exit path included, which is where a SIGSEGV at exit once lived.
#
#   bash scripts/stress.sh [--runs N] [--timeout SECONDS] [--release] [--binary PATH]
#
#   --runs N        runs per file and command (default 200; CI uses a few)
#   --timeout S     a run that takes longer is a hang (default 60)
#   --release       build and use the release binary (default: the debug build `swift test` shares)
#   --binary PATH   use this binary, build nothing
#
# Files: Tests/Fixtures/hostile/* (the corpus, make_hostile.py), Tests/Fixtures/hostile_*.pth, the
# fuzzers' kept findings (Tests/Fixtures/fuzz/*/*), and a zip whose first data entry fails its CRC
# (made here from a fixture: the error path that raced a background thread).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=200
timeout=60
config=debug
binary=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --release) config=release; shift ;;
    --binary) binary="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stress: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "$binary" ]]; then
  swift build -c "$config" --product pth2swt >/dev/null
  binary="$(swift build -c "$config" --show-bin-path)/pth2swt"
fi
[[ -x "$binary" ]] || { echo "stress: no executable at $binary" >&2; exit 2; }

scratch=$(mktemp -d /tmp/pth2swt-stress.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
inputs="$scratch/inputs"
work="$scratch/work"
mkdir -p "$inputs" "$work"

files=()
for f in Tests/Fixtures/hostile/* Tests/Fixtures/hostile_*.pth Tests/Fixtures/fuzz/*/*; do
  [[ -f "$f" && "$f" != *.json && "$f" != *.md ]] && files+=("$PWD/$f")
done
# A zip whose first data entry fails its CRC-32: the error is thrown while the source is being hashed.
python3 - "$PWD/Tests/Fixtures/zip_dtypes.pth" "$inputs/bad_crc_first_entry.pth" <<'EOF'
import struct, sys, zipfile
data = bytearray(open(sys.argv[1], "rb").read())
entry = next(i for i in zipfile.ZipFile(sys.argv[1]).infolist() if "/data/" in i.filename and i.file_size > 0)
n, e = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
data[entry.header_offset + 30 + n + e] ^= 0xFF
open(sys.argv[2], "wb").write(data)
EOF
files+=("$inputs/bad_crc_first_entry.pth")

failures=0
total=0
start=$(date +%s)
report() { echo "stress: FAIL $*" >&2; failures=$((failures + 1)); }

for f in "${files[@]}"; do
  name=$(basename "$f")
  for ((i = 1; i <= runs; i++)); do
    for command in inspect convert; do
      total=$((total + 1))
      if [[ $command == inspect ]]; then args=(inspect "$f"); else args=(convert -q "$f" "$work/out.swt"); fi
      set +e
      (cd "$work" && timeout --signal=KILL "$timeout" "$binary" "${args[@]}" >/dev/null 2>"$scratch/stderr")
      status=$?
      set -e
      if [[ $status -eq 137 ]]; then report "$name: $command hung (killed after ${timeout} s, run $i)"
      elif [[ $status -ge 128 ]]; then report "$name: $command ended by signal $((status - 128)) (run $i): $(head -c 300 "$scratch/stderr")"
      elif [[ $command == convert && $status -ne 1 ]]; then report "$name: convert exited $status, expected the error exit 1 (run $i)"
      elif [[ $command == inspect && $status -gt 1 ]]; then report "$name: inspect exited $status (run $i)"
      fi
      left=$(ls -A "$work")
      if [[ -n "$left" ]]; then
        report "$name: $command left files behind (run $i): $left"
        rm -rf "${work:?}"/* "$work"/.[!.]* 2>/dev/null || true
      fi
      if [[ $failures -ge 20 ]]; then echo "stress: stopping after 20 failures" >&2; break 3; fi
    done
  done
done

seconds=$(( $(date +%s) - start ))
echo "stress: ${#files[@]} files × $runs runs × inspect+convert = $total runs in ${seconds} s ($binary)"
echo "stress: $((total - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
