#!/bin/sh
# The cost of durable completion (DOCGATE_REDIS_WAIT_REPLICAS): N sequential downloads of a
# 1 KiB document over one keep-alive connection, WAIT off vs WAIT 1, with docgate, a Redis primary
# and its replica on loopback (ports 16400, 16401, 18400, 18401). Usage:
#   cargo build --release && benches/durable.sh            # N=300; DOCGATE_BIN=... for another build
set -eu
BIN=${DOCGATE_BIN:-target/release/docgate}
N=${N:-300}
W=$(mktemp -d)
trap 'kill $(cat "$W"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$W"' EXIT
mkdir -p "$W/documents"
head -c 1024 /dev/urandom > "$W/documents/doc.bin"
printf '[documents.doc]\nkey = "doc.bin"\nfilename = "doc.bin"\ntitle = "A document"\n' > "$W/catalog.toml"
redis-server --port 16400 --bind 127.0.0.1 --save '' --appendonly no --dir "$W" >/dev/null & echo $! > "$W/primary.pid"
until redis-cli -p 16400 PING >/dev/null 2>&1; do sleep 0.1; done
redis-server --port 16401 --bind 127.0.0.1 --save '' --appendonly no --dir "$W" --replicaof 127.0.0.1 16400 >/dev/null & echo $! > "$W/replica.pid"
i=0; until [ "$(redis-cli -p 16400 WAIT 1 100)" = 1 ]; do i=$((i+1)); [ $i -lt 100 ] || { echo "the replica did not sync" >&2; exit 1; }; done
export DOCGATE_REDIS_URL=redis://127.0.0.1:16400 DOCGATE_TOKEN_SECRET=0123456789abcdef0123456789abcdef \
  DOCGATE_PSEUDONYM_KEY=pseudonyms-0123456789abcdef012345 DOCGATE_CATALOG="$W/catalog.toml" \
  DOCGATE_DOCUMENTS_DIR="$W/documents" DOCGATE_PUBLIC_URL=http://127.0.0.1:18400 \
  DOCGATE_LISTEN=127.0.0.1:18400 DOCGATE_ADMIN_LISTEN=127.0.0.1:18401 DOCGATE_OUTBOX_DIR="$W/outbox" \
  DOCGATE_LIMIT_DOWNLOAD_PER_IP=100000/s RUST_LOG=warn
for wait in 0 1; do
  DOCGATE_REDIS_WAIT_REPLICAS=$wait "$BIN" serve >"$W/serve.log" 2>&1 & echo $! > "$W/docgate.pid"
  until curl -sf http://127.0.0.1:18401/readyz >/dev/null; do sleep 0.1; done
  i=0; : > "$W/links"
  while [ $i -lt "$N" ]; do "$BIN" link --email bench@example.org --document doc >> "$W/links" 2>/dev/null; i=$((i+1)); done
  sed 's|.*|url = "&"\noutput = "/dev/null"|' "$W/links" > "$W/curl.conf"
  start=$(date +%s.%N)
  curl -s -w '%{http_code}\n' -K "$W/curl.conf" > "$W/codes"
  end=$(date +%s.%N)
  ok=$(grep -c '^200$' "$W/codes" || true)
  echo "WAIT_REPLICAS=$wait: $ok/$N downloads 200, $(echo "($end-$start)*1000000/$N" | bc) µs per download, $(echo "$N/($end-$start)" | bc) downloads/s"
  kill "$(cat "$W/docgate.pid")"; wait "$(cat "$W/docgate.pid")" 2>/dev/null || true; rm "$W/docgate.pid"
done
