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

ensure_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v hey >/dev/null 2>&1 || missing+=(hey)
    if ((${#missing[@]})); then
        [[ $EUID -eq 0 ]] || die "missing ${missing[*]}; install them with apt-get"
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
    NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
}

# write_nginx_conf PREFIX PORT ROOT: nginx with one worker per core serving ROOT.
write_nginx_conf() {
    local prefix=$1 port=$2 root=$3 user_line=""
    [[ $EUID -eq 0 ]] && user_line="user root;"
    mkdir -p "$prefix/tmp"
    cat >"$prefix/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes auto;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    server { listen 127.0.0.1:$port; root $root; }
}
CONF
}

# wrk_rps URL [header]: requests/s over DURATION with CONNECTIONS, failing on non-2xx answers.
wrk_rps() {
    local url=$1 header=${2:-} out
    if [[ -n "$header" ]]; then
        out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H "$header" "$url")"
    else
        out="$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$url")"
    fi
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        die "non-2xx answers from $url"
    fi
    awk '/Requests\/sec/ { print $2 }' <<<"$out"
}

# hey_p99_ms URL RATE [header]: p99 latency (ms) at a fixed total RATE req/s, 32 workers.
hey_p99_ms() {
    local url=$1 rate=$2 header=${3:-} workers=32 per out
    per="$(calc "max(1, round($rate / $workers))")"
    if [[ -n "$header" ]]; then
        out="$(hey -z "${DURATION}s" -c "$workers" -q "$per" -H "$header" "$url")"
    else
        out="$(hey -z "${DURATION}s" -c "$workers" -q "$per" "$url")"
    fi
    grep -q '\[200\]' <<<"$out" || die "hey got no 200 answers from $url"
    awk '/ 99% in / { printf "%.2f\n", $3 * 1000 }' <<<"$out"
}

ensure_tools
build_release
make_tmpdir work

# The reference: a 2 KB static file.
mkdir -p "$work/www"
head -c 2048 /dev/urandom | base64 -w 0 | head -c 2048 >"$work/www/static.txt"
nginx_port="$(free_port)"
write_nginx_conf "$work/nginx" "$nginx_port" "$work/www"
"$NGINX_BIN" -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" </dev/null >"$work/nginx/out.log" 2>&1 &
register_pid $!
nginx_url="http://127.0.0.1:$nginx_port/static.txt"
wait_http_ok "$nginx_url" 10 "$!" "$work/nginx/error.log"

# Vitrine with one public link on a small PDF.
port="$(free_port)"
start_vitrine "$work/data" "$port" "$work/vitrine.log"
wait_http_ok "$VITRINE_URL/readyz" 20 "$VITRINE_PID" "$work/vitrine.log"
create_admin "$work/data" "$port" "$VITRINE_URL"
token="$(login "$VITRINE_URL")"
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
