#!/usr/bin/env bash
# webhook_delivery: what do webhooks cost, and how fast are they? One server (SQLite, local
# storage), two accounts: the bench admin owns link A and has a webhook for `share.viewed`
# pointing at a local receiver (bench/webhook_receiver.rs, a small Rust HTTP server on the
# standard library, built here with rustc and started by bench/issue21_client.py, which sends the views: the
# harness should cost the machine little next to the server it measures, and the Python receiver
# took ~60 us of CPU per delivery); a second account owns link B, whose page wrk loads (64
# connections) for the whole round. In each round 10,000 views of link A are sent while B is
# under load. Each round measures "off" (no webhook anywhere: the same views, no events) and
# "on" (every view of A becomes a signed delivery to the receiver), in alternating order, each on
# a fresh server (empty data dir, the same accounts and links).
#
# Reports: events per second (10,000 / first view sent → last delivery received), p50 and p99
# from a view to its delivery, and B's requests per second with webhooks on against off: the
# target is the median of the rounds' ratios (each round's "on" and "off" are measured one after
# the other, so that the machine's drift over minutes — this VM's speed moves by 20 % from one
# minute to the next — weighs on both alike; the ratio of the medians is printed too); and
# where the CPU went (server, whole machine, the receiver), and the server's CPU per delivery.
# Targets: every event delivered once; page throughput on / off >= 0.9.
#
# Usage: bash bench/webhook_delivery.sh
# Env:   WEBHOOK_BENCH_EVENTS (10000), WEBHOOK_BENCH_SECONDS (15), WEBHOOK_BENCH_ROUNDS (7),
#        BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS, WEBHOOK_RECEIVER (a built
#        bench/webhook_receiver.rs: then it is not built here)
# Installs: wrk with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=webhook_delivery
EVENTS="${WEBHOOK_BENCH_EVENTS:-10000}"
DURATION="${WEBHOOK_BENCH_SECONDS:-15}"
ROUNDS="${WEBHOOK_BENCH_ROUNDS:-7}"
TARGET_RATIO=0.9
UA='User-Agent: Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0'

ensure_wrk
build_release
make_tmpdir work

# The receiver: standard library only, built here with plain rustc in a few seconds (even with
# BENCH_SKIP_BUILD=1), unless WEBHOOK_RECEIVER names one already.
if [[ -z "${WEBHOOK_RECEIVER:-}" ]]; then
    WEBHOOK_RECEIVER="$REPO_ROOT/target/bench-tools/webhook_receiver"
    mkdir -p "$(dirname "$WEBHOOK_RECEIVER")"
    log "rustc -O bench/webhook_receiver.rs"
    rustc -O --edition 2024 "$REPO_ROOT/bench/webhook_receiver.rs" -o "$WEBHOOK_RECEIVER" ||
        die "building the webhook receiver failed"
fi
[[ -x "$WEBHOOK_RECEIVER" ]] || die "no webhook receiver executable (got '$WEBHOOK_RECEIVER')"
export WEBHOOK_RECEIVER

VITRINE_EXTRA_ENV=(VITRINE_WEBHOOK_ALLOWED_HOSTS=127.0.0.1 VITRINE_LOGIN_RATE_PER_IP_PER_MINUTE=100)

# share_of TOKEN TAG: a public link to a new PDF of the token's account; prints its share_url.
share_of() {
    local token=$1 tag=$2 code id
    make_pdf "$work/$tag.pdf" 20000 "$tag"
    code="$(upload_asset "$VITRINE_URL" "$token" "$work/$tag.pdf" "$work/$tag.json")"
    [[ "$code" == 201 ]] || die "upload answered HTTP $code: $(cat "$work/$tag.json")"
    id="$(json_field id <"$work/$tag.json")"
    public_share "$VITRINE_URL" "$token" "$id" "$tag"
}

# fresh NAME: a new server on an empty data dir with the two accounts and links; sets admin,
# share_a, share_b. Every measurement gets its own: a server that has recorded a few million
# views answers more slowly than a new one, which would count against whichever mode comes later.
fresh() {
    local data="$work/$1"
    start_with_admin "$data" "$data.log"
    admin="$BENCH_TOKEN"
    # The second account, owner of the loaded link.
    vitrine_env "$data" "${VITRINE_URL##*:}"
    env "${VITRINE_ENV[@]}" "$VITRINE_BIN" user create --email load@example.com --password "$BENCH_PASSWORD" \
        --name "Load Owner" --role user >/dev/null
    other="$(curl -sS --fail-with-body -H 'Content-Type: application/json' \
        -d "{\"email\":\"load@example.com\",\"password\":\"$BENCH_PASSWORD\"}" "$VITRINE_URL/api/auth/login/" |
        json_field access_token)"
    share_a="$(share_of "$admin" "watched-$1")"
    share_b="$(share_of "$other" "loaded-$1")"
    wrk -t2 -c64 -d2s -H 'Accept: application/json' -H "$UA" "$share_b" >/dev/null
}

# round MODE: prints "rps server_cpu machine_cpu requests views_seconds events_per_second p50 p99
# delivered duplicates client_cpu receiver_cpu" (CPU in seconds over wrk's run).
round() {
    local mode=$1 out client s0 s1 m0 m1 hz
    hz="$(getconf CLK_TCK)"
    s0="$(cpu_ticks "$VITRINE_PID")"; m0="$(busy_ticks)"
    wrk -t2 -c64 -d"${DURATION}s" -H 'Accept: application/json' -H "$UA" "$share_b" >"$work/wrk.$mode" &
    local wrk_pid=$!
    sleep 1
    client="$(python3 "$BENCH_DIR/issue21_client.py" views "$VITRINE_URL" "$admin" "$share_a" "$EVENTS" 8 "$mode")" ||
        die "views ($mode) failed: $client"
    wait "$wrk_pid" || die "wrk failed"
    s1="$(cpu_ticks "$VITRINE_PID")"; m1="$(busy_ticks)"
    out="$(cat "$work/wrk.$mode")"
    grep -q "Non-2xx" <<<"$out" && die "non-2xx answers on link B: $out"
    echo "$(awk '/Requests\/sec/ { print $2 }' <<<"$out")" \
        "$(calc "f'{($s1 - $s0) / $hz:.2f}'")" "$(calc "f'{($m1 - $m0) / $hz:.2f}'")" \
        "$(awk '/requests in/ { print $1 }' <<<"$out")" "$client"
}

declare -a rps_off rps_on rate p50 p99 srv_off srv_on mach_off mach_on recv_cpu per_delivery pair
dupes_total=0
for ((r = 1; r <= ROUNDS; r++)); do
    # The order alternates: off then on in odd rounds, on then off in even ones.
    for mode in $( ((r % 2)) && echo "off on" || echo "on off"); do
        fresh "$mode-$r"
        if [[ $mode == off ]]; then
            read -r rps scpu mcpu reqs _ _ _ _ _ _ ccpu _ <<<"$(round off)"
            rps_off+=("$rps"); srv_off+=("$scpu"); mach_off+=("$mcpu")
            off_us_per_req="$(calc "f'{$scpu * 1e6 / $reqs:.1f}'")"
            log "round $r off: link B $rps req/s; CPU s: server $scpu (${off_us_per_req} us/page request), machine $mcpu, views client $ccpu"
        else
            read -r rps scpu mcpu reqs views_s ev p5 p9 got dupes ccpu rcpu <<<"$(round on)"
            rps_on+=("$rps"); rate+=("$ev"); p50+=("$p5"); p99+=("$p9")
            srv_on+=("$scpu"); mach_on+=("$mcpu"); recv_cpu+=("$rcpu")
            dupes_total=$((dupes_total + dupes))
            log "round $r on:  link B $rps req/s; $got events in ${views_s}s of views, $ev events/s, p50 $p5 ms, p99 $p9 ms"
            log "round $r on:  CPU s: server $scpu, machine $mcpu, views client $ccpu, receiver $rcpu"
            # The server's CPU for the deliveries: its CPU on, less what its page requests cost
            # (at this round's "off" cost per request, measured just before or after).
            on_reqs=$reqs; on_scpu=$scpu
        fi
        stop_pid "$VITRINE_PID"
    done
    pair+=("$(calc "f'{${rps_on[-1]} / ${rps_off[-1]}:.3f}'")")
    log "round $r: on / off ${pair[-1]}"
    per_delivery+=("$(calc "f'{($on_scpu - $off_us_per_req * $on_reqs / 1e6) * 1e6 / $EVENTS:.0f}'")")
    log "round $r: server CPU per delivery ~${per_delivery[-1]} us (on-round CPU less its page requests at the off-round cost)"
done

off="$(median "${rps_off[@]}")"
on="$(median "${rps_on[@]}")"
echo
echo "$BENCH: $EVENTS share.viewed events per round to a local receiver while wrk -c64 loads another link, median of $ROUNDS rounds"
report "$BENCH" "events delivered per round" "$EVENTS" "all" "PASS"
report "$BENCH" "duplicate deliveries" "$dupes_total" "0" "$(check "$dupes_total" "==" 0)"
report "$BENCH" "delivery rate (events/s)" "$(calc "round($(median "${rate[@]}"))")" "-" "info"
report "$BENCH" "view -> delivery p50 (ms)" "$(median "${p50[@]}")" "-" "info"
report "$BENCH" "view -> delivery p99 (ms)" "$(median "${p99[@]}")" "-" "info"
report "$BENCH" "server CPU s per round, off / on" "$(median "${srv_off[@]}") / $(median "${srv_on[@]}")" "-" "info"
report "$BENCH" "machine CPU s per round, off / on" "$(median "${mach_off[@]}") / $(median "${mach_on[@]}")" "-" "info"
report "$BENCH" "receiver CPU s per round" "$(median "${recv_cpu[@]}")" "-" "info"
report "$BENCH" "server CPU per delivery (us)" "$(median "${per_delivery[@]}")" "-" "info"
report "$BENCH" "page req/s, webhooks off" "$(calc "round($off)")" "reference" "info"
report "$BENCH" "page req/s, webhooks on" "$(calc "round($on)")" "-" "info"
report "$BENCH" "ratio of the medians on / off" "$(calc "f'{$on / $off:.3f}'")" "-" "info"
report "$BENCH" "ratio on / off (median of rounds)" "$(median "${pair[@]}")" ">= $TARGET_RATIO" "$(check "$(median "${pair[@]}")" ">=" "$TARGET_RATIO")"
exit "$BENCH_FAILED"
