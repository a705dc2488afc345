#!/usr/bin/env bash
# The link request benchmark: accepted `POST /api/download-requests` per second, each for a
# distinct valid address, on embedded defaults (file outbox, memory store, file request log) and
# with Redis and its durable mail queue drained to an SMTP sink. See benches/README.md. Usage:
#
#   benches/links.sh [SUITE...]       # SUITES: embedded redis (default: both)
#
# Environment (all optional):
#   BENCH_WORK=/tmp/docgate-links   scratch directory (logs, raw wrk output, results.tsv)
#   BENCH_DURATION=5s  BENCH_REPS=3  BENCH_THREADS=2  BENCH_LINK_CONNS="16 64"   wrk settings
#   BENCH_DOCGATE_LOG=warn   docgate's DOCGATE_LOG (its log: $BENCH_WORK/docgate-<suite>.log)
#   BENCH_RUN_DIR=$BENCH_WORK/run   where the outboxes and request logs go (deleted at the end)
#   BENCH_DRAIN_TIMEOUT=60   seconds to wait, at most, for the mail queue to drain (redis suite)
#   DOCGATE_BIN   a prebuilt binary; unset: `cargo build --release --bin docgate` here
# Every process listens on a free loopback port chosen at start, and is stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-/tmp/docgate-links}
DURATION=${BENCH_DURATION:-5s}
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_LINK_CONNS:-"16 64"}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-60}
SUITES=${*:-"embedded redis"}
SECRET=docgate-benchmark-secret-0123456789abcdef

RUN=${BENCH_RUN_DIR:-$WORK/run}
RAW=$WORK/raw
RESULTS=$WORK/results.tsv
PIDS=()

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$RUN"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # url [tries]
    local i
    for ((i = 0; i < ${2:-200}; i++)); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.05
    done
    return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# The link mails docgate has sent (`docgate_mail_total{outcome="sent"}` on the admin listener).
mails_sent() {
    curl -sf "http://127.0.0.1:$P_ADMIN/metrics" |
        awk '/^docgate_mail_total\{outcome="sent"\}/ { print $2; found = 1 } END { if (!found) print 0 }'
}

build() {
    if [[ -z ${DOCGATE_BIN:-} ]]; then
        log "cargo build --release --bin docgate"
        (cd "$REPO" && cargo build --release --bin docgate)
        DOCGATE_BIN=$(cd "$REPO" && cargo metadata --no-deps --format-version 1 |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/docgate
    fi
    [[ -x $DOCGATE_BIN ]] || die "missing $DOCGATE_BIN"
}

prepare() {
    # Each run writes its own outbox, and they are all deleted only when the script ends, never
    # before or between runs: for a minute or more after thousands of files are deleted, ext4
    # skips their inodes when creating files, and that search would dominate the next run.
    mkdir -p "$WORK/docs/bench" "$RUN" "$RAW"
    head -c 4096 /dev/urandom >"$WORK/docs/bench/4k.bin"
    cat >"$WORK/catalog.toml" <<CATALOG
[documents.d4k]
key = "bench/4k.bin"
filename = "4k.bin"
title = "4 KiB"
CATALOG
    [[ -f $RESULTS ]] || printf '# suite\tconns\trep\traw\tcpu_s\tmails\tdrain_s\n' >"$RESULTS"
}

start_redis() {
    P_REDIS=$(free_port)
    redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
        >"$WORK/redis.log" 2>&1 &
    PID_redis=$!
    PIDS+=("$PID_redis")
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "redis-server did not start"
}
start_smtp() {
    P_SMTP=$(free_port)
    # Debian's interpreter, which has python3-aiosmtpd (a `python3` earlier on PATH may not).
    /usr/bin/python3 -m aiosmtpd -n -c aiosmtpd.handlers.Sink -l "127.0.0.1:$P_SMTP" >"$WORK/smtp.log" 2>&1 &
    PID_smtp=$!
    PIDS+=("$PID_smtp")
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$P_SMTP") 2>/dev/null && return 0
        sleep 0.05
    done
    die "the SMTP sink did not start"
}

# A fresh docgate for one run (SUITE NAME), with its own outbox and request log, every limit raised: wrk's connections all come from
# 127.0.0.1, and each run's addresses are new.
start_docgate() {
    local suite=$1
    P_DOCGATE=$(free_port)
    P_ADMIN=$(free_port)
    OUTBOX=$RUN/outbox-$2
    local env=(
        PATH="$PATH" HOME="$HOME"
        DOCGATE_LISTEN="127.0.0.1:$P_DOCGATE"
        DOCGATE_ADMIN_LISTEN="127.0.0.1:$P_ADMIN"
        DOCGATE_PUBLIC_URL="http://127.0.0.1:$P_DOCGATE"
        DOCGATE_TOKEN_SECRET="$SECRET"
        DOCGATE_PSEUDONYM_KEY="bench-pseudonym-key-0123456789abcdef"
        DOCGATE_LIMIT_REQUEST_PER_IP=1000000/s
        DOCGATE_LIMIT_REQUEST_PER_EMAIL=1000000/s
        DOCGATE_LIMIT_REQUEST_PER_DOMAIN=1000000/s
        DOCGATE_LIMIT_MAIL=1000000/s
        DOCGATE_MAX_CONNECTIONS_PER_IP=1000000
        DOCGATE_LOG="${BENCH_DOCGATE_LOG:-warn}"
        DOCGATE_CATALOG="$WORK/catalog.toml"
        DOCGATE_DOCUMENTS_DIR="$WORK/docs"
        DOCGATE_OUTBOX_DIR="$OUTBOX"
        DOCGATE_REQUEST_LOG="$OUTBOX.jsonl"
    )
    if [[ $suite == redis ]]; then
        redis-cli -p "$P_REDIS" flushall >/dev/null
        env+=(DOCGATE_REDIS_URL="redis://127.0.0.1:$P_REDIS/" DOCGATE_SMTP_URL="smtp://127.0.0.1:$P_SMTP")
    fi
    env -i "${env[@]}" "$DOCGATE_BIN" serve >>"$WORK/docgate-$suite.log" 2>&1 &
    PID_docgate=$!
    PIDS+=("$PID_docgate")
    wait_http "http://127.0.0.1:$P_DOCGATE/healthz" 400 || die "docgate not ready (see $WORK/docgate-$suite.log)"
}

# run SUITE CONNS REP: one wrk run against a fresh docgate; then (redis) how long the queue took
# to deliver every accepted request's mail after wrk stopped.
run() {
    local suite=$1 conns=$2 rep=$3 raw=$RAW/$1-c$2-r$3.txt t0 t1 cpu mails=- drain=- accepted
    start_docgate "$suite" "$suite-c$conns-r$rep"
    sleep 0.5
    t0=$(cpu_ticks "$PID_docgate")
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency -s "$HERE/wrk-requests.lua" \
        "http://127.0.0.1:$P_DOCGATE" -- d4k "$THREADS" "$rep" >"$raw" 2>&1 || log "wrk failed: $raw"
    t1=$(cpu_ticks "$PID_docgate")
    cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
    accepted=$(awk '/^requests:/ { print $6 }' "$raw" | tr -d ,)
    if [[ $suite == redis ]]; then
        local start=$SECONDS now
        while :; do
            now=$(mails_sent)
            ((now >= accepted)) && break
            ((SECONDS - start >= DRAIN_TIMEOUT)) && { log "queue not drained: $now of $accepted"; break; }
            sleep 0.2
        done
        mails=$now
        drain=$((SECONDS - start))
    else
        mails=$(find "$OUTBOX" -name '*.eml' | wc -l)
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$suite" "$conns" "$rep" "$raw" "$cpu" "$mails" "$drain" >>"$RESULTS"
    log "$suite c=$conns #$rep: $(grep -E 'Requests/sec' "$raw" | tr -s ' ') $(grep '^requests:' "$raw") cpu ${cpu}s mails $mails drain ${drain}s"
    stop_pid "$PID_docgate"
}

summarize() {
    python3 - "$RESULTS" "${DURATION%s}" <<'PY'
import re, statistics, sys
from collections import defaultdict

def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

rows = defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    suite, conns, rep, raw, cpu, mails, drain = line.rstrip("\n").split("\t")
    text = open(raw).read()
    m = re.search(r"status 202 (\d+), other (\d+)", text)
    accepted, other = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    secs = float(sys.argv[2])
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    rows[(suite, int(conns))].append({
        "rate": accepted / secs, "other": other,
        "p50": ms(p50.group(1)) if p50 else float("nan"),
        "p99": ms(p99.group(1)) if p99 else float("nan"),
        "cpu_ms": float(cpu) * 1000 / accepted if accepted else float("nan"),
        "drain": None if drain == "-" else float(drain),
        # Mails delivered per second from the first request to the queue's last delivery.
        "delivered": None if drain == "-" else int(mails) / (secs + float(drain)),
    })
print("| suite | c | accepted/s | refused | p50 ms | p99 ms | docgate CPU ms/request | queue drained after wrk (s) | mails delivered/s |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for (suite, conns), runs in sorted(rows.items()):
    med = lambda k: statistics.median(r[k] for r in runs)
    drains = [r["drain"] for r in runs if r["drain"] is not None]
    drain = f"{statistics.median(drains):.0f}" if drains else "-"
    rates = [r["delivered"] for r in runs if r["delivered"] is not None]
    delivered = f"{statistics.median(rates):.0f}" if rates else "-"
    print(f"| {suite} | {conns} | {med('rate'):.0f} | {sum(r['other'] for r in runs)} | "
          f"{med('p50'):.2f} | {med('p99'):.2f} | {med('cpu_ms'):.3f} | {drain} | {delivered} |")
PY
}

build
prepare
for suite in $SUITES; do
    case $suite in
    embedded) ;;
    redis) start_redis; start_smtp ;;
    *) die "unknown suite $suite" ;;
    esac
    for rep in $(seq "$REPS"); do
        for c in $CONNS; do run "$suite" "$c" "$rep"; done
    done
done
summarize
