#!/usr/bin/env bash
# token_auth: what does a `vtr_` access token cost against a JWT? `GET /api/auth/me/` is loaded
# with wrk (8 connections, --latency) once with the admin's JWT and once with an access token of
# the same account (scope read), alternating, for TOKEN_BENCH_ROUNDS rounds of
# TOKEN_BENCH_SECONDS each. Reports the median p50 latency of each and their ratio.
#
# Target: p50 with the token / p50 with the JWT <= 1.2.
#
# Usage: bash bench/token_auth.sh
# Env:   TOKEN_BENCH_SECONDS (8), TOKEN_BENCH_ROUNDS (3), BENCH_SKIP_BUILD=1, VITRINE_BIN,
#        BENCH_TMPDIR, BENCH_RESULTS
# Installs: wrk with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=token_auth
DURATION="${TOKEN_BENCH_SECONDS:-8}"
ROUNDS="${TOKEN_BENCH_ROUNDS:-3}"
TARGET_RATIO=1.2

ensure_wrk
build_release
make_tmpdir work
start_with_admin "$work/data" "$work/server.log"
jwt="$BENCH_TOKEN"
token="$(curl -sS --fail-with-body -H "Authorization: Bearer $jwt" -H 'Content-Type: application/json' \
    -d '{"name":"bench","scopes":["read"]}' "$VITRINE_URL/api/auth/tokens/" | json_field token)"
[[ "$token" == vtr_* ]] || die "no access token: $token"

# p50_ms BEARER: p50 latency of GET /api/auth/me/ in ms.
p50_ms() {
    local out
    out="$(wrk -t2 -c8 -d"${DURATION}s" --latency -H "Authorization: Bearer $1" "$VITRINE_URL/api/auth/me/")"
    grep -q "Non-2xx" <<<"$out" && die "non-2xx answers: $out"
    awk '$1 == "50%" {
        v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000
        printf "%.3f\n", v }' <<<"$out"
}

p50_ms "$jwt" >/dev/null
declare -a with_jwt with_token
for ((r = 1; r <= ROUNDS; r++)); do
    with_jwt+=("$(p50_ms "$jwt")")
    with_token+=("$(p50_ms "$token")")
    log "round $r: p50 JWT ${with_jwt[-1]} ms, access token ${with_token[-1]} ms"
done
stop_pid "$VITRINE_PID"

j="$(median "${with_jwt[@]}")"
t="$(median "${with_token[@]}")"
echo
echo "$BENCH: GET /api/auth/me/, wrk -c8 --latency, ${DURATION}s per round, median of $ROUNDS rounds"
report "$BENCH" "p50 with a JWT (ms)" "$j" "reference" "info"
report "$BENCH" "p50 with a vtr_ token (ms)" "$t" "-" "info"
report "$BENCH" "ratio token / JWT" "$(calc "f'{$t / $j:.3f}'")" "<= $TARGET_RATIO" "$(check "$t / $j" "<=" "$TARGET_RATIO")"
exit "$BENCH_FAILED"
