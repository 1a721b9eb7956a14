#!/usr/bin/env bash
# cold_start: how fast is Vitrine ready to serve from nothing, and how small is
# it when idle?
#
# Each run starts the release binary on a fresh, empty data dir (so database
# creation and migrations are included) and measures the time from spawning
# the process to the first 200 from /readyz, polling every 2 ms from python
# (a curl loop would add a fork+exec per probe). Then it reads VmRSS.
# 5 runs, medians reported. Targets: ready < 150 ms, idle RSS < 30 MB.
#
# In-run reference: spawn-to-exit time of `vitrine --version`, the cost of
# just starting the process on this machine right now; the ratio shows how
# much of the start-up is Vitrine's own work.
#
# Usage: bash bench/cold_start.sh
# Env:   COLD_START_RUNS (5), COLD_START_SETTLE_MS (200: wait after ready
#        before reading RSS), BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR,
#        BENCH_RESULTS (see lib.sh)
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=cold_start
RUNS="${COLD_START_RUNS:-5}"
SETTLE_MS="${COLD_START_SETTLE_MS:-200}"
TARGET_READY_MS=150
TARGET_RSS_MB=30

require_cmd python3
build_release
make_tmpdir work

# Prints one line: "<ready_median_ms> <rss_median_kb> <version_median_ms>";
# per-run details go to stderr.
result="$(python3 - "$VITRINE_BIN" "$RUNS" "$work" "$SETTLE_MS" <<'PY'
import http.client, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

binary, runs, base, settle_ms = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
DEVNULL = subprocess.DEVNULL


def err(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def ready(port):
    """True on a 200 from /readyz; False while not listening or not ready."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/readyz")
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def stop(proc):
    # SIGTERM like a supervisor would; SIGKILL if shutdown hangs.
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        err("  server ignored SIGTERM for 10 s; killing")
        proc.kill()
        proc.wait()


def version_ms():
    t0 = time.perf_counter()
    subprocess.run([binary, "--version"], stdin=DEVNULL, stdout=DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


# Unmeasured first spawn: loads the binary into the page cache so neither the
# baseline nor run 1 pays for reading it from disk.
version_ms()
baseline = [version_ms() for _ in range(runs)]

ready_times, rss_values = [], []
for i in range(1, runs + 1):
    data_dir = tempfile.mkdtemp(prefix=f"data-{i}.", dir=base)  # fresh and empty
    log_path = os.path.join(base, f"server-{i}.log")  # outside the data dir
    port = free_port()
    env = dict(
        os.environ,
        VITRINE_LISTEN=f"127.0.0.1:{port}",
        VITRINE_DATA_DIR=data_dir,
        VITRINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        VITRINE_LOG_LEVEL=os.environ.get("VITRINE_LOG_LEVEL", "warn"),
    )
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "serve"], env=env, stdin=DEVNULL, stdout=log, stderr=log)
        try:
            while not ready(port):
                if proc.poll() is not None:
                    with open(log_path, errors="replace") as f:
                        err(f.read()[-3000:])
                    sys.exit(f"run {i}: server exited with {proc.returncode} before ready")
                if time.perf_counter() - t0 > 30:
                    sys.exit(f"run {i}: /readyz not 200 after 30 s")
                time.sleep(0.002)
            ms = (time.perf_counter() - t0) * 1000
            # Let start-up background tasks settle so "idle" is honest.
            time.sleep(settle_ms / 1000)
            kb = rss_kb(proc.pid)
        finally:
            if proc.poll() is None:
                stop(proc)
    shutil.rmtree(data_dir, ignore_errors=True)
    ready_times.append(ms)
    rss_values.append(kb)
    err(f"  run {i}: ready in {ms:.1f} ms, VmRSS {kb / 1024:.1f} MB")

err(f"  --version spawn baseline runs: {', '.join(f'{b:.1f}' for b in baseline)} ms")
print(f"{statistics.median(ready_times):.1f} {statistics.median(rss_values):.0f} "
      f"{statistics.median(baseline):.2f}")
PY
)" || die "cold start measurement failed"

read -r ready_ms rss_kb version_ms <<<"$result"
rss_mb="$(kb_to_mb "$rss_kb")"
ratio="$(calc "f'{$ready_ms / $version_ms:.1f}'")"

echo
echo "cold_start: median of $RUNS runs, empty data dir each (MB = MiB)"
report "$BENCH" "spawn -> /readyz 200 (ms)" "$ready_ms" "< $TARGET_READY_MS" \
    "$(check "$ready_ms" '<' "$TARGET_READY_MS")"
report "$BENCH" "idle RSS after ready (MB)" "$rss_mb" "< $TARGET_RSS_MB" \
    "$(check "$rss_mb" '<' "$TARGET_RSS_MB")"
report "$BENCH" "--version spawn baseline (ms)" "$version_ms" "reference" "info"
report "$BENCH" "ready / --version ratio" "${ratio}x" "-" "info"

exit "$BENCH_FAILED"
