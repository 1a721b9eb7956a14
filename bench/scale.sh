#!/usr/bin/env bash
# scale: the recipient's share page through the reverse proxy we ship (deploy/nginx/vitrine.conf)
# with one Vitrine instance behind it and with two, on this machine, sharing one PostgreSQL
# database (a scratch one), one Redis bus and one blob directory. For reference, the same page
# straight from one instance, without the proxy.
#
# On a machine with 2 cores two instances cannot be faster than one: the cores are already busy
# with one instance, nginx, PostgreSQL and the load generator. What this measures is the price
# of scaling out: what the proxy costs (proxied vs direct) and what a second instance costs
# (two vs one: a second process, its own view counting and analytics batches, its own pool of
# database connections), and where the CPU goes (per process, from /proc/<pid>/stat).
#
# Measured: GET /share/{uuid}/ as JSON, public link on a small PDF, view counting and analytics
# on, wrk with 2 threads and 64 connections; ROUNDS rounds of (direct, one, two), medians.
#
# Usage: bash bench/scale.sh
# Env:   SCALE_BENCH_SECONDS (10), SCALE_BENCH_ROUNDS (3), BENCH_DATABASE_URL (else
#        TEST_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres: where the scratch
#        database is created and dropped), BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR,
#        BENCH_RESULTS. Redis: its own redis-server on a free port (redis-server must be installed).
# Installs: nginx-light, wrk and hey with apt-get when missing.
# Exit:  0 measured, 2 the benchmark itself failed. (No target: see above.)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=scale
DURATION="${SCALE_BENCH_SECONDS:-10}"
ROUNDS="${SCALE_BENCH_ROUNDS:-3}"
CONNECTIONS=64
PG_BASE="${BENCH_DATABASE_URL:-${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"

ensure_tools
require_cmd psql redis-server redis-cli
build_release
make_tmpdir work

# --- shared state: a scratch PostgreSQL database and a Redis of our own ----------------------
psql "$PG_BASE" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "PostgreSQL does not answer at $PG_BASE (set BENCH_DATABASE_URL)"
db="vitrine_bench_scale_$$"
psql "$PG_BASE" -qc "CREATE DATABASE $db" >/dev/null
on_exit "psql '$PG_BASE' -qc 'DROP DATABASE IF EXISTS $db WITH (FORCE)' >/dev/null 2>&1"
db_url="$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$PG_BASE" "$db")"

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no </dev/null >"$work/redis.log" 2>&1 &
redis_pid=$!
register_pid "$redis_pid"
for ((i = 0; i < 100; i++)); do
    [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.05
done
[[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" == PONG ]] || die "redis-server did not start"

# --- two instances with the settings of README.md "Running several instances" ----------------
proxy_port="$(free_port)"
secret() { python3 -c 'import secrets; print(secrets.token_hex(32))'; }
VITRINE_EXTRA_ENV=(
    VITRINE_DATABASE_URL="$db_url"
    VITRINE_BUS_URL="redis://127.0.0.1:$redis_port"
    VITRINE_JWT_SECRET="$(secret)"
    VITRINE_HMAC_SECRET="$(secret)"
    VITRINE_TRUSTED_PROXIES=127.0.0.1/32
    VITRINE_PUBLIC_URL="http://127.0.0.1:$proxy_port"
)
# Local storage in one directory both instances use (S3 would add the S3 server's own CPU).
start_with_admin "$work/data" "$work/a.log"
a_url="$VITRINE_URL" a_pid="$VITRINE_PID" token="$BENCH_TOKEN"
b_port="$(free_port)"
start_vitrine "$work/data" "$b_port" "$work/b.log"
b_url="$VITRINE_URL" b_pid="$VITRINE_PID"
wait_http_ok "$b_url/readyz" 20 "$b_pid" "$work/b.log"

make_pdf "$work/small.pdf" 20000 scale
code="$(upload_asset "$a_url" "$token" "$work/small.pdf" "$work/asset.json")"
[[ "$code" == 201 ]] || die "upload answered HTTP $code"
asset_id="$(json_field id <"$work/asset.json")"
share_json="$(curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"share_type":"public","title":"Benchmark"}' "$a_url/api/v3/assets/$asset_id/share/")" ||
    die "share creation failed: $share_json"
uuid="$(json_field uuid <<<"$share_json")"
page="/share/$uuid/"

# --- the proxy: the shipped site, once with A alone, once with A and B ------------------------
start_nginx_proxy "$work/nginx-one" "${a_url#http://}"
one_url="$NGINX_PROXY_URL" one_pid="$NGINX_PID"
# The two-instance proxy takes the port public_url names.
write_nginx_proxy_conf "$work/nginx-two" "$proxy_port" "${a_url#http://}" "${b_url#http://}"
"$NGINX_BIN" -p "$work/nginx-two/" -c "$work/nginx-two/nginx.conf" -e "$work/nginx-two/error.log" </dev/null >"$work/nginx-two/out.log" 2>&1 &
two_pid=$!
register_pid "$two_pid"
two_url="http://127.0.0.1:$proxy_port"
wait_http_ok "$two_url/healthz" 10 "$two_pid" "$work/nginx-two/error.log"
# B serves the link A created (one database, one blob directory).
[[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/json' "$b_url$page")" == 200 ]] ||
    die "instance B does not serve the link created on A"

# Processes whose CPU is counted. PostgreSQL: its background processes and the connections to
# the scratch database (other databases on the same server are left out), read again after each
# run because the pools may open connections during it.
pg_pids() {
    psql "$PG_BASE" -Atqc "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
        WHERE datname = '$db' OR backend_type <> 'client backend'"
}
snapshot() { # FILE NGINX_PID
    cpu_snapshot "$1" "nginx=$2,$(child_pids "$2" | tr ' ' ',')" "vitrine_a=$a_pid" "vitrine_b=$b_pid" \
        "postgres=$(pg_pids)" "redis=$redis_pid"
}

log "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "warm-up"
for url in "$a_url" "$one_url" "$two_url"; do
    wrk -t2 -c"$CONNECTIONS" -d2s -H 'Accept: application/json' "$url$page" >/dev/null
done

# wrk's own CPU time, from bash's `time` (TIMEFORMAT: user and system seconds).
timed_wrk() { # URL -> prints req/s; wrk's CPU seconds in $work/wrk.cpu
    local out
    out="$( { TIMEFORMAT='%U %S'; time wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -H 'Accept: application/json' "$1"; } 2>"$work/wrk.time")"
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        die "non-2xx answers from $1"
    fi
    tail -n 1 "$work/wrk.time" | awk '{ print $1 + $2 }' >"$work/wrk.cpu"
    awk '/Requests\/sec/ { print $2 }' <<<"$out"
}

NAMES=(nginx vitrine_a vitrine_b postgres redis wrk)
declare -A RPS CPU
for ((round = 1; round <= ROUNDS; round++)); do
    for setup in direct one two; do
        case $setup in
            direct) url="$a_url" nginx_pid="" ;;
            one) url="$one_url" nginx_pid="$one_pid" ;;
            two) url="$two_url" nginx_pid="$two_pid" ;;
        esac
        # The direct run reads the idle proxy (it does nothing) so every run has the same names.
        snapshot "$work/before.json" "${nginx_pid:-$one_pid}"
        rps="$(timed_wrk "$url$page")"
        snapshot "$work/after.json" "${nginx_pid:-$one_pid}"
        RPS[$setup]="${RPS[$setup]:-} $rps"
        CPU[$setup.wrk]="$(calc "${CPU[$setup.wrk]:-0} + $(cat "$work/wrk.cpu")")"
        while read -r name secs; do
            CPU[$setup.$name]="$(calc "${CPU[$setup.$name]:-0} + $secs")"
        done < <(cpu_diff "$work/before.json" "$work/after.json")
        log "round $round, $setup: $rps req/s"
    done
done

# view_count: every page view above was counted once, by whichever instance served it.
views="$(curl -sS -H "Authorization: Bearer $token" "$two_url/api/v3/shares/" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["view_count"])')"

# shellcheck disable=SC2086 # each RPS entry is a list of numbers
direct="$(median ${RPS[direct]})" one="$(median ${RPS[one]})" two="$(median ${RPS[two]})"
echo
echo "$BENCH: GET /share/{uuid}/ (JSON), wrk -c$CONNECTIONS, ${DURATION}s x $ROUNDS rounds, $(nproc) cores; medians"
report "$BENCH" "direct, one instance (req/s)" "$(calc "round($direct)")" "reference" "info"
report "$BENCH" "nginx + one instance (req/s)" "$(calc "round($one)")" "-" "info"
report "$BENCH" "nginx + two instances (req/s)" "$(calc "round($two)")" "-" "info"
report "$BENCH" "ratio one via nginx / direct" "$(calc "f'{$one / $direct:.3f}'")" "-" "info"
report "$BENCH" "ratio two / one (both via nginx)" "$(calc "f'{$two / $one:.3f}'")" "-" "info"
report "$BENCH" "views counted" "$views" "-" "info"

# CPU: per process, summed over the rounds; and per request (CPU-us), which compares setups
# that served different numbers of requests. "rest" is what the machine spent outside these
# processes between the snapshots (other work on a shared machine; a quiet machine shows ~0).
echo
echo "CPU by process, summed over the $ROUNDS runs of each setup: CPU-seconds / CPU-us per request"
printf '  %-7s' setup
for name in "${NAMES[@]}" servers rest; do printf ' %14s' "$name"; done
printf '\n'
for setup in direct one two; do
    requests="$(calc "sum(float(x) for x in '${RPS[$setup]}'.split()) * $DURATION")"
    servers="$(calc "${CPU[$setup.nginx]} + ${CPU[$setup.vitrine_a]} + ${CPU[$setup.vitrine_b]} + ${CPU[$setup.postgres]} + ${CPU[$setup.redis]}")"
    CPU[$setup.servers]="$servers"
    CPU[$setup.rest]="$(calc "max(0, ${CPU[$setup.machine]} - $servers - ${CPU[$setup.wrk]})")"
    printf '  %-7s' "$setup"
    for name in "${NAMES[@]}" servers rest; do
        printf ' %14s' "$(calc "f'{${CPU[$setup.$name]}:.1f} / {1e6 * ${CPU[$setup.$name]} / $requests:.0f}'")"
    done
    printf '\n'
    report "$BENCH" "$setup: server CPU-us per request" "$(calc "f'{1e6 * $servers / $requests:.0f}'")" "-" "info" >/dev/null
done
echo "  servers = nginx + Vitrine + PostgreSQL + Redis; rest = the machine's other busy time"
echo "  (measurement windows: $(calc "f'{${CPU[direct.window]}:.1f}'"), $(calc "f'{${CPU[one.window]}:.1f}'"), $(calc "f'{${CPU[two.window]}:.1f}'") s for ${ROUNDS} x ${DURATION} s of load)"
exit "$BENCH_FAILED"
