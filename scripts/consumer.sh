#!/usr/bin/env bash
# The consumer check: pth2swt used as another package uses it, by URL and version.
#
# 1. The README's "In Swift" block and Tests/Consumer/Sources/Example/main.swift must be the same text,
#    and so must its "Fine-tuning in Swift" block and Tests/Consumer/Sources/FineTune/main.swift.
# 2. This repository's HEAD is cloned to a temporary folder and tagged with the tool's version
#    (Converter/PTH2SWT.swift's Version.string); Tests/Consumer depends on that clone through
#    `.package(url: "file://…", from: "0.3.0")`, so SwiftPM treats it as a versioned remote dependency
#    (which refuses unsafeFlags in any product's target).
# 3. The example builds with -c release and runs on Tests/Consumer/Fixtures/resnet18-patterned.pth and
#    a fixture image; its printed class must be torch's top-1 for the same file and image
#    (resnet18-patterned.expected.json, from Tests/Reference/make_consumer_fixture.py).
# 4. The fine-tuning example runs two epochs on Fashion-MNIST (Debian's dataset-fashion-mnist) from the
#    same weights; its model file must then classify with `pth2swt predict` and no --arch (its model
#    card). Without the data set this step is skipped, and says so.
#
#   bash scripts/consumer.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The ```swift block after the README heading $1 against the file $2.
same_as_readme() {
  local block
  block=$(awk -v h="^## $1\$" '$0~h{s=1;next} s&&/^## /{exit} s&&/^```swift/{b=1;next} b&&/^```/{exit} b{print}' README.md)
  if ! diff -u <(printf '%s\n' "$block") "$2"; then
    echo "consumer: the README's \"$1\" example and $2 differ" >&2
    exit 1
  fi
}
same_as_readme "In Swift" Tests/Consumer/Sources/Example/main.swift
same_as_readme "Fine-tuning in Swift" Tests/Consumer/Sources/FineTune/main.swift

version=$(sed -n 's/.*static let string = "\(.*\)".*/\1/p' Converter/PTH2SWT.swift)
[[ -n "$version" ]] || { echo "consumer: no Version.string in Converter/PTH2SWT.swift" >&2; exit 1; }
work=$(mktemp -d /tmp/pth2swt-consumer.XXXXXX)
trap 'rm -rf "$work"' EXIT
# SwiftPM's lock files for the consumer's build go inside $work too, so nothing is left in /tmp.
mkdir -p "$work/tmp"
export TMPDIR="$work/tmp"
if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
  echo "consumer: note: the clone is HEAD ($(git rev-parse --short HEAD)); uncommitted changes are not in it"
fi
git clone --quiet --no-hardlinks "$root" "$work/pth2swt"
git -C "$work/pth2swt" tag -f "$version" >/dev/null
cp -R Tests/Consumer "$work/consumer"
rm -rf "$work/consumer/.build"

cd "$work/consumer"
export PTH2SWT_URL="file://$work/pth2swt"
# A machine without Open MPI, as far as this build can tell: pkg-config sees every package but Open
# MPI's, and mpi.h is only on the include path that ompi-c.pc gives. No library product may need it.
pcdir="$work/pkgconfig-without-mpi"
mkdir -p "$pcdir"
for dir in $(pkg-config --variable pc_path pkg-config | tr ':' ' '); do
  for pc in "$dir"/*.pc; do
    [[ -e "$pc" ]] || continue
    case "$(basename "$pc")" in ompi* | mpi* | orte* | opal*) continue ;; esac
    ln -sf "$pc" "$pcdir/"
  done
done
export PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_PATH=""
if pkg-config --exists ompi-c; then
  echo "consumer: could not hide Open MPI from pkg-config" >&2
  exit 1
fi
echo "consumer: building with Open MPI hidden (pkg-config knows no ompi-c)"
echo "consumer: building Tests/Consumer against $PTH2SWT_URL at tag $version (release)"
swift build -c release 2>&1 | tail -n 3
# No library product links OpenBLAS: a program built on them needs neither its headers nor its library.
for program in Example FineTune; do
  if ldd "$(swift build -c release --show-bin-path)/$program" | grep -qiE 'openblas|libmpi'; then
    echo "consumer: $program links OpenBLAS or MPI, which only the pth2swt tool may" >&2
    exit 1
  fi
done
echo "consumer: Example and FineTune link neither OpenBLAS nor MPI"
output=$("$(swift build -c release --show-bin-path)/Example" \
  "$root/Tests/Consumer/Fixtures/resnet18-patterned.pth" "$root/Tests/Fixtures/images/geom_300x200.jpg")
printf '%s\n' "$output" | sed 's/^/consumer: example: /'

expected=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["top5_indices"][0])' \
  "$root/Tests/Consumer/Fixtures/resnet18-patterned.expected.json")
got=$(printf '%s\n' "$output" | awk 'NR==3{print $1}')
if [[ "$got" != "$expected" ]]; then
  echo "consumer: the example's top-1 class is '$got'; torch's is $expected (resnet18-patterned.expected.json)" >&2
  exit 1
fi
echo "consumer: ok: built by version, ran the README's example, top-1 class $got as torch 1.13 gives"

fashion=/usr/share/datasets/fashion-mnist
if [[ ! -f "$fashion/t10k-labels-idx1-ubyte.gz" ]]; then
  echo "consumer: skipped the fine-tuning example: no Fashion-MNIST at $fashion (bash scripts/bootstrap.sh installs it)"
  exit 0
fi
tuned=$("$(swift build -c release --show-bin-path)/FineTune" \
  "$root/Tests/Consumer/Fixtures/resnet18-patterned.pth" "$fashion" "$work/ft.swt")
printf '%s\n' "$tuned" | sed 's/^/consumer: fine-tune example: /'
[[ "$(printf '%s\n' "$tuned" | grep -c '^epoch [12]: train loss ')" == 2 ]] \
  || { echo "consumer: the fine-tuning example did not report two epochs" >&2; exit 1; }
cd "$root"
swift build -c release --product pth2swt >/dev/null
predicted=$("$(swift build -c release --show-bin-path)/pth2swt" predict --weights "$work/ft.swt" --top 1 \
  Tests/Fixtures/images/geom_300x200.jpg)
printf '%s\n' "$predicted" | sed 's/^/consumer: predict on its model: /'
printf '%s\n' "$predicted" | grep -Eq '1\. (T-shirt/top|Trouser) \([01]\)' \
  || { echo "consumer: predict did not read the example's model card (class names T-shirt/top, Trouser)" >&2; exit 1; }
echo "consumer: ok: the fine-tuning example trained two epochs by version, and predict read its model card"
