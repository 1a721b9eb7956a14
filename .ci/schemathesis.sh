#!/usr/bin/env bash
# Contract fuzzing of the HTTP API (issue 18, item 14): starts a `vitrine` on the embedded
# defaults (SQLite and local blobs in a temporary data dir, a free loopback port), signs in an
# admin made with `vitrine user create`, and runs schemathesis against /api/openapi.json with a
# bounded budget. Any server error (5xx), undocumented status or response that does not match
# its documented schema fails the run.
#
# Usage: .ci/schemathesis.sh   (from anywhere; builds the debug binary if needed)
#
# Knobs (environment):
#   SCHEMATHESIS_MAX_TIME      time budget of the run in seconds (default 120)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 20)
#   SCHEMATHESIS_SEED          random seed (default: fixed, so CI runs are repeatable)
#   SCHEMATHESIS_VENV          where the virtualenv lives (default ~/.cache/vitrine-ci/...)
#   VITRINE_BIN                the binary to test (default: cargo build --bin vitrine)
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-20}"
SEED="${SCHEMATHESIS_SEED:-20241204}"
VENV="${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vitrine-ci/schemathesis-$SCHEMATHESIS_VERSION}"

log() { printf '[schemathesis %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[schemathesis %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"

# A virtualenv with the pinned schemathesis from PyPI, made once and kept between runs.
ensure_schemathesis() {
    if [[ -x "$VENV/bin/schemathesis" ]] && "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
        log "schemathesis $SCHEMATHESIS_VERSION present in $VENV"
        return 0
    fi
    command -v python3 >/dev/null || die "python3 is needed for schemathesis"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
        log "installing python3-venv"
        apt-get update -q && apt-get install -y -q python3-venv
    fi
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    "$VENV/bin/schemathesis" --version
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

WORK=""
SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if ((rc != 0)) && [[ -n "$WORK" && -f "$WORK/server.log" ]]; then
        log "last lines of the server log:"
        tail -n 40 "$WORK/server.log" >&2 || true
    fi
    [[ -n "$WORK" ]] && rm -rf "$WORK"
    return "$rc"
}
trap cleanup EXIT

main() {
    ensure_schemathesis
    local bin="${VITRINE_BIN:-}"
    if [[ -z "$bin" ]]; then
        cargo build --quiet --bin vitrine
        bin="${CARGO_TARGET_DIR:-$REPO/target}/debug/vitrine"
    fi
    [[ -x "$bin" ]] || die "no vitrine binary at $bin"

    WORK="$(mktemp -d)"
    local port base
    port="$(free_port)"
    base="http://127.0.0.1:$port"
    # Only the embedded defaults and these: nothing from a vitrine.toml or the caller's VITRINE_*.
    local -a env_cmd=(env -i "PATH=$PATH" "HOME=$WORK" "VITRINE_DATA_DIR=$WORK/data"
        "VITRINE_LISTEN=127.0.0.1:$port" "VITRINE_PUBLIC_URL=$base")
    local password
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    # The password goes as an argument: VITRINE_NEW_USER_PASSWORD would also be read as a config key.
    (cd "$WORK" && "${env_cmd[@]}" "$bin" user create --email ci-admin@example.com --password "$password" \
        --name "CI admin" --role admin >"$WORK/user.log" 2>&1) ||
        { cat "$WORK/user.log" >&2; die "vitrine user create failed"; }

    (cd "$WORK" && exec "${env_cmd[@]}" "$bin" serve >"$WORK/server.log" 2>&1) &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 150; i++)); do
        if python3 -c "import urllib.request as u; u.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "vitrine exited at start"
        sleep 0.2
    done
    ((i < 150)) || die "vitrine did not answer /healthz within 30 s"

    local token
    token="$(BASE="$base" PASSWORD="$password" python3 -c '
import json, os, urllib.request
body = json.dumps({"email": "ci-admin@example.com", "password": os.environ["PASSWORD"]}).encode()
req = urllib.request.Request(os.environ["BASE"] + "/api/auth/login", data=body, headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=10))["access_token"])')"
    [[ -n "$token" ]] || die "could not sign in the admin"

    log "fuzzing $base/api/openapi.json (at most $MAX_EXAMPLES cases per operation, $MAX_TIME s, seed $SEED)"
    # .ci/schemathesis_hooks.py: a serializer for tus bodies (application/offset+octet-stream).
    PYTHONPATH="$REPO/.ci${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks \
    "$VENV/bin/schemathesis" run "$base/api/openapi.json" \
        --header "Authorization: Bearer $token" \
        --exclude-path /api/auth/logout \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance \
        --max-examples "$MAX_EXAMPLES" \
        --max-time "$MAX_TIME" \
        --workers 2 \
        --seed "$SEED" \
        --request-timeout 20 \
        --generation-database none \
        --suppress-health-check=filter_too_much \
        --no-color
}

main "$@"
