#!/usr/bin/env bash
# upload_memory: does Vitrine stream uploads instead of buffering them?
#
# Starts the release server, measures idle RSS after a warm-up upload, then
# sends 16 concurrent 25 MB uploads and samples the server's RSS every 20 ms.
# A server that buffers bodies would grow by ~16 x 25 MB = 400 MB; a streaming
# one only by its per-request buffers. Target: growth <= 64 MB.
#
# Usage: bash bench/upload_memory.sh
# Env:   UPLOAD_CONCURRENCY (16), UPLOAD_SIZE_MB (25), BENCH_SKIP_BUILD=1,
#        VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS (see lib.sh)
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=upload_memory
N="${UPLOAD_CONCURRENCY:-16}"
SIZE_MB="${UPLOAD_SIZE_MB:-25}"
SIZE_BYTES=$((SIZE_MB * 1024 * 1024))
TARGET_GROWTH_MB=64

require_cmd curl python3 truncate
build_release

make_tmpdir work
port="$(free_port)"

# Distinct files (a tag in the header) so every upload has its own SHA-256:
# identical content could be deduplicated or rejected as a duplicate, which
# would make the run measure something else. truncate makes them sparse, so
# creating them costs no disk writes.
log "creating $N x ${SIZE_MB} MB PDF files"
for ((i = 1; i <= N; i++)); do
    make_pdf "$work/upload-$i.pdf" "$SIZE_BYTES" "file-$i-$RANDOM"
done
make_pdf "$work/warmup.pdf" $((1024 * 1024)) warmup

log "starting vitrine on port $port"
start_vitrine "$work/data" "$port" "$work/server.log"
wait_http_ok "$VITRINE_URL/readyz" 30 "$VITRINE_PID" "$work/server.log"
create_admin "$work/data" "$port" "$VITRINE_URL"
token="$(login "$VITRINE_URL")"

# Warm-up: the first upload initialises lazily-created state (db pool
# connections, blob dirs, allocator arenas). Counting that as "growth" would
# blame the upload path for one-off costs.
code="$(upload_asset "$VITRINE_URL" "$token" "$work/warmup.pdf" "$work/warmup.json")"
[[ "$code" == 201 ]] || die "warm-up upload answered HTTP $code: $(cat "$work/warmup.json" 2>/dev/null)"
sleep 1
idle_kb="$(proc_status_kb "$VITRINE_PID" VmRSS)"

# Reset VmHWM to the current RSS (writing 5 to clear_refs, Linux >= 4.0) so
# the high-water mark read at the end covers only the concurrent uploads and
# not start-up. If that is not permitted, VmHWM is the lifetime peak, which can
# only overstate growth.
hwm_note="since warm-up"
if ! { echo 5 >"/proc/$VITRINE_PID/clear_refs"; } 2>/dev/null; then
    hwm_note="process lifetime (clear_refs not permitted)"
fi

log "idle RSS $(kb_to_mb "$idle_kb") MB; starting $N concurrent uploads"
start_rss_sampler "$VITRINE_PID" "$work/rss.out" "$work/rss.stop"

upload_pids=()
t0=$EPOCHREALTIME
for ((i = 1; i <= N; i++)); do
    upload_asset "$VITRINE_URL" "$token" "$work/upload-$i.pdf" "$work/resp-$i.json" \
        >"$work/code-$i" &
    upload_pids+=("$!")
done
for pid in "${upload_pids[@]}"; do
    wait "$pid" || true
done
t1=$EPOCHREALTIME

stop_rss_sampler "$work/rss.stop"
kill -0 "$VITRINE_PID" 2>/dev/null || die "server died during the uploads (see $work/server.log)"
hwm_kb="$(proc_status_kb "$VITRINE_PID" VmHWM)"
read -r sampled_peak_kb samples <"$work/rss.out"

# Every upload must have been accepted with the full size, otherwise fast
# failures would make both the memory and the throughput look good.
failed=0
for ((i = 1; i <= N; i++)); do
    code="$(cat "$work/code-$i")"
    size="$(json_field size <"$work/resp-$i.json" 2>/dev/null || echo '?')"
    if [[ "$code" != 201 || "$size" != "$SIZE_BYTES" ]]; then
        warn "upload $i: HTTP $code, size $size: $(head -c 300 "$work/resp-$i.json" 2>/dev/null)"
        failed=$((failed + 1))
    fi
done
((failed == 0)) || die "$failed of $N uploads did not answer 201 with the right size"

# VmHWM catches spikes shorter than the 20 ms sampling period; take the max.
peak_kb=$((hwm_kb > sampled_peak_kb ? hwm_kb : sampled_peak_kb))
growth_mb="$(calc "f'{($peak_kb - $idle_kb) / 1024:.1f}'")"
wall_s="$(calc "f'{$t1 - $t0:.2f}'")"
rate="$(calc "f'{$N * $SIZE_MB / ($t1 - $t0):.1f}'")"

echo
echo "upload_memory: $N concurrent uploads of $SIZE_MB MB (MB = MiB)"
report "$BENCH" "idle RSS (MB)" "$(kb_to_mb "$idle_kb")" "-" "info"
report "$BENCH" "peak RSS, sampled every 20ms (MB)" "$(kb_to_mb "$sampled_peak_kb")" "-" "info"
report "$BENCH" "VmHWM, $hwm_note (MB)" "$(kb_to_mb "$hwm_kb")" "-" "info"
report "$BENCH" "RSS growth (MB)" "$growth_mb" "<= $TARGET_GROWTH_MB" \
    "$(check "$growth_mb" '<=' "$TARGET_GROWTH_MB")"
report "$BENCH" "wall time (s)" "$wall_s" "-" "info"
report "$BENCH" "aggregate upload (MB/s)" "$rate" "-" "info"
echo "  ($samples RSS samples; all $N uploads answered 201)"

exit "$BENCH_FAILED"
