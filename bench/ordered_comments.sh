#!/usr/bin/env bash
# ordered_comments: socket comment throughput with comments stored in send order (and
# backpressure), against today's server, the commit before that change (26315a9), in a
# 50-member room (issue 17). Target: new / baseline >= 0.9, in delivered frames per server
# CPU-second.
#
# Both servers get the same client: the throughput part of `cargo bench --bench realtime`
# (REALTIME_PARTS=throughput; bench/realtime.rs says what it does: 50 sockets of 50 accounts, a
# comment every 29 ms and a cursor every 50 ms per socket, 1 s + REALTIME_THROUGHPUT_SECS), built
# from this worktree, with VITRINE_BIN pointing at one server binary or the other. The runs
# alternate (baseline, new, baseline, new, ...) so that drift of the machine falls on both.
# Reported: the median over the rounds of "per server core" for each binary, and the ratio
# new / baseline; each round's pair ratio too, and each run's in-run reference (the bench's own
# broadcast server at the same load), which shows how busy the machine was in that run.
#
# Usage: bash bench/ordered_comments.sh
# Env:   BASELINE_BIN  server binary of the baseline (default: built from BASELINE_REV)
#        BASELINE_REV  (26315a9); built in a detached worktree BASELINE_WORKTREE
#                      (default: $TMPDIR/vitrine-baseline-<rev>, kept for the next run) with
#                      CARGO_TARGET_DIR=BASELINE_TARGET (default: <worktree>/target)
#        VITRINE_BIN   the new server binary (default: `cargo build --release` here, then
#                      ${CARGO_TARGET_DIR:-target}/release/vitrine)
#        ORDERED_ROUNDS (2: baseline, new, baseline, new), REALTIME_THROUGHPUT_SECS (10)
# Exit:  0 target met, 1 missed, 2 the benchmark itself failed.
set -euo pipefail
caller_vitrine_bin="${VITRINE_BIN:-}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=ordered_comments
TARGET_RATIO=0.9
ROUNDS="${ORDERED_ROUNDS:-2}"
BASELINE_REV="${BASELINE_REV:-26315a9}"
export REALTIME_THROUGHPUT_SECS="${REALTIME_THROUGHPUT_SECS:-10}"
target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
[[ "$target_dir" == /* ]] || target_dir="$REPO_ROOT/$target_dir"

# The new server.
if [[ -n "$caller_vitrine_bin" ]]; then
    new_bin="$caller_vitrine_bin"
else
    log "cargo build --release (new server)"
    (cd "$REPO_ROOT" && cargo build --release) || die "release build failed"
    new_bin="$target_dir/release/vitrine"
fi
[[ -x "$new_bin" ]] || die "new server binary $new_bin is missing"

# The baseline server.
if [[ -n "${BASELINE_BIN:-}" ]]; then
    base_bin="$BASELINE_BIN"
else
    wt="${BASELINE_WORKTREE:-${TMPDIR:-/tmp}/vitrine-baseline-$BASELINE_REV}"
    if [[ ! -d "$wt" ]]; then
        log "git worktree add --detach $wt $BASELINE_REV"
        git -C "$REPO_ROOT" worktree add --detach "$wt" "$BASELINE_REV" >&2 || die "could not check out $BASELINE_REV"
    fi
    base_target="${BASELINE_TARGET:-$wt/target}"
    log "cargo build --release of $BASELINE_REV in $wt (CARGO_TARGET_DIR=$base_target)"
    (cd "$wt" && CARGO_TARGET_DIR="$base_target" cargo build --release) || die "baseline build failed"
    base_bin="$base_target/release/vitrine"
fi
[[ -x "$base_bin" ]] || die "baseline server binary $base_bin is missing"
new_bin="$(realpath "$new_bin")"
base_bin="$(realpath "$base_bin")"
[[ "$new_bin" != "$base_bin" ]] || die "VITRINE_BIN and BASELINE_BIN are the same file"

# The client, built once before the rounds so no build falls inside them.
log "cargo bench --bench realtime --no-run"
(cd "$REPO_ROOT" && cargo bench --bench realtime --no-run) >&2 || die "the realtime bench does not build"

make_tmpdir work
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, Linux $(uname -r)"
echo "new server:      $new_bin ($(git -C "$REPO_ROOT" describe --always --dirty))"
echo "baseline server: $base_bin ($BASELINE_REV)"
echo "client: REALTIME_PARTS=throughput cargo bench --bench realtime, REALTIME_THROUGHPUT_SECS=$REALTIME_THROUGHPUT_SECS, $ROUNDS rounds"

# run_one NAME BIN: one throughput run; prints "per_core frames_per_s ref_per_core light_per_core".
run_one() {
    local name=$1 bin=$2 out=$work/$1.$3.log rc=0 line
    log "round $3: $name ($bin); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd "$REPO_ROOT" && REALTIME_PARTS=throughput VITRINE_BIN="$bin" cargo bench --bench realtime) >"$out" 2>&1 || rc=$?
    # Exit 1 is the realtime bench's own 100,000-per-core target, not this one's.
    if ((rc > 1)) || ! line="$(grep -m1 '^throughput, 50 members: vitrine' "$out")"; then
        tail -n 30 "$out" >&2
        die "$name run $3 failed (exit $rc)"
    fi
    {
        echo "  [$name, round $3] $line"
        grep -m1 '^throughput diagnostic, light load' "$out" | sed 's/^/    /'
        grep -E '^    (vitrine|reference, same load): sent' "$out" | sed 's/^/  /'
        grep -E '^vitrine log:' "$out" | sed 's/^/    /'
    } >&2
    python3 - "$line" "$(grep -m1 '^throughput diagnostic, light load' "$out" || true)" <<'PY'
import re, sys
line, light = sys.argv[1], sys.argv[2]
m = re.search(r'vitrine (\d+) frames/s = (\d+) per server core .*reference same load \d+ frames/s = (\d+) per server core', line)
if not m:
    sys.exit("cannot parse: " + line)
l = re.search(r'= (\d+) per server CPU-second, reference', light)
print(m.group(2), m.group(1), m.group(3), l.group(1) if l else "nan")
PY
}

base_pc=() new_pc=() pair=()
for ((r = 1; r <= ROUNDS; r++)); do
    # Assignments first: a failed run then stops the script (set -e), which `read <<<` would not.
    b_out="$(run_one baseline "$base_bin" "$r")"
    n_out="$(run_one new "$new_bin" "$r")"
    read -r b_pc b_fps b_ref b_light <<<"$b_out"
    read -r n_pc n_fps n_ref n_light <<<"$n_out"
    base_pc+=("$b_pc")
    new_pc+=("$n_pc")
    pair+=("$(calc "f'{$n_pc / $b_pc:.3f}'")")
    printf 'round %d: baseline %s frames/s = %s per server core (reference %s; light load %s), new %s frames/s = %s per server core (reference %s; light load %s): new/baseline %s\n' \
        "$r" "$b_fps" "$b_pc" "$b_ref" "$b_light" "$n_fps" "$n_pc" "$n_ref" "$n_light" "${pair[-1]}"
done

b_med="$(median "${base_pc[@]}")"
n_med="$(median "${new_pc[@]}")"
ratio="$(calc "f'{$n_med / $b_med:.3f}'")"
status="$(check "$ratio" '>=' "$TARGET_RATIO")"
echo
echo "ordered comments, 50-member room, frames per server CPU-second (median of $ROUNDS runs each):"
report "$BENCH" "baseline $BASELINE_REV (per server core)" "$(calc "round($b_med)")" "reference" ""
report "$BENCH" "new (per server core)" "$(calc "round($n_med)")" "" ""
report "$BENCH" "new / baseline (rounds: ${pair[*]})" "$ratio" ">= $TARGET_RATIO" "$status"
if [[ "$status" == PASS ]]; then
    echo "ordered_comments: target met"
else
    echo "ordered_comments: target MISSED"
fi
exit "$BENCH_FAILED"
