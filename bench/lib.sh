# shellcheck shell=bash
# Shared helpers for the Vitrine benchmarks. Source this file; do not run it.
#
# Conventions:
#   * "MB" in every report means MiB (2^20 bytes), so sizes and rates compare
#     directly with the numbers from /proc (which are in KiB).
#   * Every script cleans up after itself (servers, temp dirs) through one EXIT
#     trap installed here, so an interrupted run leaves nothing behind.
#   * Results go to stdout for people, and (when BENCH_RESULTS names a file) as
#     tab-separated lines "benchmark<TAB>metric<TAB>value<TAB>target<TAB>status"
#     so run.sh can print one summary table.

# Scripts source us with `set -euo pipefail` already active; repeat it so a
# script that forgets still fails fast.
set -euo pipefail
# C locale: a decimal comma in $EPOCHREALTIME / printf would break the maths.
# (Scripts time intervals with bash's $EPOCHREALTIME, which needs no fork, so
# taking a timestamp adds nothing to the interval being measured.)
export LC_ALL=C

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
# Allow pointing at a binary built elsewhere (e.g. a CI artifact).
VITRINE_BIN="${VITRINE_BIN:-$REPO_ROOT/target/release/vitrine}"
# Kept from the servers' environment: Vitrine reads every VITRINE_* variable as a setting and
# refuses unknown ones, so `VITRINE_BIN=… bash bench/x.sh` would stop every server at start.
export -n VITRINE_BIN

# Credentials for the throw-away admin account each benchmark creates.
BENCH_EMAIL="bench@example.com"
BENCH_PASSWORD="bench-password-123"
BENCH_NAME="Bench Admin"

log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 2; }

# ---------------------------------------------------------------------------
# Cleanup: everything we start or create is registered here and torn down on
# exit, whatever the exit path (success, failure, Ctrl-C).
# ---------------------------------------------------------------------------
_BENCH_PIDS=()
_BENCH_TMPDIRS=()

_BENCH_ON_EXIT=()

_bench_cleanup() {
    local rc=$?
    local pid
    for pid in "${_BENCH_PIDS[@]+"${_BENCH_PIDS[@]}"}"; do
        stop_pid "$pid" || true
    done
    # After the servers are gone (a scratch database can only be dropped once nobody uses it).
    local cmd
    for cmd in "${_BENCH_ON_EXIT[@]+"${_BENCH_ON_EXIT[@]}"}"; do
        eval "$cmd" || true
    done
    local dir
    for dir in "${_BENCH_TMPDIRS[@]+"${_BENCH_TMPDIRS[@]}"}"; do
        [[ -n "$dir" && -d "$dir" ]] && rm -rf -- "$dir"
    done
    return "$rc"
}
trap _bench_cleanup EXIT
# Turn signals into a normal exit so the EXIT trap runs exactly once.
trap 'exit 130' INT
trap 'exit 143' TERM

# make_tmpdir VAR: create a temp dir that is removed on exit and store its
# path in VAR. (It sets a variable instead of printing the path because
# `dir=$(make_tmpdir)` would register the dir in a subshell, and the EXIT
# trap would never see it.) Honours BENCH_TMPDIR so big files can be put on a
# specific disk.
make_tmpdir() {
    local dir
    dir="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/vitrine-bench.XXXXXX")"
    _BENCH_TMPDIRS+=("$dir")
    printf -v "$1" '%s' "$dir"
}

# register_pid PID: make sure PID is stopped on exit.
register_pid() { _BENCH_PIDS+=("$1"); }

# on_exit CMD: run the shell command CMD on exit, after every registered process is stopped
# (dropping a scratch database, say). Failures are ignored.
on_exit() { _BENCH_ON_EXIT+=("$1"); }

# stop_pid PID: SIGTERM (what a supervisor sends, so graceful shutdown is what
# we exercise), wait up to 10 s, then SIGKILL so a hung server cannot hang the
# benchmark.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it if it is our child (silences bash's "Terminated" job messages).
    wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Build / environment
# ---------------------------------------------------------------------------

# build_release: build the optimised binary once. run.sh builds and then sets
# BENCH_SKIP_BUILD=1 so the individual scripts do not each re-run cargo.
build_release() {
    if [[ "${BENCH_SKIP_BUILD:-0}" == 1 ]]; then
        [[ -x "$VITRINE_BIN" ]] || die "BENCH_SKIP_BUILD=1 but $VITRINE_BIN does not exist"
        return 0
    fi
    log "cargo build --release"
    (cd "$REPO_ROOT" && cargo build --release) || die "release build failed"
    [[ -x "$VITRINE_BIN" ]] || die "build finished but $VITRINE_BIN is missing"
}

require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "required command '$c' not found"
    done
}

# free_port: ask the kernel for an unused loopback port. There is a small race
# between closing the probe socket and the server binding, acceptable here.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------------------
# Vitrine server
# ---------------------------------------------------------------------------

# VITRINE_EXTRA_ENV: more VITRINE_*=value settings for every server a script starts (an
# array; set it after sourcing this file). They come after the defaults below, so they win:
# scale.sh uses it for database_url, bus_url, the shared secrets and public_url.
VITRINE_EXTRA_ENV=()

# vitrine_env DATA_DIR PORT: set the array VITRINE_ENV to the config for this
# data dir/port, used as `env "${VITRINE_ENV[@]}" ...` for both `serve` and
# `user create` so they agree.
vitrine_env() {
    local data_dir=$1 port=$2
    VITRINE_ENV=(
        VITRINE_LISTEN="127.0.0.1:$port"
        VITRINE_DATA_DIR="$data_dir"
        VITRINE_PUBLIC_URL="http://127.0.0.1:$port"
        VITRINE_LOG_LEVEL="${VITRINE_LOG_LEVEL:-warn}"
        "${VITRINE_EXTRA_ENV[@]+"${VITRINE_EXTRA_ENV[@]}"}"
    )
}

# start_vitrine DATA_DIR PORT LOGFILE: start `vitrine serve` in the background.
# Sets VITRINE_PID and VITRINE_URL. Does not wait for readiness.
start_vitrine() {
    local data_dir=$1 port=$2 logfile=$3
    mkdir -p "$data_dir"
    vitrine_env "$data_dir" "$port"
    # A plain backgrounded command (not a shell function or subshell): `env`
    # execs the binary in the forked child, so $! is the server's own pid and
    # the RSS we read is the server's, not a wrapper shell's.
    env "${VITRINE_ENV[@]}" "$VITRINE_BIN" serve </dev/null >"$logfile" 2>&1 &
    VITRINE_PID=$!
    VITRINE_URL="http://127.0.0.1:$port"
    register_pid "$VITRINE_PID"
}

# wait_http_ok URL TIMEOUT_S PID LOGFILE: poll URL until it answers 200.
# Fails early (with the server log) if PID dies, instead of waiting out the
# timeout on a crashed server.
wait_http_ok() {
    local url=$1 timeout=$2 pid=$3 logfile=${4:-}
    local deadline=$((SECONDS + timeout)) code
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            [[ -n "$logfile" && -f "$logfile" ]] && tail -n 40 "$logfile" >&2
            die "process $pid exited before $url became ready"
        fi
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)"
        [[ "$code" == 200 ]] && return 0
        sleep 0.05
    done
    [[ -n "$logfile" && -f "$logfile" ]] && tail -n 40 "$logfile" >&2
    die "$url not ready after ${timeout}s"
}

# create_admin DATA_DIR PORT URL: create the bench admin account. The CLI is
# the documented way; if it fails we fall back to the public register endpoint
# (first account becomes admin) so a CLI problem does not block measurements.
create_admin() {
    local data_dir=$1 port=$2 url=$3
    vitrine_env "$data_dir" "$port"
    if env "${VITRINE_ENV[@]}" "$VITRINE_BIN" user create \
        --email "$BENCH_EMAIL" --password "$BENCH_PASSWORD" \
        --name "$BENCH_NAME" --role admin >/dev/null 2>&1; then
        return 0
    fi
    warn "'vitrine user create' failed; falling back to POST /api/auth/register/"
    local body code
    body="$(python3 -c 'import json,sys; print(json.dumps({"email":sys.argv[1],"password":sys.argv[2],"name":sys.argv[3]}))' \
        "$BENCH_EMAIL" "$BENCH_PASSWORD" "$BENCH_NAME")"
    code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$body" "$url/api/auth/register/")"
    [[ "$code" == 201 ]] || die "register fallback answered HTTP $code"
}

# start_with_admin DATA_DIR LOG: a Vitrine on a free port, ready, with the benchmark admin signed
# in; sets VITRINE_URL, VITRINE_PID and BENCH_TOKEN.
start_with_admin() {
    local data_dir=$1 logfile=$2 port
    port="$(free_port)"
    start_vitrine "$data_dir" "$port" "$logfile"
    wait_http_ok "$VITRINE_URL/readyz" 20 "$VITRINE_PID" "$logfile"
    create_admin "$data_dir" "$port" "$VITRINE_URL"
    BENCH_TOKEN="$(login "$VITRINE_URL")"
}

# login URL: print an access token. Login is rate-limited per IP, so each
# script logs in exactly once and reuses the token.
login() {
    local url=$1 body resp
    body="$(python3 -c 'import json,sys; print(json.dumps({"email":sys.argv[1],"password":sys.argv[2]}))' \
        "$BENCH_EMAIL" "$BENCH_PASSWORD")"
    resp="$(curl -sS --fail-with-body -H 'Content-Type: application/json' \
        -d "$body" "$url/api/auth/login/")" || die "login failed: $resp"
    json_field access_token <<<"$resp" || die "no access_token in login response: $resp"
}

# json_field KEY: read a JSON object on stdin, print top-level KEY.
json_field() {
    python3 -c '
import json, sys
v = json.load(sys.stdin).get(sys.argv[1])
if v is None:
    sys.exit(1)
print(v)' "$1"
}

# upload_asset URL TOKEN FILE OUTJSON: multipart upload; prints the HTTP code.
# type=application/pdf matches what the server sniffs from our PDF header.
upload_asset() {
    local url=$1 token=$2 file=$3 out=$4
    curl -s -o "$out" -w '%{http_code}' --max-time 1800 \
        -H "Authorization: Bearer $token" \
        -F "file=@$file;type=application/pdf" \
        -F "title=bench $(basename "$file")" \
        "$url/api/v3/assets/" || echo "000"
}

# ---------------------------------------------------------------------------
# Test files
# ---------------------------------------------------------------------------

# make_pdf PATH SIZE_BYTES [TAG]: a file the server's content sniffing accepts
# as PDF (random bytes are refused with 415). Header, an optional unique tag
# (so several files have different SHA-256s and cannot be deduplicated), zero
# padding via truncate (instant, no 1 GiB write), and a PDF trailer.
make_pdf() {
    local path=$1 size=$2 tag=${3:-}
    local trailer=$'\n%%EOF\n'
    printf '%%PDF-1.4\n%% vitrine-bench %s\n' "$tag" >"$path"
    truncate -s "$((size - ${#trailer}))" "$path"
    printf '%s' "$trailer" >>"$path"
    local actual
    actual="$(stat -c %s "$path")"
    [[ "$actual" == "$size" ]] || die "make_pdf: $path is $actual bytes, wanted $size"
}

# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------

# proc_status_kb PID FIELD: print FIELD (VmRSS, VmHWM, ...) in KiB.
proc_status_kb() {
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { exit !found }' "/proc/$1/status"
}

# start_rss_sampler PID OUTFILE STOPFILE: sample PID's VmRSS every 20 ms in a
# python loop (a bash loop forking awk 50x/s would steal CPU from the server
# on a 2-core box). Returns once the first sample is taken, so a short run
# cannot finish before sampling starts. When STOPFILE appears it takes one
# last sample, writes "max_kb samples" to OUTFILE and exits.
# Sets RSS_SAMPLER_PID.
start_rss_sampler() {
    local pid=$1 out=$2 stop=$3
    python3 - "$pid" "$out" "$stop" <<'PY' &
import os, sys, time
pid, out, stop = sys.argv[1], sys.argv[2], sys.argv[3]
path = f"/proc/{pid}/status"
peak = samples = 0
while True:
    stopping = os.path.exists(stop)
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]))
                    samples += 1
                    break
    except FileNotFoundError:
        break  # process gone; report what we have
    if samples == 1:
        open(out + ".ready", "w").close()
    if stopping:
        break
    time.sleep(0.02)
with open(out, "w") as f:
    f.write(f"{peak} {samples}\n")
PY
    RSS_SAMPLER_PID=$!
    register_pid "$RSS_SAMPLER_PID"
    local i
    for ((i = 0; i < 500; i++)); do
        [[ -e "$out.ready" ]] && return 0
        kill -0 "$RSS_SAMPLER_PID" 2>/dev/null || break
        sleep 0.01
    done
    die "RSS sampler did not start"
}

# stop_rss_sampler STOPFILE: signal the sampler and wait for its report.
stop_rss_sampler() {
    touch "$1"
    wait "$RSS_SAMPLER_PID" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Arithmetic / reporting (bash has no floats)
# ---------------------------------------------------------------------------

# calc EXPR: evaluate a float expression with python, print the result.
calc() { python3 -c "print($1)"; }

# kb_to_mb KB: KiB -> MiB with one decimal.
kb_to_mb() { calc "f'{$1 / 1024:.1f}'"; }

# median N...: median of numbers (mean of the two middle ones for even N).
median() {
    python3 -c 'import statistics, sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"
}

# check LHS OP RHS: print PASS or FAIL for a float comparison. (Only prints:
# it runs inside $(...), so it cannot set variables; report() records FAILs.)
check() {
    if python3 -c "import sys; sys.exit(0 if ($1) $2 ($3) else 1)"; then
        echo PASS
    else
        echo FAIL
    fi
}

# report BENCH METRIC VALUE TARGET STATUS: human line + machine line. A FAIL
# sets BENCH_FAILED so the script can exit 1 after reporting everything.
BENCH_FAILED=0
report() {
    printf '  %-34s %14s   target %-12s %s\n' "$2" "$3" "$4" "$5"
    [[ "$5" == FAIL ]] && BENCH_FAILED=1
    if [[ -n "${BENCH_RESULTS:-}" ]]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$BENCH_RESULTS"
    fi
    return 0
}

# ---------------------------------------------------------------------------
# nginx reference and load generators (share_page_vs_nginx.sh, gallery_vs_nginx.sh)
# ---------------------------------------------------------------------------

# ensure_tools: nginx, wrk and hey (apt-get when missing); sets NGINX_BIN.
# ensure_wrk: wrk (apt-get when missing, which needs root).
ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    [[ $EUID -eq 0 ]] || die "wrk missing; apt-get install wrk"
    log "installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk
}

# public_share URL TOKEN ASSET_ID TITLE: a public link to the asset; prints its share_url.
public_share() {
    local body
    body="$(python3 -c 'import json,sys; print(json.dumps({"share_type":"public","title":sys.argv[1]}))' "$4")"
    curl -sS --fail-with-body -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        -d "$body" "$1/api/v3/assets/$3/share/" | json_field share_url
}

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

# start_nginx_static WORKDIR: nginx serving a 2 KB static file; sets NGINX_URL.
start_nginx_static() {
    local work=$1 port
    mkdir -p "$work/www"
    head -c 2048 /dev/urandom | base64 -w 0 | head -c 2048 >"$work/www/static.txt"
    port="$(free_port)"
    write_nginx_conf "$work/nginx" "$port" "$work/www"
    "$NGINX_BIN" -p "$work/nginx/" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" </dev/null >"$work/nginx/out.log" 2>&1 &
    register_pid $!
    NGINX_URL="http://127.0.0.1:$port/static.txt"
    wait_http_ok "$NGINX_URL" 10 "$!" "$work/nginx/error.log"
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

# ---------------------------------------------------------------------------
# The shipped reverse proxy and CPU accounting (scale.sh)
# ---------------------------------------------------------------------------

# write_nginx_proxy_conf PREFIX PORT UPSTREAM...: nginx (one worker per core) running the site
# file we ship, deploy/nginx/vitrine.conf, unchanged but for its `listen` line (127.0.0.1:PORT)
# and the servers of `upstream vitrine` (one line per UPSTREAM host:port, with the options of
# the shipped first line).
write_nginx_proxy_conf() {
    local prefix=$1 port=$2 user_line=""
    shift 2
    [[ $EUID -eq 0 ]] && user_line="user root;"
    mkdir -p "$prefix/tmp"
    python3 - "$REPO_ROOT/deploy/nginx/vitrine.conf" "$prefix/site.conf" "127.0.0.1:$port" "$@" <<'PY' ||
import sys
src, out, listen, *upstreams = sys.argv[1:]
res, in_upstream, servers, listens = [], False, 0, 0
for line in open(src).read().splitlines():
    t = line.lstrip()
    indent = line[: len(line) - len(t)]
    if t.startswith("upstream vitrine"):
        in_upstream = True
    elif in_upstream and t.startswith("}"):
        in_upstream = False
    elif in_upstream and t.startswith("server "):
        if servers == 0:
            options = t.rstrip().rstrip(";").split()[2:]
            res += [f"{indent}server {u}{''.join(' ' + o for o in options)};" for u in upstreams]
        servers += 1
        continue
    elif t.startswith("listen "):
        if listens == 0:
            res.append(f"{indent}listen {listen};")
        listens += 1
        continue
    res.append(line)
if servers == 0 or listens == 0:
    sys.exit(f"{src}: no `server` line in `upstream vitrine`, or no `listen` line")
open(out, "w").write("\n".join(res) + "\n")
PY
        die "cannot adapt deploy/nginx/vitrine.conf"
    cat >"$prefix/nginx.conf" <<CONF
$user_line
daemon off;
worker_processes auto;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    include $prefix/site.conf;
}
CONF
}

# start_nginx_proxy PREFIX UPSTREAM...: the shipped proxy on a free port in front of the
# UPSTREAM instances, ready; sets NGINX_PROXY_URL and NGINX_PID (the master process).
start_nginx_proxy() {
    local prefix=$1 port
    shift
    port="$(free_port)"
    write_nginx_proxy_conf "$prefix" "$port" "$@"
    "$NGINX_BIN" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log" </dev/null >"$prefix/out.log" 2>&1 &
    NGINX_PID=$!
    register_pid "$NGINX_PID"
    NGINX_PROXY_URL="http://127.0.0.1:$port"
    wait_http_ok "$NGINX_PROXY_URL/healthz" 10 "$NGINX_PID" "$prefix/error.log"
}

# child_pids PID: the direct children of PID (nginx's workers), space separated.
child_pids() {
    python3 - "$1" <<'PY'
import os, sys
kids = []
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2 :].split()[1] == sys.argv[1]:
            kids.append(d)
print(" ".join(kids))
PY
}

# cpu_ticks PID: user + system CPU time of PID, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# busy_ticks: CPU ticks the whole machine has spent busy (all cores, /proc/stat).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# cpu_snapshot FILE NAME=PID[,PID...]...: user+system CPU ticks of every listed process, by
# name, the machine's busy ticks (/proc/stat, all cores) and the monotonic clock, as JSON in FILE.
cpu_snapshot() {
    python3 - "$@" <<'PY'
import json, sys, time
out, groups, wall = sys.argv[1], {}, time.monotonic()
for arg in sys.argv[2:]:
    name, _, pids = arg.partition("=")
    g = groups.setdefault(name, {})
    for pid in filter(None, pids.replace(" ", ",").split(",")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2 :].split()
        g[pid] = int(f[11]) + int(f[12])
cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
busy = sum(cpu[:8]) - cpu[3] - cpu[4]  # user nice system idle iowait irq softirq steal
json.dump({"groups": groups, "busy": busy, "wall": wall}, open(out, "w"))
PY
}

# cpu_diff BEFORE AFTER: "name seconds" per name, then "machine seconds" (CPU used in between
# by everything) and "window seconds" (wall time in between). A process that appeared in between
# counts from zero; one that ended in between is lost.
cpu_diff() {
    python3 - "$1" "$2" <<'PY'
import json, os, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
tick = os.sysconf("SC_CLK_TCK")
for name, pids in b["groups"].items():
    before = a["groups"].get(name, {})
    print(name, f"{sum(t - before.get(p, 0) for p, t in pids.items()) / tick:.3f}")
print("machine", f"{(b['busy'] - a['busy']) / tick:.3f}")
print("window", f"{b['wall'] - a['wall']:.3f}")
PY
}
