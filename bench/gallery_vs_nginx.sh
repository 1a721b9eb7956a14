#!/usr/bin/env bash
# gallery_vs_nginx: how fast is the public gallery list, against nginx serving a 2 KB static file
# on the same machine, in the same run, with the same client (wrk, 64 connections)? Then the
# latency at half of Vitrine's measured throughput (hey, fixed rate).
#
# Measured: anonymous GET /api/dashboard/shared-media/ (first page of 20 posts, the landing
# page's call) and GET /api/dashboard/shared-media/?category=featured&page=2, on an installation
# with 60 posts of 60 assets (SQLite, local storage). Target: Vitrine req/s >= 0.4 x nginx req/s.
# The search target (p99 < 20 ms over 100,000 assets) is measured by `cargo bench --bench gallery`.
#
# Usage: bash bench/gallery_vs_nginx.sh
# Env:   GALLERY_BENCH_SECONDS (10), BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS
# Installs: nginx-light, wrk and hey with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=gallery_vs_nginx
DURATION="${GALLERY_BENCH_SECONDS:-10}"
CONNECTIONS=64
TARGET_RATIO=0.4
POSTS=60

ensure_tools
build_release
make_tmpdir work

start_nginx_static "$work"
nginx_url="$NGINX_URL"

start_with_admin "$work/data" "$work/vitrine.log"
token="$BENCH_TOKEN"
log "sharing $POSTS assets to the gallery"
categories=(featured inspiration trending spotlight general)
for i in $(seq 1 "$POSTS"); do
    make_pdf "$work/p$i.pdf" 4000 "post-$i"
    code="$(upload_asset "$VITRINE_URL" "$token" "$work/p$i.pdf" "$work/asset.json")"
    [[ "$code" == 201 ]] || die "upload answered HTTP $code"
    asset_id="$(json_field id <"$work/asset.json")"
    body="{\"content_type\":\"talent_media\",\"object_id\":$asset_id,\"caption\":\"Benchmark post $i\",\"category\":\"${categories[$((i % 5))]}\"}"
    out="$(curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "$body" "$VITRINE_URL/api/dashboard/share-media/")" || die "share failed: $out"
done
list_url="$VITRINE_URL/api/dashboard/shared-media/"
filtered_url="$VITRINE_URL/api/dashboard/shared-media/?category=featured&page=2&page_size=5"
count="$(curl -sS "$list_url" | json_field count)"
[[ "$count" == "$POSTS" ]] || die "the gallery lists $count posts, expected $POSTS"

log "warm-up"
wrk -t2 -c"$CONNECTIONS" -d2s "$nginx_url" >/dev/null
wrk -t2 -c"$CONNECTIONS" -d2s "$list_url" >/dev/null

log "throughput, $CONNECTIONS connections, ${DURATION}s each"
nginx_rps="$(wrk_rps "$nginx_url")"
list_rps="$(wrk_rps "$list_url")"
filtered_rps="$(wrk_rps "$filtered_url")"
log "nginx $nginx_rps req/s, gallery $list_rps req/s, filtered $filtered_rps req/s"
list_p99="$(hey_p99_ms "$list_url" "$(calc "$list_rps / 2")")"

echo
echo "$BENCH: GET /api/dashboard/shared-media/ (anonymous, 20 of $POSTS posts) vs nginx 2 KB file, wrk -c$CONNECTIONS, ${DURATION}s"
report "$BENCH" "nginx 2 KB file (req/s)" "$(calc "round($nginx_rps)")" "reference" "info"
report "$BENCH" "gallery list (req/s)" "$(calc "round($list_rps)")" "-" "info"
report "$BENCH" "gallery filtered page (req/s)" "$(calc "round($filtered_rps)")" "-" "info"
report "$BENCH" "ratio list / nginx" "$(calc "f'{$list_rps / $nginx_rps:.3f}'")" ">= $TARGET_RATIO" "$(check "$list_rps / $nginx_rps" ">=" "$TARGET_RATIO")"
report "$BENCH" "ratio filtered / nginx" "$(calc "f'{$filtered_rps / $nginx_rps:.3f}'")" ">= $TARGET_RATIO" "$(check "$filtered_rps / $nginx_rps" ">=" "$TARGET_RATIO")"
report "$BENCH" "p99 list at half load (ms)" "$list_p99" "-" "info"
exit "$BENCH_FAILED"
