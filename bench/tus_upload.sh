#!/usr/bin/env bash
# tus_upload: a resumable upload (SPEC §12) against one plain multipart upload of the same size.
#
# Starts the release server, then alternately (3 rounds) uploads a 1 GiB PDF once as one
# multipart POST to /api/v3/assets/ (curl) and once over tus in 8 MiB PATCHes on one keep-alive
# connection (bench/issue20_client.py), the order swapped every round, after a `sync` (untimed)
# so that neither pays for the other's disk writeback. Each upload is a distinct file (own SHA-256).
# Ratio = median multipart time / median tus time. Target: >= 0.8.
#
# Usage: bash bench/tus_upload.sh
# Env:   TUS_SIZE_MB (1024), TUS_CHUNK_MB (8), TUS_ROUNDS (3), BENCH_SKIP_BUILD=1, VITRINE_BIN,
#        BENCH_TMPDIR, BENCH_RESULTS (see lib.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=tus_upload
SIZE_MB="${TUS_SIZE_MB:-1024}"
CHUNK_MB="${TUS_CHUNK_MB:-8}"
ROUNDS="${TUS_ROUNDS:-3}"
require_cmd curl python3 truncate
build_release
make_tmpdir work
VITRINE_EXTRA_ENV=(VITRINE_ASSET_MAX_BYTES=$(((SIZE_MB + 64) * 1024 * 1024)))
start_with_admin "$work/data" "$work/server.log"
token="$BENCH_TOKEN"

plain=()
resumable=()
for ((r = 1; r <= ROUNDS; r++)); do
    make_pdf "$work/plain-$r.pdf" $((SIZE_MB * 1024 * 1024)) "plain-$r-$RANDOM"
    make_pdf "$work/tus-$r.pdf" $((SIZE_MB * 1024 * 1024)) "tus-$r-$RANDOM"
    # Each timed upload starts from the same memory and disk state: nothing dirty left by the
    # files just made or by the previous upload (the disk's writeback would slow whichever upload
    # comes later), and the page cache emptied when we may (root): on a VM, a page cache grown by
    # every earlier upload into memory the guest never touched made each later upload slower,
    # plain or tus. The order alternates between rounds.
    for kind in $( ((r % 2)) && echo "plain tus" || echo "tus plain"); do
        sync
        if [[ -w /proc/sys/vm/drop_caches ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
        if [[ $kind == plain ]]; then
            t0=$EPOCHREALTIME
            code="$(upload_asset "$VITRINE_URL" "$token" "$work/plain-$r.pdf" "$work/plain-$r.json")"
            t1=$EPOCHREALTIME
            [[ "$code" == 201 ]] || die "multipart upload answered $code: $(head -c 300 "$work/plain-$r.json")"
            plain+=("$(calc "$t1 - $t0")")
        else
            read -r secs asset < <(python3 "$BENCH_DIR/issue20_client.py" tus "$VITRINE_URL" "$token" \
                "$work/tus-$r.pdf" $((CHUNK_MB * 1024 * 1024))) || die "tus upload failed"
            [[ "$asset" == /api/v3/assets/* ]] || die "tus upload did not end in an asset ($asset)"
            resumable+=("$secs")
        fi
    done
    log "round $r: multipart ${plain[-1]} s, tus $secs s"
    rm -f "$work/plain-$r.pdf" "$work/tus-$r.pdf"
done
p="$(median "${plain[@]}")"
t="$(median "${resumable[@]}")"
ratio="$(calc "f'{$p / $t:.2f}'")"
echo
echo "tus_upload: ${SIZE_MB} MB, tus in ${CHUNK_MB} MB PATCHes vs one multipart POST (median of $ROUNDS)"
report "$BENCH" "multipart upload (s)" "$(calc "f'{$p:.2f}'")" "-" "info"
report "$BENCH" "tus upload (s)" "$(calc "f'{$t:.2f}'")" "-" "info"
report "$BENCH" "tus speed / multipart speed" "$ratio" ">= 0.8" "$(check "$ratio" '>=' 0.8)"
exit "$BENCH_FAILED"
