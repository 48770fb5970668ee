#!/usr/bin/env bash
# The kernel tests and the inference goldens again in an optimised build (-c release, testable). The C
# kernels inline their Hardswish and SiLU epilogues only when optimised (__OPTIMIZE__; see
# Sources/CKernels/common.h), so `swift test`'s debug build alone would leave that code untested.
#
#   bash scripts/release_tests.sh    # about two minutes to build on 2 cores, seconds to run
set -euo pipefail
cd "$(dirname "$0")/.."

SUITES='KernelTests|NHWCTests|GroupedTests|ConvPoolTests|InvertedResidualTests|PointwiseTests|BackwardTests|FamilyGoldenTests|GoldenLogitTests|NetworkDescriptionTests|LayerGradientTests'
start=$(date +%s)
swift build -c release --build-tests -Xswiftc -enable-testing 2>&1 | tail -n 1
swift test -c release -Xswiftc -enable-testing --skip-build --filter "$SUITES"
echo "release_tests.sh: passed in $(( $(date +%s) - start )) s"
