#!/usr/bin/env bash
# Builds and runs one C harness of scripts/harness/ against the release build's kernel objects:
#
#   swift build -c release && bash scripts/harness/run.sh NAME [ARGS…]
#
# NAME.c is compiled with clang -O2 (the flags SwiftPM gives the kernels: -fno-omit-frame-pointer) and
# linked with .build/release/CKernels.build/*.c.o for the sources that exist now. The harnesses time
# kernels in isolation, the way the "C harness" figures in docs/speed.md were measured; they are benchmarks, so
# run them on a quiet machine and compare modes within one run, never across runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${1:?usage: run.sh NAME [ARGS…] (scripts/harness/NAME.c)}
shift
src=scripts/harness/$name.c
[ -f "$src" ] || { echo "no $src" >&2; exit 2; }
objects=()
for c in Sources/CKernels/*.c; do
    o=.build/release/CKernels.build/$(basename "$c").o
    [ -f "$o" ] || { echo "missing $o: run swift build -c release first" >&2; exit 2; }
    objects+=("$o")
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -O2 -fno-omit-frame-pointer -ISources/CKernels/include "$src" "${objects[@]}" -lpthread -lm -o "$out/$name"
lscpu | grep -m1 'Model name' || true
"$out/$name" "$@"
