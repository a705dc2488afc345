#!/usr/bin/env bash
# The download benchmark: docgate against nginx, side by side in one run, on loopback.
# See benches/README.md. Usage:
#
#   benches/download.sh [SUITE...]      # SUITES: dir s3fs s3fast ttfb paced redis cluster (default: all)
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
#   BENCH_PACE_MS=5  BENCH_PACED_CONNS=16   the paced suite: each connection's pause between requests
#   BENCH_HOP_BUFFER=256k    the nginx hop's proxy_buffer_size (what it relays through per request)
#   BENCH_SIZES_CLUSTER="100k 1m" BENCH_CLUSTER_CONNS=16   the cluster suite (directory mode)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
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
HOP_BUFFER=${BENCH_HOP_BUFFER:-256k}
SUITES=${*:-"dir s3fs s3fast ttfb paced redis cluster"}
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"
P_CLUSTER=()         # the 3 masters of the cluster suite's Redis Cluster: free ports, chosen then
CLUSTER_PIDS=()

suite_dir() {
    start_nginx ngx_off static.conf.in "$P_NGX_OFF" ROOT="$WORK/docs" SENDFILE=off
    start_nginx ngx_on static.conf.in "$P_NGX_ON" ROOT="$WORK/docs" SENDFILE=on
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_DIR; do
            for c in $CONNS; do
                run_nginx dir nginx-sendfile-off ngx_off "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_OFF/bench/$size.bin"
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
    start_nginx ngx_s3fs proxy.conf.in "$P_NGX_S3FS" UPSTREAM="127.0.0.1:$P_S3FS" HOP_BUFFER="$HOP_BUFFER"
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_S3; do
            for c in $CONNS; do
                CPU_PIDS="$(serving_pids $PID_s3fs)" run_wrk s3fs origin-direct "$size" "$c" "$rep" "http://127.0.0.1:$P_S3FS$(presigned "$size")"
                run_nginx s3fs nginx-proxy ngx_s3fs "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_S3FS$(presigned "$size")"
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
    start_nginx ngx_hop proxy.conf.in "$P_NGX_ORIGIN" UPSTREAM="127.0.0.1:$P_ORIGIN" HOP_BUFFER="$HOP_BUFFER"
    local rep size c
    for rep in $(seq "$REPS"); do
        for size in $SIZES_S3; do
            for c in $CONNS; do
                CPU_PIDS="$(serving_pids $PID_ngx_origin)" run_wrk s3fast origin-direct "$size" "$c" "$rep" "http://127.0.0.1:$P_ORIGIN/$BUCKET/bench/$size.bin"
                run_nginx s3fast nginx-proxy ngx_hop "$size" "$c" "$rep" "http://127.0.0.1:$P_NGX_ORIGIN/$BUCKET/bench/$size.bin"
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
# request at a time: the time one download takes). S3 mode is also run beside the tuned nginx hop
# in front of the same origin, the reference of the small documents' throughput and CPU.
suite_ttfb() {
    small_documents ttfb "${BENCH_TTFB_CONNS:-16 1}"
}

# The same at one paced load: c=16, each connection pausing BENCH_PACE_MS between its requests,
# so every side is offered about the same requests per second (16 ÷ 5 ms: 3,200/s at most), below
# what any of them can serve on this machine. The p50 is then a download's own time, Redis claim
# and completion included, rather than its wait behind the others on a saturated machine (the
# ttfb suite's c=16, where it goes as 16 ÷ requests per second).
suite_paced() {
    local PACE=${BENCH_PACE_MS:-5}
    small_documents paced "${BENCH_PACED_CONNS:-16}"
}

# small_documents SUITE CONNS: docgate in both modes at 100 KiB and each concurrency in CONNS,
# beside nginx from disk, the origin and the hop (wrk paced when PACE is set: run_wrk).
small_documents() {
    local suite=$1 conns=$2 rep c threads
    ensure_origin_files
    start_nginx ngx_off static.conf.in "$P_NGX_OFF" ROOT="$WORK/docs" SENDFILE=off
    start_nginx ngx_on static.conf.in "$P_NGX_ON" ROOT="$WORK/docs" SENDFILE=on
    start_nginx ngx_origin s3-origin.conf.in "$P_ORIGIN" ROOT="$WORK/origin" BUCKET="$BUCKET"
    start_nginx ngx_hop proxy.conf.in "$P_NGX_ORIGIN" UPSTREAM="127.0.0.1:$P_ORIGIN" HOP_BUFFER="$HOP_BUFFER"
    for rep in $(seq "$REPS"); do
        for c in $conns; do
            threads=$((c < THREADS ? c : THREADS))
            THREADS=$threads run_nginx "$suite" nginx-sendfile-off ngx_off 100k "$c" "$rep" "http://127.0.0.1:$P_NGX_OFF/bench/100k.bin"
            THREADS=$threads CPU_PIDS="$(serving_pids $PID_ngx_on)" run_wrk "$suite" nginx-sendfile-on 100k "$c" "$rep" "http://127.0.0.1:$P_NGX_ON/bench/100k.bin"
            THREADS=$threads run_docgate "$suite" dir 100k "$c" "$rep" docgate-dir
            THREADS=$threads run_nginx "$suite" s3fast-origin-direct ngx_origin 100k "$c" "$rep" "http://127.0.0.1:$P_ORIGIN/$BUCKET/bench/100k.bin"
            THREADS=$threads run_nginx "$suite" s3fast-nginx-proxy ngx_hop 100k "$c" "$rep" "http://127.0.0.1:$P_NGX_ORIGIN/$BUCKET/bench/100k.bin"
            THREADS=$threads run_docgate "$suite" s3fast 100k "$c" "$rep" docgate-s3fast
        done
    done
    stop_pid "$PID_ngx_hop"
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

# The machine's line, written down with the results: S3 mode's figures depend on rmem_max.
machine() {
    local rmem_max tcp_rmem
    rmem_max=$(cat /proc/sys/net/core/rmem_max 2>/dev/null || echo unknown)
    tcp_rmem=$(tr '\t' ' ' </proc/sys/net/ipv4/tcp_rmem 2>/dev/null || echo unknown)
    echo "machine: $(nproc) CPUs, $(uname -sr), net.core.rmem_max $rmem_max, net.ipv4.tcp_rmem $tcp_rmem"
}

main() {
    build
    prepare
    [[ -f $RESULTS ]] || printf 'suite\ttarget\tsize\tconns\trep\traw\trss_idle_kb\trss_peak_kb\tload1\n' >"$RESULTS"
    start_redis
    {
        echo "# $(date -u +%FT%TZ) suites: $SUITES; duration $DURATION, reps $REPS, threads $THREADS"
        echo "# $(machine)"
    } >>"$RESULTS"
    local s first=1
    for s in $SUITES; do
        if ((first)); then wait_quiet; else wait_quiet "$SUITE_QUIET_WAIT"; fi
        first=0
        log "suite $s"
        "suite_$s"
    done
    machine
    python3 "$HERE/summarize.py" "$RESULTS"
    if grep -q '^cluster'$'\t' "$RESULTS"; then python3 "$HERE/redis_stats.py" summary "$RESULTS"; fi
}

main
