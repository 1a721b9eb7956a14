#!/usr/bin/env bash
# file_request_load: 50 uploaders at once on a file request (SPEC §11) against the same uploads
# to /api/v3/assets/.
#
# Starts the release server, creates a file request without limits, then runs the same burst
# twice per round (3 rounds, alternating): 50 clients each POSTing 4 distinct 1 MB PDFs, first to
# /api/v3/assets/ (with the token), then to /upload/{uuid}/files (anonymous). Reports the p99
# time to 201 of each side (all rounds pooled) and their ratio. Target: file request p99 <= 1.2x.
# The per-IP upload limit is raised for the run (every client is 127.0.0.1).
#
# Usage: bash bench/file_request_load.sh
# Env:   FR_CLIENTS (50), FR_PER_CLIENT (4), FR_ROUNDS (3), BENCH_SKIP_BUILD=1, VITRINE_BIN,
#        BENCH_TMPDIR, BENCH_RESULTS
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=file_request_load
CLIENTS="${FR_CLIENTS:-50}"
PER="${FR_PER_CLIENT:-4}"
ROUNDS="${FR_ROUNDS:-3}"
require_cmd curl python3 truncate
build_release
make_tmpdir work
VITRINE_EXTRA_ENV=(VITRINE_FILE_REQUEST_RATE_PER_IP_PER_MINUTE=1000000 VITRINE_MAX_CONNECTIONS_PER_IP=10000)
start_with_admin "$work/data" "$work/server.log"
token="$BENCH_TOKEN"
resp="$(curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"title": "Bench drop"}' "$VITRINE_URL/api/v3/file-requests/")" || die "file request: $resp"
uuid="$(json_field uuid <<<"$resp")"

: >"$work/assets.txt"
: >"$work/requests.txt"
for ((r = 1; r <= ROUNDS; r++)); do
    for side in a f; do
        for ((n = 0; n < CLIENTS; n++)); do
            for ((i = 0; i < PER; i++)); do
                make_pdf "$work/$side$r-$n-$i.pdf" $((1024 * 1024)) "$side-$r-$n-$i-$RANDOM"
            done
        done
    done
    python3 "$BENCH_DIR/issue20_client.py" burst "$VITRINE_URL" /api/v3/assets/ "$token" "$work/a$r" \
        "$CLIENTS" "$PER" >>"$work/assets.txt" || die "an asset upload was refused (see $work/assets.txt)"
    python3 "$BENCH_DIR/issue20_client.py" burst "$VITRINE_URL" "/upload/$uuid/files" - "$work/f$r" \
        "$CLIENTS" "$PER" >>"$work/requests.txt" || die "a file request upload was refused (see $work/requests.txt)"
    rm -f "$work"/a"$r"-*.pdf "$work"/f"$r"-*.pdf
    log "round $r done"
done
p99() { python3 -c 'import sys,statistics; v=sorted(float(l.split()[0]) for l in open(sys.argv[1])); print(f"{v[max(0, round(0.99*len(v))-1)]*1000:.1f}")' "$1"; }
a="$(p99 "$work/assets.txt")"
f="$(p99 "$work/requests.txt")"
ratio="$(calc "f'{$f / $a:.2f}'")"
echo
echo "file_request_load: $CLIENTS uploaders x $PER files of 1 MB, $ROUNDS rounds, p99 time to 201"
report "$BENCH" "p99 /api/v3/assets/ (ms)" "$a" "-" "info"
report "$BENCH" "p99 /upload/{uuid}/files (ms)" "$f" "-" "info"
report "$BENCH" "file request p99 / asset p99" "$ratio" "<= 1.2" "$(check "$ratio" '<=' 1.2)"
exit "$BENCH_FAILED"
