#!/usr/bin/env bash
# Run all Vitrine benchmarks and print one summary table.
#
# Usage: bash bench/run.sh                  # all of them
#        bash bench/run.sh cold_start ...   # a subset, by script name
#
# Builds the release binary once, then runs each benchmark with
# BENCH_SKIP_BUILD=1. A benchmark that misses a target or fails does not stop
# the others; the exit code is 0 only if every target was met.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all=(cold_start upload_memory download_vs_nginx share_page_vs_nginx analytics_capture gallery_vs_nginx
    zip_download tus_upload file_request_load webhook_delivery token_auth share_page_weight)
if (($# > 0)); then selected=("$@"); else selected=("${all[@]}"); fi
for b in "${selected[@]}"; do
    [[ -f "$BENCH_DIR/$b.sh" ]] || die "unknown benchmark '$b' (known: ${all[*]})"
done

build_release
export BENCH_SKIP_BUILD=1

make_tmpdir work
export BENCH_RESULTS="$work/results.tsv"
: >"$BENCH_RESULTS"

overall=0
statuses=()
for b in "${selected[@]}"; do
    echo
    echo "=== $b ==="
    start=$SECONDS
    rc=0
    bash "$BENCH_DIR/$b.sh" || rc=$?
    case $rc in
        0) statuses+=("$b: all targets met ($((SECONDS - start)) s)") ;;
        1) statuses+=("$b: TARGET MISSED ($((SECONDS - start)) s)"); overall=1 ;;
        *) statuses+=("$b: ERROR, exit $rc ($((SECONDS - start)) s)"); overall=1 ;;
    esac
done

echo
echo "=== Summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $("$VITRINE_BIN" --version 2>/dev/null || echo vitrine)) ==="
printf '%-18s %-36s %14s  %-12s %s\n' BENCHMARK METRIC VALUE TARGET STATUS
while IFS=$'\t' read -r bench metric value target status; do
    printf '%-18s %-36s %14s  %-12s %s\n' "$bench" "$metric" "$value" "$target" "$status"
done <"$BENCH_RESULTS"
echo
printf '%s\n' "${statuses[@]}"
exit "$overall"
