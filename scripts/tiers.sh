#!/usr/bin/env bash
# Runs every golden again in each instruction-set tier this CPU supports below the best one: logits
# (small families, ResNet, end to end), gradients, optimizer steps and 20-step training parity.
# Plain `swift test` runs the best tier, and the kernel tests already compare every supported tier,
# the portable one included, against their naive twins in one process; this adds the whole-network
# goldens under PTH2SWT_ISA=avx2 and PTH2SWT_ISA=portable (whichever are below the best).
#
# LargeGoldenTests (present only where make_golden_large.py has run) are held to ResNet-34 and -50 in the
# lower tiers through PTH2SWT_LARGE_GOLDEN; all 19 networks take about five minutes in the best tier.
#
#   bash scripts/tiers.sh            # after `swift test` (reuses its build)
set -euo pipefail
cd "$(dirname "$0")/.."

SUITES='FamilyGoldenTests|GoldenLogitTests|EndToEndTests|LargeGoldenTests|BackboneGoldenTests|FamilyTrainingTests|FrozenGoldenTests|LayerGradientTests|UnitGoldenTests|BackwardTests'

swift build --build-tests
tiers=$(.build/debug/pth2swt bench tiers --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
names = [t["name"] for t in d["tiers"] if t["supported"]]
print(d["cpu"] or "unknown CPU", file=sys.stderr)
print(" ".join(names[1:]))')
echo "tiers.sh: best tier $(.build/debug/pth2swt bench tiers --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["running"])') ran in swift test; now: ${tiers:-none}"
for tier in $tiers; do
    echo "tiers.sh: PTH2SWT_ISA=$tier"
    start=$(date +%s)
    PTH2SWT_ISA=$tier PTH2SWT_LARGE_GOLDEN=resnet34,resnet50 swift test --skip-build --filter "$SUITES"
    echo "tiers.sh: $tier passed in $(( $(date +%s) - start )) s"
done
