#!/usr/bin/env bash
# share_page_weight: what issue 22's pages cost a recipient. Two measurements:
#
# 1. Throughput: the recipient's HTML page of an image link (`GET /share/{uuid}/`, signed out,
#    Accept: text/html) under wrk -c64, this build against a baseline build (the page before the
#    page shell, the owner panel and the viewer: BASELINE_REF, default 84852fb), alternating rounds, both servers started afresh for each round.
#    Target: this / baseline >= 0.95 (the owner panel must cost recipients nothing).
# 2. Page weight: the bytes a recipient's browser transfers for the image link's page (HTML, then
#    every stylesheet and script it references, never the image itself). Target < 30 KB. And the
#    PDF viewer: pdf.js is referenced by a PDF link's page and by no image link's page.
#
# Usage: bash bench/share_page_weight.sh
# Env:   BASELINE_BIN (a built baseline binary; else BASELINE_REF is built in a temporary worktree
#        with CARGO_TARGET_DIR=target/baseline), WEIGHT_BENCH_SECONDS (8), WEIGHT_BENCH_ROUNDS (5),
#        BENCH_SKIP_BUILD=1, VITRINE_BIN, BENCH_TMPDIR, BENCH_RESULTS
# Installs: wrk with apt-get when missing.
# Exit:  0 all targets met, 1 a target missed, 2 the benchmark itself failed.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH=share_page_weight
DURATION="${WEIGHT_BENCH_SECONDS:-8}"
ROUNDS="${WEIGHT_BENCH_ROUNDS:-5}"
BASELINE_REF="${BASELINE_REF:-84852fb}"
TARGET_RATIO=0.95
TARGET_KB=30

ensure_wrk
build_release
make_tmpdir work

baseline="${BASELINE_BIN:-}"
if [[ -z "$baseline" ]]; then
    log "building the baseline $BASELINE_REF (set BASELINE_BIN to skip)"
    git -C "$REPO_ROOT" worktree add -q --detach "$work/baseline-src" "$BASELINE_REF"
    on_exit "git -C '$REPO_ROOT' worktree remove --force '$work/baseline-src'"
    (cd "$work/baseline-src" && CARGO_TARGET_DIR="$REPO_ROOT/target/baseline" cargo build --release -q) ||
        die "baseline build failed"
    baseline="$REPO_ROOT/target/baseline/release/vitrine"
fi

# A PNG the server accepts (real pixels, decoded and thumbnailed like any photo).
python3 - "$work/photo.png" <<'PY'
import struct, sys, zlib
w, h = 640, 480
rows = b"".join(b"\x00" + bytes(v for x in range(w) for v in ((x * 7 + y) % 256, (y * 3) % 256, (x + y) % 256))
                for y in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
PY

new_bin="$VITRINE_BIN"
# serve BIN NAME: a server of BIN with an image link and a PDF link; sets URL_, IMG_, PDF_, PID_<NAME>.
serve() {
    local bin=$1 name=$2 token id code dir="$work/$2-${3:-0}"
    VITRINE_BIN="$bin"
    start_with_admin "$dir" "$dir.log"
    token="$BENCH_TOKEN"
    code="$(curl -s -o "$work/$name-img.json" -w '%{http_code}' -H "Authorization: Bearer $token" \
        -F "file=@$work/photo.png;type=image/png" -F "title=Photo" "$VITRINE_URL/api/v3/assets/")"
    [[ "$code" == 201 ]] || die "image upload answered $code: $(cat "$work/$name-img.json")"
    id="$(json_field id <"$work/$name-img.json")"
    printf -v "IMG_$name" '%s' "$(public_share "$VITRINE_URL" "$token" "$id" Photo)"
    make_pdf "$work/$name.pdf" 20000 "$name"
    code="$(upload_asset "$VITRINE_URL" "$token" "$work/$name.pdf" "$work/$name-pdf.json")"
    [[ "$code" == 201 ]] || die "PDF upload answered $code"
    id="$(json_field id <"$work/$name-pdf.json")"
    printf -v "PDF_$name" '%s' "$(public_share "$VITRINE_URL" "$token" "$id" Deck)"
    printf -v "URL_$name" '%s' "$VITRINE_URL"
    printf -v "PID_$name" '%s' "$VITRINE_PID"
}
serve "$baseline" base
serve "$new_bin" new

# weight PAGE_URL: bytes of the HTML and of every stylesheet and script it references.
weight() {
    python3 - "$1" <<'PY'
import re, sys, urllib.parse, urllib.request
page = sys.argv[1]
def get(u):
    req = urllib.request.Request(u, headers={"Accept": "text/html", "User-Agent": "Mozilla/5.0 Firefox/121.0"})
    with urllib.request.urlopen(req) as r:
        return r.read()
html = get(page)
total = len(html)
refs = re.findall(rb'<link[^>]+rel="stylesheet"[^>]*href="([^"]+)"', html) + re.findall(rb'<script[^>]+src="([^"]+)"', html)
seen = set()
for ref in refs:
    u = urllib.parse.urljoin(page, ref.decode())
    if u not in seen:
        seen.add(u)
        total += len(get(u))
print(total, len(seen))
PY
}
read -r img_bytes img_files <<<"$(weight "$IMG_new")"
read -r base_bytes _ <<<"$(weight "$IMG_base")"
img_html="$(curl -s -H 'Accept: text/html' "$IMG_new")"
pdf_html="$(curl -s -H 'Accept: text/html' "$PDF_new")"
grep -q 'pdf-viewer.js' <<<"$pdf_html" || die "the PDF link's page does not load the viewer"
pdfjs_on_image=0
grep -qE 'pdf-viewer\.js|pdfjs' <<<"$img_html" && pdfjs_on_image=1

declare -a r_base r_new u_base u_new
CLK_TCK="$(getconf CLK_TCK)"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r > 1)); then
        # Fresh servers every round: a server process keeps for its whole life whatever its start
        # dealt it (the same binary measured 36 or 30 us per request from one start to another,
        # steady within each), so each round gets a new draw for both.
        stop_pid "$PID_base"
        stop_pid "$PID_new"
        serve "$baseline" base "$r"
        serve "$new_bin" new "$r"
    fi
    for name in base new; do
        url_var="IMG_$name"
        pid_var="PID_$name"
        c0="$(cpu_ticks "${!pid_var}")"
        out="$(wrk -t2 -c64 -d"${DURATION}s" -H 'Accept: text/html' -H 'User-Agent: Mozilla/5.0 Firefox/121.0' "${!url_var}")"
        c1="$(cpu_ticks "${!pid_var}")"
        grep -q "Non-2xx" <<<"$out" && die "non-2xx answers from the $name page: $out"
        rps="$(awk '/Requests\/sec/ { print $2 }' <<<"$out")"
        reqs="$(awk '/requests in/ { print $1 }' <<<"$out")"
        us="$(calc "round(($c1 - $c0) * 1e6 / $CLK_TCK / $reqs, 1)")"
        if [[ $name == base ]]; then r_base+=("$rps"); u_base+=("$us"); else r_new+=("$rps"); u_new+=("$us"); fi
        log "round $r: $name $rps req/s, server CPU $us us per request"
    done
done
stop_pid "$PID_base"
stop_pid "$PID_new"
b="$(median "${r_base[@]}")"
n="$(median "${r_new[@]}")"
echo
echo "$BENCH: recipient's image-link page, this build vs $BASELINE_REF (wrk -c64, ${DURATION}s, median of $ROUNDS)"
report "$BENCH" "baseline page (req/s)" "$(calc "round($b)")" "reference" "info"
report "$BENCH" "this page (req/s)" "$(calc "round($n)")" "-" "info"
report "$BENCH" "baseline server CPU per request (us)" "$(median "${u_base[@]}")" "-" "info"
report "$BENCH" "this server CPU per request (us)" "$(median "${u_new[@]}")" "-" "info"
report "$BENCH" "ratio this / baseline" "$(calc "f'{$n / $b:.3f}'")" ">= $TARGET_RATIO" "$(check "$n / $b" ">=" "$TARGET_RATIO")"
report "$BENCH" "image page weight (KB, $img_files files)" "$(calc "f'{$img_bytes / 1024:.1f}'")" "< $TARGET_KB" "$(check "$img_bytes / 1024" "<" "$TARGET_KB")"
report "$BENCH" "baseline image page weight (KB)" "$(calc "f'{$base_bytes / 1024:.1f}'")" "-" "info"
report "$BENCH" "pdf.js on the image page" "$pdfjs_on_image" "0" "$(check "$pdfjs_on_image" "==" 0)"
exit "$BENCH_FAILED"
