#!/usr/bin/env bash
# zip_download: "Download all" of a collection link (one ZIP streamed while it is sent, SPEC §10)
# against downloading the same bytes as one file through an asset link.
#
# Uploads 10 PDFs of 100 MB into a collection and one PDF of 1000 MB, shares both, then
# alternately (3 rounds) downloads the 1000 MB file and the ZIP with curl to /dev/null. Ratio =
# median single-file time / median ZIP time (1.0 = as fast). Then four ZIP downloads at once,
# sampling the server's RSS every 20 ms. Targets: ratio >= 0.8; RSS growth <= 32 MB.
#
# Usage: bash bench/zip_download.sh
# Env:   ZIP_FILES (10), ZIP_FILE_MB (100), ZIP_ROUNDS (3), BENCH_SKIP_BUILD=1, VITRINE_BIN,
#        BENCH_TMPDIR, BENCH_RESULTS
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=zip_download
FILES="${ZIP_FILES:-10}"
FILE_MB="${ZIP_FILE_MB:-100}"
ROUNDS="${ZIP_ROUNDS:-3}"
require_cmd curl python3 truncate
build_release
make_tmpdir work
VITRINE_EXTRA_ENV=(VITRINE_ASSET_MAX_BYTES=$(((FILES * FILE_MB + 64) * 1024 * 1024))
    VITRINE_SHARE_ACCESS_RATE_PER_IP_PER_MINUTE=100000)
start_with_admin "$work/data" "$work/server.log"
token="$BENCH_TOKEN"
api() { curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

ids=()
for ((i = 1; i <= FILES; i++)); do
    make_pdf "$work/part-$i.pdf" $((FILE_MB * 1024 * 1024)) "part-$i-$RANDOM"
    code="$(upload_asset "$VITRINE_URL" "$token" "$work/part-$i.pdf" "$work/part-$i.json")"
    [[ "$code" == 201 ]] || die "upload $i answered $code"
    ids+=("$(json_field id <"$work/part-$i.json")")
    rm -f "$work/part-$i.pdf"
done
make_pdf "$work/whole.pdf" $((FILES * FILE_MB * 1024 * 1024)) "whole-$RANDOM"
code="$(upload_asset "$VITRINE_URL" "$token" "$work/whole.pdf" "$work/whole.json")"
[[ "$code" == 201 ]] || die "upload of the whole file answered $code"
rm -f "$work/whole.pdf"
whole="$(json_field id <"$work/whole.json")"
collection="$(api -d '{"title": "Bench set"}' "$VITRINE_URL/api/v3/collections/" | json_field id)"
list="$(IFS=,; echo "${ids[*]}")"
api -d "{\"asset_ids\": [$list]}" "$VITRINE_URL/api/v3/collections/$collection/items/" >/dev/null
zip_url="$(api -d '{}' "$VITRINE_URL/api/v3/collections/$collection/share/" | json_field share_url)"
one_url="$(api -d '{}' "$VITRINE_URL/api/v3/assets/$whole/share/" | json_field share_url)"

fetch() { curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$1/download"; }
singles=()
zips=()
for ((r = 1; r <= ROUNDS; r++)); do
    read -r code size secs < <(fetch "${one_url%/}")
    [[ "$code" == 200 ]] || die "single download answered $code"
    singles+=("$secs")
    read -r code zsize zsecs < <(fetch "${zip_url%/}")
    [[ "$code" == 200 ]] || die "ZIP download answered $code"
    ((zsize > FILES * FILE_MB * 1024 * 1024)) || die "ZIP is only $zsize bytes"
    zips+=("$zsecs")
    log "round $r: one file $secs s ($size B), ZIP $zsecs s ($zsize B)"
done
s="$(median "${singles[@]}")"
z="$(median "${zips[@]}")"
ratio="$(calc "f'{$s / $z:.2f}'")"

sleep 1
idle_kb="$(proc_status_kb "$VITRINE_PID" VmRSS)"
{ echo 5 >"/proc/$VITRINE_PID/clear_refs"; } 2>/dev/null || true
start_rss_sampler "$VITRINE_PID" "$work/rss.out" "$work/rss.stop"
pids=()
for ((i = 1; i <= 4; i++)); do
    curl -sS -o /dev/null "${zip_url%/}/download" &
    pids+=("$!")
done
for pid in "${pids[@]}"; do wait "$pid" || die "a concurrent ZIP download failed"; done
stop_rss_sampler "$work/rss.stop"
hwm_kb="$(proc_status_kb "$VITRINE_PID" VmHWM)"
read -r sampled_kb _ <"$work/rss.out"
peak_kb=$((hwm_kb > sampled_kb ? hwm_kb : sampled_kb))
growth="$(calc "f'{($peak_kb - $idle_kb) / 1024:.1f}'")"

echo
echo "zip_download: ZIP of $FILES x $FILE_MB MB vs one $((FILES * FILE_MB)) MB file (median of $ROUNDS)"
report "$BENCH" "one file (s)" "$(calc "f'{$s:.2f}'")" "-" "info"
report "$BENCH" "ZIP (s)" "$(calc "f'{$z:.2f}'")" "-" "info"
report "$BENCH" "ZIP speed / one-file speed" "$ratio" ">= 0.8" "$(check "$ratio" '>=' 0.8)"
report "$BENCH" "RSS growth, 4 ZIPs at once (MB)" "$growth" "<= 32" "$(check "$growth" '<=' 32)"
exit "$BENCH_FAILED"
