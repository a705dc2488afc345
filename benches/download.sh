#!/usr/bin/env bash
# The download benchmark: docgate against nginx, side by side in one run, on loopback.
# See benches/README.md. Usage:
#
#   benches/download.sh [SUITE...]      # SUITES: dir s3fs s3fast ttfb redis cluster (default: all)
#
# Environment (all optional):
#   BENCH_WORK=/tmp/docgate-bench   scratch directory (files, logs, raw wrk output, results.tsv)
#   BENCH_DURATION=5s  BENCH_REPS=3  BENCH_THREADS=2  BENCH_TIMEOUT=20s   wrk settings
#   BENCH_QUIET_LOAD=0.5  BENCH_QUIET_WAIT=900   wait (seconds, at most) for a 1-minute load
#                                                average below this before measuring
#   BENCH_SUITE_QUIET_WAIT=120                   the same wait before each further suite
#   DOCGATE_BIN, ORIGIN_BIN   prebuilt binaries; unset: `cargo build --release` here
#   BENCH_SIZES_DIR="1m 10m" BENCH_SIZES_S3="10m 1m" BENCH_CONNS="16 256"
#   BENCH_DOCGATE_LOG=warn   docgate's DOCGATE_LOG (its log: run/docgate-<mode>.log)
#   BENCH_TTFB_CONNS="16 1"  concurrencies of the ttfb suite
#   BENCH_SIZES_CLUSTER="100k 1m" BENCH_CLUSTER_CONNS=16   the cluster suite (directory mode)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
WORK=${BENCH_WORK:-/tmp/docgate-bench}
DURATION=${BENCH_DURATION:-5s}
REPS=${BENCH_REPS:-3}
THREADS=${BENCH_THREADS:-2}
TIMEOUT=${BENCH_TIMEOUT:-20s}
QUIET_LOAD=${BENCH_QUIET_LOAD:-0.5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-900}
SUITE_QUIET_WAIT=${BENCH_SUITE_QUIET_WAIT:-120}
SIZES_DIR=${BENCH_SIZES_DIR:-"1m 10m"}
SIZES_S3=${BENCH_SIZES_S3:-"10m 1m"}
CONNS=${BENCH_CONNS:-"16 256"}
SIZES_CLUSTER=${BENCH_SIZES_CLUSTER:-"100k 1m"}
CLUSTER_CONNS=${BENCH_CLUSTER_CONNS:-16}
SUITES=${*:-"dir s3fs s3fast ttfb redis cluster"}

SECRET=docgate-benchmark-secret-0123456789abcdef
BUCKET=documents
S3_ACCESS_KEY=DOCGATEBENCHACCESSKEY
S3_SECRET_KEY=docgate-bench-secret-key-0123456789abcdef
# Loopback ports.
P_REDIS=16399
P_DOCGATE=18080
P_NGX_OFF=18090      # nginx from disk, sendfile off
P_NGX_ON=18091       # nginx from disk, sendfile on
P_S3FS=19000         # s3s-fs origin (examples/s3_origin.rs)
P_NGX_S3FS=18092     # nginx proxy hop -> s3s-fs
P_ORIGIN=19001       # nginx as a fast S3 origin (bucket directory)
P_NGX_ORIGIN=18093   # nginx proxy hop -> fast origin
P_CLUSTER=()         # the 3 masters of the cluster suite's Redis Cluster: free ports, chosen then

RUN=$WORK/run
RAW=$WORK/raw
RESULTS=$WORK/results.tsv
PIDS=()
CLUSTER_PIDS=()

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Bytes of each document.
size_bytes() {
    case $1 in 100k) echo $((100 * 1024)) ;; 1m) echo $((1024 * 1024)) ;; 10m) echo $((10 * 1024 * 1024)) ;; esac
}
# Links to mint for one run: 1.5 x duration x a rate docgate is not expected to exceed here.
links_for() {
    local secs=${DURATION%s} rate
    case $1 in 100k) rate=40000 ;; 1m) rate=6000 ;; 10m) rate=600 ;; esac
    echo $((rate * secs * 3 / 2))
}

wait_http() { # url [tries]
    local i
    for ((i = 0; i < ${2:-200}; i++)); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.05
    done
    return 1
}

wait_quiet() { # [max seconds]
    local waited=0 load max=${1:-$QUIET_WAIT}
    while :; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk -v l="$load" -v q="$QUIET_LOAD" 'BEGIN { exit !(l < q) }'; then
            log "load average $load: quiet"
            return 0
        fi
        if ((waited >= max)); then
            log "load average still $load after ${waited}s: measuring anyway"
            echo "# not quiet: load $load after ${waited}s" >>"$RESULTS"
            return 0
        fi
        sleep 15
        waited=$((waited + 15))
    done
}

build() {
    if [[ -z ${DOCGATE_BIN:-} || -z ${ORIGIN_BIN:-} ]]; then
        log "cargo build --release (docgate, then examples/s3_origin)"
        # Two builds: one would unify the dev-dependencies' features (tokio's test-util, ...)
        # into the docgate binary being measured.
        (cd "$REPO" && cargo build --release --bin docgate && cargo build --release --example s3_origin)
        local target
        target=$(cd "$REPO" && cargo metadata --no-deps --format-version 1 |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
        DOCGATE_BIN=${DOCGATE_BIN:-$target/release/docgate}
        ORIGIN_BIN=${ORIGIN_BIN:-$target/release/examples/s3_origin}
    fi
    [[ -x $DOCGATE_BIN && -x $ORIGIN_BIN ]] || die "missing $DOCGATE_BIN or $ORIGIN_BIN"
}

prepare() {
    mkdir -p "$WORK/docs/bench" "$RUN/tmp" "$RAW" "$WORK/origin"
    local s
    for s in 100k 1m 10m; do
        [[ -f $WORK/docs/bench/$s.bin ]] || head -c "$(size_bytes "$s")" /dev/urandom >"$WORK/docs/bench/$s.bin"
    done
    cat >"$WORK/catalog.toml" <<EOF
[documents.d100k]
key = "bench/100k.bin"
filename = "100k.bin"
title = "100 KiB"
content_type = "application/octet-stream"

[documents.d1m]
key = "bench/1m.bin"
filename = "1m.bin"
title = "1 MiB"
content_type = "application/octet-stream"

[documents.d10m]
key = "bench/10m.bin"
filename = "10m.bin"
title = "10 MiB"
content_type = "application/octet-stream"
EOF
    sed "s|@RUN@|$RUN|g" "$HERE/nginx/common.inc" >"$RUN/common.inc"
    [[ -f $RESULTS ]] || printf 'suite\ttarget\tsize\tconns\trep\traw\trss_idle_kb\trss_peak_kb\tload1\n' >"$RESULTS"
}

# nginx NAME TEMPLATE LISTEN_PORT [KEY=VALUE...]: renders benches/nginx/TEMPLATE and starts it.
start_nginx() {
    local name=$1 template=$2 port=$3 conf=$RUN/$1.conf kv
    shift 3
    sed -e "s|@RUN@|$RUN|g" -e "s|@NAME@|$name|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
        "$HERE/nginx/$template" >"$conf"
    for kv in "$@"; do sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$conf"; done
    nginx -p "$RUN" -c "$conf" -g 'daemon off;' 2>>"$RUN/$name.error.log" &
    PIDS+=($!)
    eval "PID_$name=$!"
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nginx $name did not start (see $RUN/$name.error.log)"
}

stop_pid() {
    local pid=$1 p rest=()
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
    PIDS=("${rest[@]}")
}

start_redis() {
    redis-server --bind 127.0.0.1 --port "$P_REDIS" --save '' --appendonly no \
        --maxmemory-policy noeviction --dir "$RUN" >"$RUN/redis.log" 2>&1 &
    PIDS+=($!)
    PID_redis=$!
    local i
    for ((i = 0; i < 100; i++)); do
        redis-cli -p "$P_REDIS" ping >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "redis-server did not start"
}
rcli() { redis-cli -p "$P_REDIS" "$@"; }

start_s3fs() {
    rm -f "$RUN/presigned.txt"
    "$ORIGIN_BIN" --root "$WORK/origin" --listen "127.0.0.1:$P_S3FS" --bucket "$BUCKET" \
        --seed "$WORK/docs/bench" --presign "$RUN/presigned.txt" >"$RUN/s3_origin.log" 2>&1 &
    PIDS+=($!)
    PID_s3fs=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q listening "$RUN/s3_origin.log" 2>/dev/null && return 0
        sleep 0.05
    done
    die "s3_origin did not start (see $RUN/s3_origin.log)"
}
# The bucket directory is filled by s3_origin's upload (so s3s-fs has its ETags too).
ensure_origin_files() {
    if [[ ! -f $WORK/origin/$BUCKET/bench/10m.bin ]]; then
        start_s3fs
        stop_pid "$PID_s3fs"
    fi
}
presigned() { awk -v k="bench/$1.bin" '$1 == k { print $2 }' "$RUN/presigned.txt"; }

# docgate MODE: dir | s3fs | s3fast. Started fresh for every run, so VmHWM is this run's peak.
start_docgate() {
    local mode=$1
    local env=(
        PATH="$PATH" HOME="$HOME"
        DOCGATE_LISTEN="127.0.0.1:$P_DOCGATE"
        DOCGATE_PUBLIC_URL="http://127.0.0.1:$P_DOCGATE"
        # The standalone Redis, unless the caller names another topology (the cluster suite).
        "${REDIS_ENV:-DOCGATE_REDIS_URL=redis://127.0.0.1:$P_REDIS/}"
        DOCGATE_TOKEN_SECRET="$SECRET"
        DOCGATE_PSEUDONYM_KEY="bench-pseudonym-key-0123456789abcdef"
        DOCGATE_DOWNLOAD_ATTEMPTS=1
        DOCGATE_LIMIT_DOWNLOAD_PER_IP=1000000/s
        # wrk's connections all come from 127.0.0.1: lift the per-client caps a real deployment
        # keeps, and the global one, so they measure the download path, not admission.
        DOCGATE_MAX_CONNECTIONS_PER_IP=1000000
        DOCGATE_MAX_DOWNLOADS_PER_IP=1000000
        DOCGATE_MAX_DOWNLOADS=1000000
        DOCGATE_LOG="${BENCH_DOCGATE_LOG:-warn}"
        DOCGATE_CATALOG="$WORK/catalog.toml"
        DOCGATE_DOCUMENTS_DIR="$WORK/docs"
        DOCGATE_OUTBOX_DIR="$RUN/outbox"
        DOCGATE_REQUEST_LOG="$RUN/requests.jsonl"
    )
    case $mode in
    dir) ;;
    s3fs | s3fast)
        local port=$P_S3FS
        [[ $mode == s3fast ]] && port=$P_ORIGIN
        env+=(
            DOCGATE_S3_BUCKET="$BUCKET" DOCGATE_S3_ENDPOINT="http://127.0.0.1:$port"
            AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY"
            AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" AWS_EC2_METADATA_DISABLED=true
        )
        ;;
    esac
    env -i "${env[@]}" "$DOCGATE_BIN" serve >>"$RUN/docgate-$mode.log" 2>&1 &
    PID_docgate=$!
    PIDS+=($PID_docgate)
    wait_http "http://127.0.0.1:$P_DOCGATE/readyz" 400 || die "docgate ($mode) not ready (see $RUN/docgate-$mode.log)"
}
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# CPU time (user + system, clock ticks) used so far by the given processes (all their threads).
cpu_ticks() {
    local p sum=0
    for p in "$@"; do
        sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
# The processes serving a target: nginx's workers, or docgate.
serving_pids() { # master-or-docgate pid
    local workers
    workers=$(pgrep -P "$1" | tr '\n' ' ')
    echo "${workers:-$1}"
}

# run SUITE TARGET SIZE CONNS REP URL [LINKS]: one wrk run, its output kept under raw/; with a
# links file, every request follows a fresh link from it (wrk-links.lua). With CPU_PIDS set, the
# CPU time those processes used during the run goes to raw/<run>.txt.cpu (seconds).
run_wrk() {
    local suite=$1 target=$2 size=$3 conns=$4 rep=$5 url=$6 links=${7:-}
    local raw=$RAW/$suite-$target-$size-c$conns-r$rep.txt load args=() t0
    [[ -n $links ]] && args=(-s "$HERE/wrk-links.lua" "$url" -- "$links" "$THREADS")
    [[ -n $links ]] || args=("$url")
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086 # CPU_PIDS is a list of pids
    t0=$(cpu_ticks ${CPU_PIDS:-})
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout "$TIMEOUT" --latency "${args[@]}" >"$raw" 2>&1 ||
        log "wrk failed: $raw"
    # shellcheck disable=SC2086
    [[ -z ${CPU_PIDS:-} ]] ||
        awk -v a="$t0" -v b="$(cpu_ticks $CPU_PIDS)" -v hz="$(getconf CLK_TCK)" \
            'BEGIN { printf "%.2f\n", (b - a) / hz }' >"$raw.cpu"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$suite" "$target" "$size" "$conns" "$rep" \
        "$raw" "${RSS_IDLE:--}" "${RSS_PEAK:--}" "$load" >>"$RESULTS"
    log "$suite $target $size c=$conns #$rep: $(grep -E 'Transfer/sec' "$raw" | tr -s ' ')"
}

# run_docgate SUITE MODE SIZE CONNS REP [TARGET]: fresh links, a fresh docgate, wrk over the
# links, and its peak RSS.
run_docgate() {
    local suite=$1 mode=$2 size=$3 conns=$4 rep=$5 target=${6:-docgate} links=$RUN/links.txt
    rcli flushall >/dev/null
    python3 "$HERE/mint.py" --secret "$SECRET" --doc "d$size" --count "$(links_for "$size")" \
        --out "$links" --redis-port "$P_REDIS" || die "minting failed"
    start_docgate "$mode"
    sleep 0.5
    RSS_IDLE=$(hwm_kb "$PID_docgate")
    CPU_PIDS=$PID_docgate run_wrk "$suite" "$target" "$size" "$conns" "$rep" "http://127.0.0.1:$P_DOCGATE" "$links"
    RSS_PEAK=$(hwm_kb "$PID_docgate")
    # Rewrite the line just written, now that the peak is known.
    sed -i '$ s|\t[^\t]*\t[^\t]*\t\([^\t]*\)$|\t'"$RSS_IDLE"'\t'"$RSS_PEAK"'\t\1|' "$RESULTS"
    stop_pid "$PID_docgate"
    unset RSS_IDLE RSS_PEAK
}

suite_dir() {
    start_nginx ngx_off static.conf.in "$P_NGX_OFF" ROOT="$WORK/docs" SENDFILE=off
    start_nginx ngx_on static.conf.in "$P_NGX_ON" ROOT="$WORK/docs" SENDFILE=on
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_DIR; do
            for c in $CONNS; do
                CPU_PIDS="$(serving_pids $PID_ngx_off)" run_wrk dir nginx-sendfile-off "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_OFF/bench/$size.bin"
                CPU_PIDS="$(serving_pids $PID_ngx_on)" run_wrk dir nginx-sendfile-on "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_ON/bench/$size.bin"
                run_docgate dir dir "$size" "$c" "$rep"
            done
        done
    done
    stop_pid "$PID_ngx_off"
    stop_pid "$PID_ngx_on"
}

suite_s3fs() {
    start_s3fs
    start_nginx ngx_s3fs proxy.conf.in "$P_NGX_S3FS" UPSTREAM="127.0.0.1:$P_S3FS"
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_S3; do
            for c in $CONNS; do
                CPU_PIDS="$(serving_pids $PID_s3fs)" run_wrk s3fs origin-direct "$size" "$c" "$rep" "http://127.0.0.1:$P_S3FS$(presigned "$size")"
                CPU_PIDS="$(serving_pids $PID_ngx_s3fs)" run_wrk s3fs nginx-proxy "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_S3FS$(presigned "$size")"
                run_docgate s3fs s3fs "$size" "$c" "$rep"
            done
        done
    done
    stop_pid "$PID_ngx_s3fs"
    stop_pid "$PID_s3fs"
}

suite_s3fast() {
    ensure_origin_files
    start_nginx ngx_origin s3-origin.conf.in "$P_ORIGIN" ROOT="$WORK/origin" BUCKET="$BUCKET"
    start_nginx ngx_hop proxy.conf.in "$P_NGX_ORIGIN" UPSTREAM="127.0.0.1:$P_ORIGIN"
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_S3; do
            for c in $CONNS; do
                CPU_PIDS="$(serving_pids $PID_ngx_origin)" run_wrk s3fast origin-direct "$size" "$c" "$rep" "http://127.0.0.1:$P_ORIGIN/$BUCKET/bench/$size.bin"
                CPU_PIDS="$(serving_pids $PID_ngx_hop)" run_wrk s3fast nginx-proxy "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_ORIGIN/$BUCKET/bench/$size.bin"
                run_docgate s3fast s3fast "$size" "$c" "$rep"
            done
        done
    done
    stop_pid "$PID_ngx_hop"
    stop_pid "$PID_ngx_origin"
}

# Latency of a 100 KiB download (wrk's latency: request sent to last byte read; for 100 KiB on
# loopback close to the time to first byte), docgate against its origin: at c=16 (the target's
# setting; with every side saturated it is mostly 16 / requests per second) and at c=1 (one
# request at a time: the time one download takes).
suite_ttfb() {
    ensure_origin_files
    start_nginx ngx_off static.conf.in "$P_NGX_OFF" ROOT="$WORK/docs" SENDFILE=off
    start_nginx ngx_on static.conf.in "$P_NGX_ON" ROOT="$WORK/docs" SENDFILE=on
    start_nginx ngx_origin s3-origin.conf.in "$P_ORIGIN" ROOT="$WORK/origin" BUCKET="$BUCKET"
    local rep c threads
    for rep in $(seq "$REPS"); do
        for c in ${BENCH_TTFB_CONNS:-16 1}; do
            threads=$((c < THREADS ? c : THREADS))
            THREADS=$threads CPU_PIDS="$(serving_pids $PID_ngx_off)" run_wrk ttfb nginx-sendfile-off 100k "$c" "$rep" "http://127.0.0.1:$P_NGX_OFF/bench/100k.bin"
            THREADS=$threads CPU_PIDS="$(serving_pids $PID_ngx_on)" run_wrk ttfb nginx-sendfile-on 100k "$c" "$rep" "http://127.0.0.1:$P_NGX_ON/bench/100k.bin"
            THREADS=$threads run_docgate ttfb dir 100k "$c" "$rep" docgate-dir
            THREADS=$threads CPU_PIDS="$(serving_pids $PID_ngx_origin)" run_wrk ttfb s3fast-origin-direct 100k "$c" "$rep" "http://127.0.0.1:$P_ORIGIN/$BUCKET/bench/100k.bin"
            THREADS=$threads run_docgate ttfb s3fast 100k "$c" "$rep" docgate-s3fast
        done
    done
    stop_pid "$PID_ngx_origin"
    stop_pid "$PID_ngx_on"
    stop_pid "$PID_ngx_off"
}

# Redis commands and round trips per download: INFO commandstats and total_reads_processed
# (one read event per request, or per pipelined batch, that docgate sends) around N downloads.
redis_count() { # label N: reads counters around N sequential downloads of links.txt
    local label=$1 n=$2 out=$WORK/redis-$1.txt before after
    rcli config resetstat >/dev/null
    before=$(rcli info stats | awk -F: '/^total_reads_processed/ { print $2 }' | tr -d '\r')
    local ok=0 code path
    while read -r path; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_DOCGATE$path")
        [[ $code == 200 ]] && ok=$((ok + 1))
    done < <(head -n "$n" "$RUN/links.txt")
    sleep 0.2
    after=$(rcli info stats | awk -F: '/^total_reads_processed/ { print $2 }' | tr -d '\r')
    {
        echo "downloads: $n, status 200: $ok"
        echo "read events (client requests or pipelined batches) per download: $(python3 -c "print(round(($after - $before - 1) / $n, 3))")"
        rcli info commandstats | tr -d '\r' | grep -E '^cmdstat_' |
            python3 -c '
import sys, re
n = int(sys.argv[1])
for line in sys.stdin:
    name, rest = line.strip().split(":", 1)
    calls = int(re.search(r"calls=(\d+)", rest).group(1))
    print(f"{name[8:]:>12}: {calls:7d} calls, {calls / n:.3f} per download")
' "$n"
    } | tee "$out" >&2
    log "$label: $out"
}

suite_redis() {
    local mode n=200
    for mode in dir s3fast; do
        if [[ $mode == s3fast ]]; then
            ensure_origin_files
            start_nginx ngx_origin s3-origin.conf.in "$P_ORIGIN" ROOT="$WORK/origin" BUCKET="$BUCKET"
        fi
        rcli flushall >/dev/null
        python3 "$HERE/mint.py" --secret "$SECRET" --doc d100k --count "$n" \
            --out "$RUN/links.txt" --redis-port "$P_REDIS" || die "minting failed"
        start_docgate "$mode"
        redis_count "$mode-100k-sequential" "$n"
        # The commands of one download, as Redis saw them.
        python3 "$HERE/mint.py" --secret "$SECRET" --doc d100k --count 1 \
            --out "$RUN/one.txt" --redis-port "$P_REDIS" || die "minting failed"
        timeout 3 redis-cli -p "$P_REDIS" monitor >"$WORK/redis-$mode-monitor.txt" &
        sleep 0.5
        curl -s -o /dev/null "http://127.0.0.1:$P_DOCGATE$(cat "$RUN/one.txt")"
        wait $! || true
        stop_pid "$PID_docgate"
        if [[ $mode == s3fast ]]; then stop_pid "$PID_ngx_origin"; fi
    done
    # Under load: a 10 MiB c=256 run, whose downloads last long enough to renew their leases.
    rcli flushall >/dev/null
    run_docgate_counted dir 10m 256
}

run_docgate_counted() { # mode size conns: one wrk run with commandstats around it
    local mode=$1 size=$2 conns=$3 out=$WORK/redis-$1-$2-c$3-wrk.txt raw
    rcli flushall >/dev/null
    python3 "$HERE/mint.py" --secret "$SECRET" --doc "d$size" --count "$(links_for "$size")" \
        --out "$RUN/links.txt" --redis-port "$P_REDIS" || die "minting failed"
    start_docgate "$mode"
    rcli config resetstat >/dev/null
    raw=$RAW/redis-$mode-$size-c$conns.txt
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout "$TIMEOUT" --latency \
        -s "$HERE/wrk-links.lua" "http://127.0.0.1:$P_DOCGATE" -- "$RUN/links.txt" "$THREADS" >"$raw" 2>&1 || true
    sleep 1.5 # let the downloads wrk cut off at the end settle (release their claims)
    local requests
    requests=$(awk '/requests in/ { print $1 }' "$raw")
    {
        echo "wrk: $(grep -E 'requests in|Non-2xx|Socket errors|links:' "$raw" | tr -s ' ' | paste -sd';')"
        rcli info commandstats | tr -d '\r' | grep -E '^cmdstat_' |
            python3 -c '
import sys, re
n = int(sys.argv[1])
for line in sys.stdin:
    name, rest = line.strip().split(":", 1)
    calls = int(re.search(r"calls=(\d+)", rest).group(1))
    print(f"{name[8:]:>12}: {calls:7d} calls, {calls / n:.3f} per completed download")
' "$requests"
    } | tee "$out" >&2
    stop_pid "$PID_docgate"
}

# N free loopback ports P in 20000-29999 whose cluster bus port P + 10000 is free too.
free_cluster_ports() {
    python3 - "$1" <<'EOF'
import random, socket, sys
want, found = int(sys.argv[1]), []
for _ in range(200):
    port = random.randrange(20000, 30000)
    socks = []
    try:
        for p in (port, port + 10000):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    if port not in found:
        found.append(port)
    if len(found) == want:
        print(*found)
        sys.exit(0)
sys.exit("no free ports")
EOF
}

# A 3-master Redis Cluster on free ports (no replicas, no persistence), as an operator creates one.
start_cluster() {
    local port i ok
    read -r -a P_CLUSTER <<<"$(free_cluster_ports 3)" || die "no free ports for the cluster"
    log "Redis Cluster on ports ${P_CLUSTER[*]}"
    for port in "${P_CLUSTER[@]}"; do
        rm -rf "$RUN/cluster-$port"
        mkdir -p "$RUN/cluster-$port"
        redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
            --cluster-config-file "nodes-$port.conf" --save '' --appendonly no \
            --maxmemory-policy noeviction --dir "$RUN/cluster-$port" >"$RUN/cluster-$port.log" 2>&1 &
        PIDS+=($!)
        CLUSTER_PIDS+=($!)
        for ((i = 0; i < 100; i++)); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
        ((i < 100)) || die "redis-server on $port did not start (see $RUN/cluster-$port.log)"
    done
    redis-cli --cluster create "${P_CLUSTER[@]/#/127.0.0.1:}" --cluster-yes \
        >"$RUN/cluster-create.log" 2>&1 || die "redis-cli --cluster create failed (see $RUN/cluster-create.log)"
    for ((i = 0; i < 200; i++)); do
        ok=0
        for port in "${P_CLUSTER[@]}"; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && ok=$((ok + 1))
        done
        ((ok == ${#P_CLUSTER[@]})) && return 0
        sleep 0.1
    done
    die "the Redis Cluster did not reach cluster_state:ok"
}
stop_cluster() {
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do stop_pid "$pid"; done
    CLUSTER_PIDS=()
}

# run_topology TOPOLOGY SIZE CONNS REP: fresh links in one standalone Redis or in the cluster, a
# fresh docgate (directory mode) on it, and wrk over the links, with INFO commandstats and INFO
# cpu of every master (redis_stats.py) just before and just after wrk.
run_topology() {
    local topo=$1 size=$2 conns=$3 rep=$4 links=$RUN/links.txt ports port raw mint=()
    raw=$RAW/cluster-docgate-$topo-$size-c$conns-r$rep.txt
    if [[ $topo == standalone ]]; then
        ports=("$P_REDIS")
        mint=(--redis-port "$P_REDIS")
        local REDIS_ENV="DOCGATE_REDIS_URL=redis://127.0.0.1:$P_REDIS/"
    else
        ports=("${P_CLUSTER[@]}")
        mint=(--cluster --redis-port "${P_CLUSTER[0]}")
        local REDIS_ENV
        REDIS_ENV="DOCGATE_REDIS_CLUSTER_URLS=$(printf 'redis://127.0.0.1:%s,' "${P_CLUSTER[@]}")"
        REDIS_ENV=${REDIS_ENV%,}
    fi
    for port in "${ports[@]}"; do redis-cli -p "$port" flushall >/dev/null; done
    python3 "$HERE/mint.py" --secret "$SECRET" --doc "d$size" --count "$(links_for "$size")" \
        --out "$links" "${mint[@]}" || die "minting failed"
    start_docgate dir
    sleep 0.5
    python3 "$HERE/redis_stats.py" snapshot "${ports[@]}" >"$raw.redis-before.json"
    CPU_PIDS=$PID_docgate run_wrk cluster "docgate-$topo" "$size" "$conns" "$rep" "http://127.0.0.1:$P_DOCGATE" "$links"
    python3 "$HERE/redis_stats.py" snapshot "${ports[@]}" >"$raw.redis-after.json"
    stop_pid "$PID_docgate"
}

# Downloads per second and Redis commands and CPU per download against one Redis and against a
# 3-master Redis Cluster, in the same run: how many downloads per second one shard carries.
suite_cluster() {
    start_cluster
    local rep size
    for rep in $(seq "$REPS"); do
        for size in $SIZES_CLUSTER; do
            run_topology standalone "$size" "$CLUSTER_CONNS" "$rep"
            run_topology cluster "$size" "$CLUSTER_CONNS" "$rep"
        done
    done
    stop_cluster
}

main() {
    build
    prepare
    start_redis
    {
        echo "# $(date -u +%FT%TZ) suites: $SUITES; duration $DURATION, reps $REPS, threads $THREADS"
    } >>"$RESULTS"
    local s first=1
    for s in $SUITES; do
        if ((first)); then wait_quiet; else wait_quiet "$SUITE_QUIET_WAIT"; fi
        first=0
        log "suite $s"
        "suite_$s"
    done
    python3 "$HERE/summarize.py" "$RESULTS"
    if grep -q '^cluster'$'\t' "$RESULTS"; then python3 "$HERE/redis_stats.py" summary "$RESULTS"; fi
}

main
