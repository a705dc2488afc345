#!/usr/bin/env bash
# Peak memory of watermarked downloads: one docgate (directory mode, embedded store) serving a
# several-hundred-page PDF with `watermark = true` to N concurrent downloads, each for its own
# recipient. Prints the process's resident memory (VmRSS) before, its peak (VmHWM) over the
# downloads, the copies' sizes, and checks every copy starts with the original's bytes.
#
#   benches/watermark.sh
#
# Environment (all optional):
#   BENCH_WORK=/tmp/docgate-watermark-bench   scratch directory
#   BENCH_PAGES=500       pages of the PDF
#   BENCH_DOWNLOADS=50    concurrent downloads
#   BENCH_RATE=           curl --limit-rate per download (e.g. 200k: downloads overlap for longer)
#   BENCH_WATERMARK=true  false: the same downloads unstamped, the baseline to compare against
#   DOCGATE_BIN           a prebuilt binary; unset: `cargo build --release` here
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-/tmp/docgate-watermark-bench}
PAGES=${BENCH_PAGES:-500}
DOWNLOADS=${BENCH_DOWNLOADS:-50}
RATE=${BENCH_RATE:-}
WATERMARK=${BENCH_WATERMARK:-true}
PORT=18180
ADMIN_PORT=18190
ADMIN_TOKEN=docgate-watermark-bench-admin-token-0123456789

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ -z ${DOCGATE_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --bin docgate >&2)
    DOCGATE_BIN=$REPO/target/release/docgate
fi

rm -rf "$WORK"
mkdir -p "$WORK/documents" "$WORK/copies"

# A PDF of $PAGES pages, each with its own content stream, and a classic xref table.
python3 - "$PAGES" "$WORK/documents/report.pdf" <<'PY'
import sys
pages, path = int(sys.argv[1]), sys.argv[2]
out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
offsets = {}
def obj(n, body):
    offsets[n] = len(out)
    out.extend(b"%d 0 obj\n" % n + body + b"\nendobj\n")
kids = " ".join("%d 0 R" % (10 + 2 * i) for i in range(pages))
obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
obj(2, ("<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 3 0 R >> >> >>" % (kids, pages)).encode())
obj(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman >>")
for i in range(pages):
    n = 10 + 2 * i
    obj(n, b"<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>" % (n + 1))
    lines = " ".join("0 -14 Td (Page %d, line %d of the report text.) Tj" % (i + 1, l) for l in range(40))
    data = ("BT /F1 11 Tf 72 740 Td %s ET" % lines).encode()
    obj(n + 1, b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
size = max(offsets) + 1
start = len(out)
out.extend(b"xref\n0 %d\n0000000000 65535 f\r\n" % size)
for n in range(1, size):
    out.extend(b"%010d 00000 n\r\n" % offsets[n] if n in offsets else b"0000000000 65535 f\r\n")
out.extend(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, start))
open(path, "wb").write(out)
PY
ORIGINAL=$(stat -c %s "$WORK/documents/report.pdf")
log "report.pdf: $PAGES pages, $ORIGINAL bytes"

cat > "$WORK/catalog.toml" <<TOML
[documents.report]
key = "report.pdf"
filename = "report.pdf"
title = "The report"
watermark = $WATERMARK
TOML

DOCGATE_LISTEN=127.0.0.1:$PORT DOCGATE_ADMIN_LISTEN=127.0.0.1:$ADMIN_PORT \
DOCGATE_PUBLIC_URL=http://127.0.0.1:$PORT DOCGATE_ADMIN_TOKEN=$ADMIN_TOKEN \
DOCGATE_CATALOG=$WORK/catalog.toml DOCGATE_DOCUMENTS_DIR=$WORK/documents \
DOCGATE_OUTBOX_DIR=$WORK/outbox DOCGATE_REQUEST_LOG=$WORK/requests.jsonl \
DOCGATE_CONFIRM_PAGE=off DOCGATE_LOG=warn \
DOCGATE_LIMIT_DOWNLOAD_PER_IP=100000/s DOCGATE_MAX_DOWNLOADS_PER_IP=100000 \
    "$DOCGATE_BIN" serve >"$WORK/docgate.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break
    sleep 0.1
done

# One link per recipient, minted by the admin API (its request is in the log: the stamp's address).
for i in $(seq "$DOWNLOADS"); do
    curl -fs -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
        -d "{\"email\": \"reader$i@example.com\", \"document\": \"report\"}" \
        "http://127.0.0.1:$ADMIN_PORT/admin/links" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["url"])'
done >"$WORK/links.txt"

rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$PID/status"; }
BEFORE=$(rss VmRSS)
HWM_BEFORE=$(rss VmHWM)
START=$(date +%s.%N)
i=0
CURLS=()
while read -r url; do
    i=$((i + 1))
    curl -fs ${RATE:+--limit-rate "$RATE"} -o "$WORK/copies/$i.pdf" "$url" &
    CURLS+=($!)
done <"$WORK/links.txt"
FAILED=0
for c in "${CURLS[@]}"; do wait "$c" || FAILED=$((FAILED + 1)); done
END=$(date +%s.%N)
PEAK=$(rss VmHWM)
AFTER=$(rss VmRSS)

OK=0
for f in "$WORK"/copies/*.pdf; do
    size=$(stat -c %s "$f")
    if cmp -s -n "$ORIGINAL" "$f" "$WORK/documents/report.pdf" &&
        { ((size > ORIGINAL)) || { [[ $WATERMARK == false ]] && ((size == ORIGINAL)); }; }; then
        OK=$((OK + 1))
    fi
done
COPY=$(stat -c %s "$WORK/copies/1.pdf")
printf 'pages\t%s\noriginal bytes\t%s\ncopy bytes\t%s (update %s)\ndownloads\t%s (%s whole copies, watermark %s)\n' \
    "$PAGES" "$ORIGINAL" "$COPY" "$((COPY - ORIGINAL))" "$DOWNLOADS" "$OK" "$WATERMARK"
printf 'RSS before (KiB)\t%s\npeak RSS before (KiB)\t%s\npeak RSS over the downloads (KiB)\t%s\nRSS after (KiB)\t%s\nwall (s)\t%s\n' \
    "$BEFORE" "$HWM_BEFORE" "$PEAK" "$AFTER" "$(python3 -c "print(round($END - $START, 2))")"
printf 'failed downloads\t%s\n' "$FAILED"
