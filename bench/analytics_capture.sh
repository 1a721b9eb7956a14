#!/usr/bin/env bash
# analytics_capture: what does analytics capture cost the share page? The same share page is
# loaded with wrk (64 connections) on a server with capture on and on one with capture off
# (VITRINE_ANALYTICS_ENABLED=false), in the same run. While capture is on, the events written
# per second are read from /metrics (vitrine_analytics_events_written_total).
#
# Targets: share page req/s with capture on >= 0.9 x with capture off; no event dropped; the
# events written while the page is loaded: >= 50,000/s when the machine serves that many requests
# (`cargo bench --bench analytics` also measures it with synthetic hits added to the same load).
#
# Usage: bash bench/analytics_capture.sh
# Env:   CAPTURE_BENCH_SECONDS (10), CAPTURE_BENCH_ROUNDS (3), BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS
# Installs: wrk with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=analytics_capture
DURATION="${CAPTURE_BENCH_SECONDS:-10}"
ROUNDS="${CAPTURE_BENCH_ROUNDS:-3}"
TARGET_RATIO=0.9

ensure_wrk
build_release
make_tmpdir work

metric() { # URL NAME: value of an unlabelled counter (0 when absent)
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'
}

# measure NAME ENABLED: prints "req/s written dropped"
measure() {
    local name=$1 enabled=$2 share_json share_url out rps w0 w1 d0 d1 asset_id code token
    export VITRINE_ANALYTICS_ENABLED="$enabled"
    start_with_admin "$work/$name" "$work/$name.log"
    token="$BENCH_TOKEN"
    make_pdf "$work/$name.pdf" 20000 "$name"
    code="$(upload_asset "$VITRINE_URL" "$token" "$work/$name.pdf" "$work/$name.asset.json")"
    [[ "$code" == 201 ]] || die "upload answered HTTP $code"
    asset_id="$(json_field id <"$work/$name.asset.json")"
    share_json="$(curl -sS --fail-with-body -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"share_type":"public"}' "$VITRINE_URL/api/v3/assets/$asset_id/share/")" || die "share: $share_json"
    share_url="$(json_field share_url <<<"$share_json")"
    wrk -t2 -c64 -d2s -H 'Accept: application/json' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0' "$share_url" >/dev/null
    sleep 1
    w0="$(metric "$VITRINE_URL" vitrine_analytics_events_written_total)"
    d0="$(metric "$VITRINE_URL" vitrine_analytics_events_dropped_total)"
    out="$(wrk -t2 -c64 -d"${DURATION}s" -H 'Accept: application/json' -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0' "$share_url")"
    grep -q "Non-2xx" <<<"$out" && die "non-2xx answers: $out"
    sleep 1
    w1="$(metric "$VITRINE_URL" vitrine_analytics_events_written_total)"
    d1="$(metric "$VITRINE_URL" vitrine_analytics_events_dropped_total)"
    rps="$(awk '/Requests\/sec/ { print $2 }' <<<"$out")"
    stop_pid "$VITRINE_PID"
    echo "$rps $(calc "($w1 - $w0) / $DURATION") $(calc "$d1 - $d0")"
}

# Rounds alternate on and off so that drift of the machine (turbo, neighbours) hits both sides;
# the figures are the medians of the rounds.
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ons=() offs=() ratios=() writtens=() dropped=0
for round in $(seq "$ROUNDS"); do
    log "round $round/$ROUNDS: capture on"
    read -r on_rps on_written on_dropped <<<"$(measure "on$round" true)"
    log "round $round/$ROUNDS: capture off"
    read -r off_rps _ _ <<<"$(measure "off$round" false)"
    log "round $round: on $on_rps req/s, off $off_rps req/s, $on_written events/s written, $on_dropped dropped"
    ons+=("$on_rps") offs+=("$off_rps") writtens+=("$on_written")
    ratios+=("$(calc "$on_rps / $off_rps")")
    dropped="$(calc "$dropped + $on_dropped")"
done
on_rps="$(echo "${ons[*]}" | median)"
off_rps="$(echo "${offs[*]}" | median)"
ratio="$(echo "${ratios[*]}" | median)"
on_written="$(echo "${writtens[*]}" | median)"

echo
echo "$BENCH: GET /share/{uuid}/ (JSON), wrk -c64, ${DURATION}s, capture on vs off, median of $ROUNDS rounds"
report "$BENCH" "share page, capture off (req/s)" "$(calc "round($off_rps)")" "reference" "info"
report "$BENCH" "share page, capture on (req/s)" "$(calc "round($on_rps)")" "-" "info"
report "$BENCH" "ratio on / off (median of rounds)" "$(calc "f'{$ratio:.3f}'")" ">= $TARGET_RATIO" "$(check "$ratio" ">=" "$TARGET_RATIO")"
report "$BENCH" "events written (events/s)" "$(calc "round($on_written)")" ">= 50000" "$(check "$on_written" ">=" "50000")"
report "$BENCH" "events dropped (all rounds)" "$dropped" "0" "$(check "$dropped" "==" "0")"
exit "$BENCH_FAILED"
