#!/usr/bin/env bash
# download_vs_nginx: is Vitrine's download path close to a plain static file
# server? nginx with sendfile is the reference, measured in the same run on
# the same machine, with the same client and the same bytes.
#
# Uploads a 1 GiB PDF through the API, then downloads it, interleaved, from:
#   (a) nginx serving the file from disk (sendfile on),
#   (b) Vitrine's signed public download_url (no auth),
#   (c) Vitrine's /api/v3/assets/{id}/content with a Bearer token.
# 3 measured runs each (after one unmeasured warm-up that also checks the
# SHA-256), median reported. Target: vitrine/nginx >= 0.9 for (b) and (c).
#
# Usage: bash bench/download_vs_nginx.sh
# Env:   DOWNLOAD_SIZE_MB (1024), DOWNLOAD_RUNS (3), BENCH_SKIP_BUILD=1,
#        VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS (see lib.sh)
# Installs: nginx-light with apt-get when no nginx binary is found.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=download_vs_nginx
SIZE_MB="${DOWNLOAD_SIZE_MB:-1024}"
SIZE_BYTES=$((SIZE_MB * 1024 * 1024))
RUNS="${DOWNLOAD_RUNS:-3}"
TARGET_RATIO=0.9

# nginx lives in /usr/sbin, which is not on every user's PATH.
find_nginx() {
    command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true
}

ensure_nginx() {
    NGINX_BIN="$(find_nginx)"
    [[ -n "$NGINX_BIN" ]] && return 0
    command -v apt-get >/dev/null || die "nginx not found and apt-get unavailable; install nginx"
    [[ $EUID -eq 0 ]] || die "nginx not found; install it (apt-get install nginx-light) or run as root"
    log "installing nginx-light (reference server)"
    apt-get update -qq
    # nginx-light is enough (static files + sendfile); fall back to the full
    # package on releases that no longer ship the light flavour.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx
    NGINX_BIN="$(find_nginx)"
    [[ -n "$NGINX_BIN" ]] || die "nginx still missing after apt-get install"
}

# write_nginx_conf PREFIX PORT FILE: minimal single-worker config serving FILE
# at /bench.pdf. All paths (pid, logs, temp dirs) live under PREFIX so it runs
# beside any system nginx and needs no write access to /var.
write_nginx_conf() {
    local prefix=$1 port=$2 file=$3
    local user_line=""
    # As root, workers would drop to "nobody" and could not read our 0700
    # temp dirs; keep them as root for this throw-away loopback instance.
    [[ $EUID -eq 0 ]] && user_line="user root;"
    mkdir -p "$prefix/tmp"
    cat >"$prefix/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location = /bench.pdf {
            default_type application/pdf;
            alias $file;
        }
    }
}
EOF
}

# fetch URL [curl args...]: one download to /dev/null; prints bytes/s.
# Status and byte count are checked so an error page can never pass for a
# very fast download.
fetch() {
    local url=$1
    shift
    local out code size speed
    out="$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' \
        --max-time 600 "$@" "$url")" || die "curl failed for $url"
    read -r code size speed <<<"$out"
    [[ "$code" == 200 ]] || die "GET $url answered HTTP $code"
    [[ "$size" == "$SIZE_BYTES" ]] || die "GET $url returned $size bytes, expected $SIZE_BYTES"
    printf '%s\n' "$speed"
}

# fetch_sha URL [curl args...]: download and print the SHA-256 (warm-up only:
# hashing would cap the measured speed).
fetch_sha() {
    local url=$1
    shift
    curl -sS --fail --max-time 600 "$@" "$url" | sha256sum | cut -d' ' -f1
}

require_cmd curl python3 truncate sha256sum cmp
ensure_nginx
build_release

make_tmpdir work
src="$work/source.pdf"
log "creating ${SIZE_MB} MB PDF"
make_pdf "$src" "$SIZE_BYTES" "download-$RANDOM"
src_sha="$(sha256sum "$src" | cut -d' ' -f1)"

port="$(free_port)"
log "starting vitrine on port $port"
start_vitrine "$work/data" "$port" "$work/server.log"
wait_http_ok "$VITRINE_URL/readyz" 30 "$VITRINE_PID" "$work/server.log"
create_admin "$work/data" "$port" "$VITRINE_URL"
token="$(login "$VITRINE_URL")"
auth=(-H "Authorization: Bearer $token")

log "uploading ${SIZE_MB} MB through the API"
t0=$EPOCHREALTIME
code="$(upload_asset "$VITRINE_URL" "$token" "$src" "$work/asset.json")"
t1=$EPOCHREALTIME
[[ "$code" == 201 ]] || die "upload answered HTTP $code: $(head -c 500 "$work/asset.json")"
upload_rate="$(calc "f'{$SIZE_MB / ($t1 - $t0):.1f}'")"
asset_id="$(json_field id <"$work/asset.json")"
download_url="$(json_field download_url <"$work/asset.json")"
api_sha="$(json_field sha256 <"$work/asset.json" || echo '?')"
[[ "$api_sha" == "$src_sha" ]] || die "server sha256 $api_sha != local $src_sha"
content_url="$VITRINE_URL/api/v3/assets/$asset_id/content"

# nginx serves the blob Vitrine stored, so both servers read the very same
# bytes from the same filesystem (the sparse source file would otherwise give
# nginx a head start: its holes cost no disk reads). Fall back to the source
# if the blob layout is not a plain copy.
nginx_file="$src"
blob="$(find "$work/data/blobs" -type f -size "${SIZE_BYTES}c" 2>/dev/null | head -n 1 || true)"
if [[ -n "$blob" ]] && cmp -s "$blob" "$src"; then
    nginx_file="$blob"
    nginx_note="Vitrine's stored blob"
else
    nginx_note="the sparse source file (no plain blob found)"
    warn "nginx serves $nginx_note"
fi

nginx_port="$(free_port)"
write_nginx_conf "$work/nginx" "$nginx_port" "$nginx_file"
"$NGINX_BIN" -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" \
    </dev/null >"$work/nginx/stdout.log" 2>&1 &
nginx_pid=$!
register_pid "$nginx_pid"
nginx_url="http://127.0.0.1:$nginx_port/bench.pdf"
wait_http_ok "http://127.0.0.1:$nginx_port/bench.pdf" 10 "$nginx_pid" "$work/nginx/error.log"

# Warm-up: fills the page cache for both, and proves every path returns the
# right bytes before we trust its speed.
log "warm-up (checks SHA-256 of every path)"
[[ "$(fetch_sha "$nginx_url")" == "$src_sha" ]] || die "nginx served wrong bytes"
[[ "$(fetch_sha "$download_url")" == "$src_sha" ]] || die "download_url served wrong bytes"
[[ "$(fetch_sha "$content_url" "${auth[@]}")" == "$src_sha" ]] || die "/content served wrong bytes"

# Interleaved so background load (this is a shared 2-core box) hits all three
# alike instead of skewing whichever happened to run during a spike.
nginx_speeds=()
public_speeds=()
content_speeds=()
for ((r = 1; r <= RUNS; r++)); do
    nginx_speeds+=("$(fetch "$nginx_url")")
    public_speeds+=("$(fetch "$download_url")")
    content_speeds+=("$(fetch "$content_url" "${auth[@]}")")
    log "run $r/$RUNS: nginx ${nginx_speeds[-1]} B/s, download_url ${public_speeds[-1]} B/s, content ${content_speeds[-1]} B/s"
done

to_mbs() { calc "f'{$1 / 1048576:.0f}'"; }
nginx_med="$(median "${nginx_speeds[@]}")"
public_med="$(median "${public_speeds[@]}")"
content_med="$(median "${content_speeds[@]}")"
public_ratio="$(calc "f'{$public_med / $nginx_med:.3f}'")"
content_ratio="$(calc "f'{$content_med / $nginx_med:.3f}'")"

echo
echo "download_vs_nginx: ${SIZE_MB} MB file, median of $RUNS interleaved runs (MB = MiB)"
echo "  nginx serves $nginx_note"
report "$BENCH" "upload through API (MB/s)" "$upload_rate" "-" "info"
report "$BENCH" "nginx sendfile (MB/s)" "$(to_mbs "$nginx_med")" "reference" "info"
report "$BENCH" "vitrine download_url (MB/s)" "$(to_mbs "$public_med")" "-" "info"
report "$BENCH" "vitrine /content + Bearer (MB/s)" "$(to_mbs "$content_med")" "-" "info"
report "$BENCH" "ratio download_url / nginx" "$public_ratio" ">= $TARGET_RATIO" \
    "$(check "$public_ratio" '>=' "$TARGET_RATIO")"
report "$BENCH" "ratio /content / nginx" "$content_ratio" ">= $TARGET_RATIO" \
    "$(check "$content_ratio" '>=' "$TARGET_RATIO")"

exit "$BENCH_FAILED"
