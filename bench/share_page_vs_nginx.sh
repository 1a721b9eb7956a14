#!/usr/bin/env bash
# share_page_vs_nginx: how fast is the recipient's page of a share link, against nginx serving
# a 2 KB static file on the same machine, in the same run, with the same client (wrk, 64
# connections)? Then the latency at half of Vitrine's measured throughput (hey, fixed rate).
#
# Measured: GET /share/{uuid}/ as JSON (Accept: application/json) and as HTML, public link on a
# small PDF, view counting on. Targets: Vitrine req/s >= 0.5 x nginx req/s; p99 < 5 ms at half
# that load.
#
# Usage: bash bench/share_page_vs_nginx.sh
# Env:   SHARE_BENCH_SECONDS (10), BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS
# Installs: nginx-light, wrk and hey with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=share_page_vs_nginx
DURATION="${SHARE_BENCH_SECONDS:-10}"
CONNECTIONS=64
TARGET_RATIO=0.5
TARGET_P99_MS=5

ensure_tools
build_release
make_tmpdir work

# The reference: a 2 KB static file.
start_nginx_static "$work"
nginx_url="$NGINX_URL"

# Vitrine with one public link on a small PDF.
start_with_admin "$work/data" "$work/vitrine.log"
token="$BENCH_TOKEN"
make_pdf "$work/small.pdf" 20000 share
code="$(upload_asset "$VITRINE_URL" "$token" "$work/small.pdf" "$work/asset.json")"
[[ "$code" == 201 ]] || die "upload answered HTTP $code"
asset_id="$(json_field id <"$work/asset.json")"
share_json="$(curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"share_type":"public","title":"Benchmark"}' "$VITRINE_URL/api/v3/assets/$asset_id/share/")" ||
    die "share creation failed: $share_json"
share_url="$(json_field share_url <<<"$share_json")"

log "warm-up"
wrk -t2 -c"$CONNECTIONS" -d2s "$nginx_url" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d2s -H 'Accept: application/json' "$share_url" >/dev/null

log "throughput, $CONNECTIONS connections, ${DURATION}s each"
nginx_rps="$(wrk_rps "$nginx_url")"
json_rps="$(wrk_rps "$share_url" 'Accept: application/json')"
html_rps="$(wrk_rps "$share_url")"
log "nginx $nginx_rps req/s, share JSON $json_rps req/s, share HTML $html_rps req/s"

log "latency at half of the measured share throughput"
json_p99="$(hey_p99_ms "$share_url" "$(calc "$json_rps / 2")" 'Accept: application/json')"
html_p99="$(hey_p99_ms "$share_url" "$(calc "$html_rps / 2")")"

views="$(curl -sS -H "Authorization: Bearer $token" "$VITRINE_URL/api/v3/shares/" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["view_count"])')"

echo
echo "$BENCH: GET /share/{uuid}/ vs nginx 2 KB static file, wrk -c$CONNECTIONS, ${DURATION}s"
report "$BENCH" "nginx 2 KB file (req/s)" "$(calc "round($nginx_rps)")" "reference" "info"
report "$BENCH" "share page JSON (req/s)" "$(calc "round($json_rps)")" "-" "info"
report "$BENCH" "share page HTML (req/s)" "$(calc "round($html_rps)")" "-" "info"
report "$BENCH" "ratio JSON / nginx" "$(calc "f'{$json_rps / $nginx_rps:.3f}'")" ">= $TARGET_RATIO" "$(check "$json_rps / $nginx_rps" ">=" "$TARGET_RATIO")"
report "$BENCH" "ratio HTML / nginx" "$(calc "f'{$html_rps / $nginx_rps:.3f}'")" ">= $TARGET_RATIO" "$(check "$html_rps / $nginx_rps" ">=" "$TARGET_RATIO")"
report "$BENCH" "p99 JSON at half load (ms)" "$json_p99" "< $TARGET_P99_MS" "$(check "$json_p99" "<" "$TARGET_P99_MS")"
report "$BENCH" "p99 HTML at half load (ms)" "$html_p99" "< $TARGET_P99_MS" "$(check "$html_p99" "<" "$TARGET_P99_MS")"
report "$BENCH" "views counted" "$views" "-" "info"
exit "$BENCH_FAILED"
