#!/usr/bin/env bash
# soak: 10 minutes of mixed load (page views, downloads, uploads, comments over the
# collaboration socket) on a release server with the embedded defaults (SQLite + local blobs in
# a temp dir). Reports errors (target 0), RSS after 1 minute and at the end (target: growth
# under 20 % after the first minute) and the SQLite WAL's size (target: under 64 MiB).
# The driver is bench/soak.rs (`cargo bench --bench soak`); see its header for the load.
#
# Usage: bash bench/soak.sh
# Env:   SOAK_SECS (600), SOAK_VIEWS_PER_S (200), SOAK_DOWNLOADS_PER_S (40),
#        SOAK_UPLOADS_PER_S (4), SOAK_COMMENTS_PER_S (50), VITRINE_BIN, BENCH_SKIP_BUILD=1
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release --bin vitrine || exit 2
fi
exec cargo bench --bench soak -- --bench
