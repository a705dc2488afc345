#!/usr/bin/env bash
# The overload benchmark: docgate on its default admission settings under c=1024 downloads, each
# through a fresh single-use link, while a prober asks the admin listener's `/healthz` every
# 100 ms over a fresh connection (as a kubelet does), and, in turn with it, a control: an nginx
# that answers `/healthz` and nothing else, so the machine's own probe latency under the same load
# is measured beside docgate's. See benches/README.md. Usage:
#
#   benches/overload.sh [MODE...]      # MODES: dir s3fast (default: both)
#
# Environment (all optional):
#   BENCH_WORK=/tmp/docgate-overload   scratch directory (files, logs, raw output, results.tsv)
#   BENCH_DURATION=30s  BENCH_REPS=1  BENCH_THREADS=2   wrk settings
#   BENCH_TIMEOUT=120s   wrk --timeout: a download served slower than this counts as wrk's
#                        "timeout" (wrk counts it when the answer completes: served, but late)
#   BENCH_CONNS="1024"   wrk connections; above DOCGATE_MAX_DOWNLOADS (1024) some must be refused
#   BENCH_SIZES="10m 1m"
#   BENCH_PROBE_INTERVAL=0.1   seconds between two admin /healthz probes
#   BENCH_PROBE_NICE=0   the prober's niceness (negative, as root: a prober the load does not
#                        starve, as a kubelet on its reserved CPU; both servers are probed by it)
#   BENCH_QUIET_LOAD=0.5  BENCH_QUIET_WAIT=0   wait (seconds, at most) for a quiet machine first
#   BENCH_DOCGATE_LOG=warn   docgate's DOCGATE_LOG (its log: run/docgate-<mode>.log)
#   DOCGATE_BIN, ORIGIN_BIN   prebuilt binaries; unset: `cargo build --release` here
#
# docgate keeps its defaults (DOCGATE_MAX_DOWNLOADS=1024, DOCGATE_MAX_CONNECTIONS=4096, the
# timeouts and the slowest-download floor) except three per-client caps: wrk's connections all
# come from one address, 127.0.0.1, so the per-client caps (64 connections, 8 downloads at once,
# 60 downloads a minute) would refuse all but a handful of its requests and measure one client's
# budget, not the process under overload. Real clients come from many addresses; behind a proxy
# they are told apart by X-Forwarded-For, and the per-client refusals (429) have their own tests.
# Ports differ from download.sh's, so both can run on one machine.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${BENCH_WORK:-/tmp/docgate-overload}
DURATION=${BENCH_DURATION:-30s}
REPS=${BENCH_REPS:-1}
THREADS=${BENCH_THREADS:-2}
TIMEOUT=${BENCH_TIMEOUT:-120s}
CONNS=${BENCH_CONNS:-1024}
SIZES=${BENCH_SIZES:-"10m 1m"}
PROBE_INTERVAL=${BENCH_PROBE_INTERVAL:-0.1}
PROBE_NICE=${BENCH_PROBE_NICE:-0}
QUIET_LOAD=${BENCH_QUIET_LOAD:-0.5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
MODES=${*:-"dir s3fast"}

P_REDIS=16499
P_DOCGATE=18280
P_ADMIN=18281
P_ORIGIN=19201
P_S3FS=19200
P_CONTROL=18282
# shellcheck source=benches/lib.sh
source "$HERE/lib.sh"

DOCGATE_ADMISSION=(
    DOCGATE_MAX_CONNECTIONS_PER_IP=1000000
    DOCGATE_MAX_DOWNLOADS_PER_IP=1000000
    DOCGATE_LIMIT_DOWNLOAD_PER_IP=1000000/s
)
DOCGATE_EXTRA_ENV=(DOCGATE_ADMIN_LISTEN="127.0.0.1:$P_ADMIN")

# Links for one run: what wrk can use at the download rate, plus, when wrk holds more
# connections than docgate admits downloads, what the refused requests use (a refusal is fast,
# each one takes the next link, and spends none).
overload_links() { # size conns
    local n secs=${DURATION%s}
    n=$(links_for "$1")
    (($2 > 1024)) && n=$((n + 20000 * secs))
    echo "$n"
}

admin_metric() { # name: its value now (0 when absent)
    { curl -sf "http://127.0.0.1:$P_ADMIN/metrics" || true; } |
        awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

# run_overload MODE SIZE CONNS REP: fresh links, a fresh docgate, the prober and a sampler of
# docgate_downloads_in_flight, wrk; then the metrics, VmHWM, CPU and kernel counters.
run_overload() {
    local mode=$1 size=$2 conns=$3 rep=$4 links=$RUN/links.txt
    local name=$mode-$size-c$conns-r$rep raw probe_pid sampler_pid rss_before hwm_idle t0 load i
    raw=$RAW/$name.txt
    rcli flushall >/dev/null
    python3 "$HERE/mint.py" --secret "$SECRET" --doc "d$size" --count "$(overload_links "$size" "$conns")" \
        --out "$links" --redis-port "$P_REDIS" || die "minting failed"
    start_docgate "$mode"
    wait_http "http://127.0.0.1:$P_ADMIN/healthz" 200 || die "docgate's admin listener is not up"
    sleep 0.5
    rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$PID_docgate/status")
    hwm_idle=$(hwm_kb "$PID_docgate")
    nice -n "$PROBE_NICE" python3 "$HERE/overload.py" probe --port "$P_ADMIN" --control-port "$P_CONTROL" \
        --interval "$PROBE_INTERVAL" --out "$raw.probe" --max-seconds $((${DURATION%s} + 60)) &
    probe_pid=$!
    PIDS+=("$probe_pid")
    # The most downloads streaming at once, seen every half second.
    (
        max=0
        for ((i = 0; i < (${DURATION%s} + 10) * 2; i++)); do
            v=$(admin_metric docgate_downloads_in_flight)
            ((v > max)) && max=$v && echo "$max" >"$raw.streams"
            sleep 0.5
        done
    ) &
    sampler_pid=$!
    PIDS+=("$sampler_pid")
    nstat -asz >"$raw.nstat-before" 2>/dev/null || true
    head -1 /proc/stat >"$raw.stat-before"
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(cpu_ticks "$PID_docgate")
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout "$TIMEOUT" --latency \
        -s "$HERE/wrk-links.lua" "http://127.0.0.1:$P_DOCGATE" -- "$links" "$THREADS" >"$raw" 2>&1 ||
        log "wrk failed: $raw"
    secs_between "$t0" "$(cpu_ticks "$PID_docgate")" >"$raw.cpu"
    nstat -asz >"$raw.nstat-after" 2>/dev/null || true
    head -1 /proc/stat >"$raw.stat-after"
    # The downloads wrk left open at its end are cut by its exit: let them settle (counted as
    # interrupted) before reading the counts.
    sleep 2
    stop_pid "$probe_pid"
    stop_pid "$sampler_pid"
    curl -sf "http://127.0.0.1:$P_ADMIN/metrics" >"$raw.metrics" || die "no metrics from docgate"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$size" "$conns" "$rep" \
        "$raw" "$raw.probe" "$raw.metrics" "$rss_before" "$hwm_idle" "$(hwm_kb "$PID_docgate")" \
        "$(cat "$raw.cpu")" "$(cat "$raw.streams" 2>/dev/null || echo 0)" "$load" >>"$RESULTS"
    log "$name: $(grep -E 'Transfer/sec|Socket errors|Non-2xx' "$raw" | tr -s ' ' | paste -sd';')"
    stop_pid "$PID_docgate"
}

main() {
    # wrk holds CONNS sockets, docgate as many again (and, in S3 mode, one to the origin per
    # download): raise the open-file limit both inherit.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    local need=$((2 * $(tr ' ' '\n' <<<"$CONNS" | sort -n | tail -1) + 1024))
    (($(ulimit -n) >= need)) || die "ulimit -n is $(ulimit -n); $need needed (raise the hard limit)"
    log "ulimit -n $(ulimit -n), net.core.somaxconn $(cat /proc/sys/net/core/somaxconn)"
    build
    prepare
    [[ -f $RESULTS ]] || printf 'mode\tsize\tconns\trep\traw\tprobe\tmetrics\trss_before_kb\thwm_idle_kb\thwm_peak_kb\tcpu_s\tstreams\tload1\n' >"$RESULTS"
    start_redis
    start_nginx ngx_control probe-control.conf.in "$P_CONTROL"
    echo "# $(date -u +%FT%TZ) modes: $MODES; duration $DURATION, conns $CONNS, threads $THREADS, timeout $TIMEOUT" >>"$RESULTS"
    wait_quiet
    local mode size c rep
    for mode in $MODES; do
        if [[ $mode == s3fast ]]; then
            ensure_origin_files
            start_nginx ngx_origin s3-origin.conf.in "$P_ORIGIN" ROOT="$WORK/origin" BUCKET="$BUCKET"
        fi
        for rep in $(seq "$REPS"); do
            for size in $SIZES; do
                for c in $CONNS; do
                    run_overload "$mode" "$size" "$c" "$rep"
                done
            done
        done
        if [[ $mode == s3fast ]]; then stop_pid "$PID_ngx_origin"; fi
    done
    python3 "$HERE/overload.py" summary "$RESULTS"
}

main
