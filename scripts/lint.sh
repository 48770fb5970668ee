#!/usr/bin/env bash
# swift format lint --strict over every Swift file of the package, with the checked-in .swift-format.
# Tests/Consumer is left out: its two programs are the README's examples, kept byte for byte as the
# README shows them (scripts/consumer.sh checks that), aligned comments included.
#
#   bash scripts/lint.sh            # report, and exit 1 on any finding
#   bash scripts/lint.sh --fix      # rewrite the files in place instead
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.swift' | grep -v '^Tests/Consumer/')
if [[ "${1:-}" == "--fix" ]]; then
  swift format format -i "${files[@]}"
else
  swift format lint --strict "${files[@]}"
  echo "lint: ${#files[@]} Swift files follow .swift-format"
fi
