# Shared by the benchmark drivers (download.sh, overload.sh): sourced, never run. It expects
# HERE (benches/), WORK, DURATION, THREADS, TIMEOUT, QUIET_LOAD and QUIET_WAIT to be set, and
# provides the documents and catalog, Redis, the nginx instances, the S3 origins, docgate (fresh
# for every run), wrk runs with a fresh link per request, and the CPU and VmHWM readings.
# shellcheck shell=bash

REPO=$(cd "$HERE/.." && pwd)
SECRET=docgate-benchmark-secret-0123456789abcdef
BUCKET=documents
S3_ACCESS_KEY=DOCGATEBENCHACCESSKEY
S3_SECRET_KEY=docgate-bench-secret-key-0123456789abcdef
# Loopback ports: a script that may run beside download.sh sets its own before sourcing this.
: "${P_REDIS:=16399}"
: "${P_DOCGATE:=18080}"
: "${P_NGX_OFF:=18090}"      # nginx from disk, sendfile off
: "${P_NGX_ON:=18091}"       # nginx from disk, sendfile on
: "${P_S3FS:=19000}"         # s3s-fs origin (examples/s3_origin.rs)
: "${P_NGX_S3FS:=18092}"     # nginx proxy hop -> s3s-fs
: "${P_ORIGIN:=19001}"       # nginx as a fast S3 origin (bucket directory)
: "${P_NGX_ORIGIN:=18093}"   # nginx proxy hop -> fast origin

RUN=$WORK/run
RAW=$WORK/raw
RESULTS=$WORK/results.tsv
PIDS=()
# docgate's admission settings (NAME=VALUE...): unset, every cap is lifted (start_docgate).
# Extra environment for docgate (NAME=VALUE...), e.g. DOCGATE_ADMIN_LISTEN.
[[ -n ${DOCGATE_EXTRA_ENV+set} ]] || DOCGATE_EXTRA_ENV=()

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
}

# nginx NAME TEMPLATE LISTEN_PORT [KEY=VALUE...]: renders benches/nginx/TEMPLATE and starts it.
start_nginx() {
    local name=$1 template=$2 port=$3 conf=$RUN/$1.conf kv
    shift 3
    sed -e "s|@RUN@|$RUN|g" -e "s|@NAME@|$name|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
        "$HERE/nginx/$template" >"$conf"
    for kv in "$@"; do sed -i "s|@${kv%%=*}@|${kv#*=}|g" "$conf"; done
    eval "PORT_$name=$port"
    launch_nginx "$name"
}

# launch_nginx NAME: starts nginx NAME from its rendered configuration and waits for its port.
launch_nginx() {
    local name=$1 port_var=PORT_$1
    nginx -p "$RUN" -c "$RUN/$name.conf" -g 'daemon off;' 2>>"$RUN/$name.error.log" &
    PIDS+=($!)
    eval "PID_$name=$!"
    local i
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/${!port_var}") 2>/dev/null && return 0
        sleep 0.05
    done
    die "nginx $name did not start (see $RUN/$name.error.log)"
}

# restart_nginx NAME: a fresh nginx NAME (same configuration, same port).
restart_nginx() {
    local pid_var=PID_$1
    stop_pid "${!pid_var}"
    launch_nginx "$1"
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
        DOCGATE_LOG="${BENCH_DOCGATE_LOG:-warn}"
        DOCGATE_CATALOG="$WORK/catalog.toml"
        DOCGATE_DOCUMENTS_DIR="$WORK/docs"
        DOCGATE_OUTBOX_DIR="$RUN/outbox"
        DOCGATE_REQUEST_LOG="$RUN/requests.jsonl"
    )
    if [[ -n ${DOCGATE_ADMISSION+set} ]]; then
        env+=("${DOCGATE_ADMISSION[@]}")
    else
        env+=(
            DOCGATE_LIMIT_DOWNLOAD_PER_IP=1000000/s
            # wrk's connections all come from 127.0.0.1: lift the per-client caps a real
            # deployment keeps, and the global one, so they measure the download path, not
            # admission.
            DOCGATE_MAX_CONNECTIONS_PER_IP=1000000
            DOCGATE_MAX_DOWNLOADS_PER_IP=1000000
            DOCGATE_MAX_DOWNLOADS=1000000
        )
    fi
    env+=("${DOCGATE_EXTRA_ENV[@]}")
    # BENCH_DOCGATE_ENV: more NAME=value words for docgate's environment (a trial's switch).
    local trial=()
    read -ra trial <<<"${BENCH_DOCGATE_ENV:-}"
    env+=("${trial[@]}")
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
# The sum of the processes' VmHWM (kB): an nginx master and its workers.
hwm_sum_kb() {
    local p sum=0
    for p in "$@"; do sum=$((sum + $(hwm_kb "$p" 2>/dev/null || echo 0))); done
    echo "$sum"
}
# The whole machine's busy CPU time so far (clock ticks, every CPU): user, nice, system, irq,
# softirq and steal from /proc/stat. Per request it is the download's cost to the machine:
# server, Redis, origin, wrk and the kernel's network work, wherever it was accounted.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# secs_between T0 T1: the seconds between two readings in clock ticks, two decimals.
secs_between() { awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", (b - a) / hz }'; }

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
# CPU time those processes used during the run goes to raw/<run>.txt.cpu (seconds). With PACE set
# (milliseconds), each connection pauses that long before its next request (wrk-links.lua, or
# wrk-paced.lua without links): the paced suite's load.
run_wrk() {
    local suite=$1 target=$2 size=$3 conns=$4 rep=$5 url=$6 links=${7:-}
    local raw=$RAW/$suite-$target-$size-c$conns-r$rep.txt load args=() t0 r0 m0
    [[ -n $links ]] && args=(-s "$HERE/wrk-links.lua" "$url" -- "$links" "$THREADS" ${PACE:+"$PACE"})
    [[ -n $links ]] || args=(${PACE:+-s "$HERE/wrk-paced.lua"} "$url" ${PACE:+-- "$PACE"})
    load=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086 # CPU_PIDS is a list of pids
    t0=$(cpu_ticks ${CPU_PIDS:-})
    r0=$(cpu_ticks ${PID_redis:-})
    m0=$(machine_ticks)
    # wrk's own CPU (user + system, seconds) goes to raw/<run>.txt.wrk-cpu: on 2 cores the load
    # generator's share is CPU the server under test does not get.
    local TIMEFORMAT='%U %S' times
    times=$({ time wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout "$TIMEOUT" --latency "${args[@]}" \
        >"$raw" 2>&1 || echo "failed" >"$raw.failed"; } 2>&1)
    [[ ! -e $raw.failed ]] || log "wrk failed: $raw"
    awk '{ printf "%.2f\n", $1 + $2 }' <<<"$times" >"$raw.wrk-cpu"
    # The machine's busy CPU seconds during the run, and how many CPUs it has.
    echo "$(secs_between "$m0" "$(machine_ticks)") $(nproc)" >"$raw.machine-cpu"
    # shellcheck disable=SC2086
    [[ -z ${CPU_PIDS:-} ]] || secs_between "$t0" "$(cpu_ticks $CPU_PIDS)" >"$raw.cpu"
    # And Redis's, when one runs (a download's claim, completion and log record are its work).
    [[ -z ${PID_redis:-} ]] || secs_between "$r0" "$(cpu_ticks $PID_redis)" >"$raw.redis-cpu"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$suite" "$target" "$size" "$conns" "$rep" \
        "$raw" "${RSS_IDLE:--}" "${RSS_PEAK:--}" "$load" >>"$RESULTS"
    log "$suite $target $size c=$conns #$rep: $(grep -E 'Transfer/sec' "$raw" | tr -s ' ')"
}

# rewrite_rss IDLE PEAK: puts the peak RSS readings into the line run_wrk just wrote.
rewrite_rss() {
    sed -i '$ s|\t[^\t]*\t[^\t]*\t\([^\t]*\)$|\t'"$1"'\t'"$2"'\t\1|' "$RESULTS"
}

# run_nginx SUITE TARGET NAME SIZE CONNS REP URL: a reference run. nginx NAME is started afresh
# (as docgate is for each of its runs), so the sum of its processes' VmHWM read when it is idle and
# again after the run gives this run's peak above idle, beside docgate's.
run_nginx() {
    local suite=$1 target=$2 name=$3 size=$4 conns=$5 rep=$6 url=$7 pid_var=PID_$3 pids idle
    restart_nginx "$name"
    sleep 0.5
    pids="${!pid_var} $(pgrep -P "${!pid_var}" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # a list of pids
    idle=$(hwm_sum_kb $pids)
    CPU_PIDS="$(serving_pids "${!pid_var}")" run_wrk "$suite" "$target" "$size" "$conns" "$rep" "$url"
    # shellcheck disable=SC2086
    rewrite_rss "$idle" "$(hwm_sum_kb $pids)"
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
    rewrite_rss "$RSS_IDLE" "$RSS_PEAK"
    stop_pid "$PID_docgate"
    unset RSS_IDLE RSS_PEAK
}
