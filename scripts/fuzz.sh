#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Tests/Fuzz/) and runs them one after another, each under `nice -n 19`.
#
#   bash scripts/fuzz.sh [tar|legacy|zip|pickle|swt|zip-stub|pickle-stub|all] [--runs N | --time SECONDS] [-- LIBFUZZER_FLAGS…]
#   (zip-stub and pickle-stub read with LoadOptions.stubClasses: every unknown global becomes a record)
#   bash scripts/fuzz.sh report            # executions, time and findings of every run so far
#
# Default: all harnesses, --time 60. Seeds come from Tests/Fixtures (and the hostile corpus); the
# corpus a harness grows, its findings (crash-*, leak-*, timeout-*, oom-*) and a log of each run are
# kept in .build-fuzz/work/HARNESS/ (gitignored), so later runs continue where earlier ones stopped.
# A finding is reproduced with `.build-fuzz/release/fuzz-HARNESS FILE`. libFuzzer's -timeout is wall-clock
# time and the fuzzer runs at nice 19, so on a busy machine a starved unit can pass it: replay a timeout
# (the replay prints "Executed FILE in N ms") before believing it.
set -euo pipefail
cd "$(dirname "$0")/.."

harnesses=(tar legacy zip pickle swt zip-stub pickle-stub)
which=all
limit=(-max_total_time=60)
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        tar|legacy|zip|pickle|swt|zip-stub|pickle-stub|all|report) which=$1 ;;
        --runs) limit=(-runs="$2"); shift ;;
        --time) limit=(-max_total_time="$2"); shift ;;
        --) shift; extra=("$@"); break ;;
        *) echo "usage: $0 [tar|legacy|zip|pickle|swt|zip-stub|pickle-stub|all|report] [--runs N | --time S] [-- libFuzzer flags]" >&2; exit 2 ;;
    esac
    shift
done

work=.build-fuzz/work
history=$work/history.tsv

report() {
    [ -f "$history" ] || { echo "no fuzzing runs yet"; return; }
    echo "harness   runs  executions      seconds  exec/s  coverage  features  corpus  findings"
    awk -F'\t' '
        { runs[$2]++; ex[$2]+=$3; s[$2]+=$4; cov[$2]=$6; ft[$2]=$7; corp[$2]=$8; find[$2]+=$9 }
        END { for (h in runs) printf "%-8s %5d %11d %12d %7d %9s %9s %7s %9d\n", h, runs[h], ex[h], s[h], (s[h] ? ex[h]/s[h] : 0), cov[h], ft[h], corp[h], find[h] }
    ' "$history" | sort
}
if [ "$which" = report ]; then report; exit 0; fi
[ "$which" = all ] || harnesses=("$which")

# Instrumented release build of the harnesses only; the normal build (.build) is untouched.
for h in "${harnesses[@]}"; do
    PTH2SWT_FUZZ=1 nice -n 19 swift build -c release --build-path .build-fuzz --product "fuzz-$h" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
        -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -v "Cannot export local symbol" | tail -1
done

# Seeds: the fixtures each reader should understand, plus the hostile corpus.
seeds() {
    local h=$1 dir=$2
    rm -rf "$dir" && mkdir -p "$dir"
    case $h in
        tar) cp Tests/Fixtures/tar_*.pth "$dir"/ ;;
        legacy) cp Tests/Fixtures/legacy_*.pth Tests/Fixtures/hostile_legacy_*.pth "$dir"/ ;;
        zip) cp Tests/Fixtures/zip_*.pth Tests/Fixtures/hostile_eval.pth Tests/Fixtures/hostile_os_system.pth \
                Tests/Fixtures/kinds/*.pth "$dir"/ ;;
        zip-stub) cp Tests/Fixtures/zip_*.pth Tests/Fixtures/hostile_*.pth "$dir"/
                  for z in Tests/Fixtures/wild/*.pt*; do unzip -tq "$z" >/dev/null 2>&1 && cp "$z" "$dir"/; done ;;
        swt) cp Tests/Fixtures/swt_*.swt Tests/Fixtures/kinds/*.swt "$dir"/ ;;
        pickle|pickle-stub)
            cp Tests/Fixtures/pickles/*.pkl "$dir"/
            for z in Tests/Fixtures/zip_*.pth Tests/Fixtures/hostile/*.pth Tests/Fixtures/wild/*.pt* Tests/Fixtures/kinds/*.pth; do
                [ -f "$z" ] || continue
                unzip -p "$z" '*/data.pkl' > "$dir/$(basename "$z" .pth).data.pkl" 2>/dev/null || true
                [ -s "$dir/$(basename "$z" .pth).data.pkl" ] || rm -f "$dir/$(basename "$z" .pth).data.pkl"
            done ;;
    esac
    # Seeds over 64 KiB (the inflated memo and stack floods) would raise libFuzzer's -max_len to 1 MiB
    # and slow every execution; the fuzzer grows big inputs itself when they pay.
    find "$dir" -type f -size +64k -delete
    if [ -d Tests/Fixtures/hostile ] && [ -f Tests/Fixtures/hostile/manifest.json ]; then
        # Hostile files of this harness's format (the manifest's "format" field).
        python3 - "$h" "$dir" <<'EOF'
import json, shutil, sys
h, out = sys.argv[1], sys.argv[2]
m = json.load(open("Tests/Fixtures/hostile/manifest.json"))
# Files that only a cap stops (floods, memo bombs) cost the cap's worth of work on every mutation.
costly = {"maxStack", "maxMemo", "maxMarks", "maxValues", "maxInflationRatio"}
for f in m["files"]:
    if f["format"] == h.replace("-stub", "") and f["expect"].get("cap") not in costly:
        shutil.copy("Tests/Fixtures/hostile/" + f["file"], out)
EOF
    fi
}

for h in "${harnesses[@]}"; do
    dir=$work/$h
    mkdir -p "$dir/corpus" "$dir/findings"
    seeds "$h" "$dir/seeds"
    find "$dir/corpus" -type f -size +64k -delete
    log=$dir/run-$(date +%Y%m%d-%H%M%S).log
    echo "== fuzz-$h: ${limit[*]} ${extra[*]:-} (seeds: $(ls "$dir/seeds" | wc -l), corpus: $(ls "$dir/corpus" | wc -l))"
    before=$(ls "$dir/findings" | wc -l)
    start=$(date +%s)
    set +e
    nice -n 19 ".build-fuzz/release/fuzz-$h" "${limit[@]}" -timeout=120 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -print_final_stats=1 -artifact_prefix="$dir/findings/" "${extra[@]}" "$dir/corpus" "$dir/seeds" > "$log" 2>&1
    status=$?
    set -e
    seconds=$(( $(date +%s) - start ))
    after=$(ls "$dir/findings" | wc -l)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
    found=$((after - before))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Is)" "$h" "${execs:-0}" "$seconds" "${speed:-0}" \
        "${cov:-?}" "${ft:-?}" "${corp:-?}" "$found" >> "$history"
    echo "   $h: ${execs:-0} executions in ${seconds} s (${speed:-0}/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, exit $status, new findings: $found"
    if [ "$found" -gt 0 ] || [ "$status" -ne 0 ]; then
        grep -E '^==[0-9]+==ERROR|^SUMMARY|Fatal error|deadly signal|ERROR: libFuzzer' "$log" | head -5 | sed 's/^/   /'
        ls -t "$dir/findings" | head -5 | sed "s|^|   $dir/findings/|"
    fi
done
report
