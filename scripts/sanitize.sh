#!/usr/bin/env bash
# Runs the whole test suite under a sanitizer, in its own build folder (the normal build is untouched).
#
#   bash scripts/sanitize.sh address [swift test options…]   AddressSanitizer + LeakSanitizer (CI runs it)
#   bash scripts/sanitize.sh thread  [swift test options…]   ThreadSanitizer (by hand: ~25 min on 2 cores)
#
# The ToolTests run the sanitized pth2swt built beside the tests, so its threads, signals and exit
# paths are checked too. Leaks that third-party libraries make once (XCTest, libcurl, Foundation's
# Process) are suppressed by scripts/lsan.supp; nothing of ours is.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
case "$kind" in
  address) scratch=.build-asan ;;
  thread) scratch=.build-tsan ;;
  *) echo "usage: bash scripts/sanitize.sh address|thread [swift test options]" >&2; exit 2 ;;
esac
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export TSAN_OPTIONS="halt_on_error=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
start=$(date +%s)
swift test --sanitize="$kind" --scratch-path "$scratch" "$@"
echo "sanitize: $kind: the suite passed in $(( $(date +%s) - start )) s"
