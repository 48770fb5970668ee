#!/usr/bin/env bash
# SHA-256 of one file, four ways, in one run, best of 7 each: CChecksum's SHA-NI kernel, its portable
# twin, OpenSSL's libcrypto (EVP) and apple/swift-crypto (BoringSSL). CChecksum keeps its own
# implementation: as fast as both libraries, no dependency, no global state to tear down at exit.
#
#   bash scripts/bench_sha256.sh [FILE]     (default ../shared/weights/resnet18-zip.pth, 46.8 MB)
#
# Needs clang; the OpenSSL row needs libssl-dev and the swift-crypto row the offline swift-crypto
# package (both skipped, said so, when missing). Builds in a temporary folder; commits nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
file=${1:-../shared/weights/resnet18-zip.pth}
[[ -f "$file" ]] || { echo "bench_sha256: no file $file" >&2; exit 2; }
file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
work=$(mktemp -d /tmp/pth2swt-sha.XXXXXX)
trap 'rm -rf "$work"' EXIT

lscpu | grep -m1 'Model name' | sed 's/^Model name: */cpu: /'
echo "file: $file ($(stat -c %s "$file") bytes)"

cat > "$work/ours.c" <<'EOF'
#include "cchecksum.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char *x = malloc(n); if (fread(x, 1, n, f) != (size_t)n) return 1;
    for (int portable = 0; portable < 2; portable++) {
        pth2swt_sha256_force_portable(portable);
        if (!portable && !pth2swt_sha256_accelerated()) { printf("CChecksum SHA-NI   not on this CPU\n"); continue; }
        double best = 1e9; uint8_t d[32];
        for (int r = 0; r < 7; r++) { double t0 = now(); pth2swt_sha256(x, n, d); double s = now() - t0; if (s < best) best = s; }
        printf("%-18s %7.1f ms %6.0f MB/s  %02x%02x%02x%02x…\n", portable ? "CChecksum portable" : "CChecksum SHA-NI",
               best * 1e3, n / best / 1e6, d[0], d[1], d[2], d[3]);
    }
    return 0;
}
EOF
clang -O2 -I"$root/Sources/CChecksum/include" "$work/ours.c" "$root/Sources/CChecksum/sha256.c" -o "$work/ours"
"$work/ours" "$file"

if [[ -f /usr/include/openssl/evp.h ]]; then
  cat > "$work/openssl.c" <<'EOF'
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb"); fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
    unsigned char *x = malloc(n); if (fread(x, 1, n, f) != (size_t)n) return 1;
    double best = 1e9; unsigned char d[32]; unsigned int l;
    for (int r = 0; r < 7; r++) { double t0 = now(); EVP_Digest(x, n, d, &l, EVP_sha256(), NULL); double s = now() - t0; if (s < best) best = s; }
    printf("%-18s %7.1f ms %6.0f MB/s  %02x%02x%02x%02x…\n", "OpenSSL libcrypto", best * 1e3, n / best / 1e6, d[0], d[1], d[2], d[3]);
    return 0;
}
EOF
  clang -O2 "$work/openssl.c" -lcrypto -o "$work/openssl" && "$work/openssl" "$file"
else
  echo "OpenSSL libcrypto  skipped: no libssl-dev (apt-get install libssl-dev)"
fi

mkdir -p "$work/sc/Sources/sc"
cat > "$work/sc/Package.swift" <<'EOF'
// swift-tools-version: 6.0
import PackageDescription
let package = Package(name: "sc",
    dependencies: [.package(url: "https://github.com/apple/swift-crypto", from: "3.12.3")],
    targets: [.executableTarget(name: "sc", dependencies: [.product(name: "Crypto", package: "swift-crypto")])])
EOF
cat > "$work/sc/Sources/sc/main.swift" <<'EOF'
import Crypto
import Foundation
let data = try Data(contentsOf: URL(fileURLWithPath: CommandLine.arguments[1]))
var best = 1e9
var digest = [UInt8]()
for _ in 0..<7 {
    let t0 = DispatchTime.now().uptimeNanoseconds
    digest = Array(SHA256.hash(data: data))
    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
}
let head = digest.prefix(4).map { String(format: "%02x", $0) }.joined()
let name = "swift-crypto".padding(toLength: 18, withPad: " ", startingAt: 0)
print(name + String(format: " %7.1f ms %6.0f MB/s  ", best * 1e3, Double(data.count) / best / 1e6) + head + "…")
EOF
start=$(date +%s)
if (cd "$work/sc" && swift build -c release >/dev/null 2>&1); then
  "$work/sc/.build/release/sc" "$file"
  echo "(swift-crypto's release build took $(( $(date +%s) - start )) s)"
else
  echo "swift-crypto       skipped: the package did not resolve or build here"
fi
