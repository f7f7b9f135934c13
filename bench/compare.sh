#!/usr/bin/env bash
# bench/compare.sh: run the same oxcd-bench workloads against etcd and oxcd and print one
# table: workload | metric | etcd | oxcd | oxcd/etcd.
#
# Each server runs in turn (never both at once) on fresh temporary data dirs on loopback,
# fixed high ports: etcd clients 23790+i / peers 23890+i, oxcd clients 24790+i / peers
# 24890+i (i = member index). Per workload the servers' CPU seconds (utime+stime from
# /proc/PID/stat, summed over members) are recorded; after all workloads, peak RSS
# (VmHWM, max over members), anonymous memory and anonymous + the data dir's page cache
# (see mem_now_mib), and total CPU. One write+fdatasync probe of the data dir's disk
# is taken per server, since latency targets are phrased relative to it.
#
# Invariants:
#  - Only processes this script started are signalled, by their PIDs (also on Ctrl-C/exit).
#  - Every benchmark is bounded by --total and --timeout; servers get 30 s to become healthy.
#  - A missing or broken oxcd never aborts the run: its column shows '-' and an error row,
#    and the etcd column is still printed.
#
# Usage: bench/compare.sh [--members 1|3] [--full | --scale N] [--only etcd|oxcd] [--no-build]
#                         [--workloads put,range-l,...] [--work-dir DIR] [--keep] [--tls] [--auth]
# --tls: client URLs over https (a throw-away CA and server certificate made with openssl);
# --auth: auth enabled, the benchmark runs as a non-root user whose role grants readwrite
# over every key it uses (so each request pays a token and a permission check).
# Workloads: put-1 put put-100 put-txn put-seq range-l range-s range-l-100 range-s-100
# range-prefix txn-mixed watch watch-latency lease-keepalive stm load-1m (put-seq loads the
# read workloads' keys; it runs before them anyway; load-1m puts 1,000,000 keys, so the peak
# RSS reported afterwards is the one with 1M keys loaded).
# Env: ETCD_BIN (default /usr/bin/etcd), OXCD_BIN (default target/release/oxcd),
#      BENCH (default target/release/oxcd-bench).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OXCD_BIN=${OXCD_BIN:-$ROOT/target/release/oxcd}
BENCH=${BENCH:-$ROOT/target/release/oxcd-bench}
MEMBERS=1
SCALE=1
ONLY=""
BUILD=1
KEEP=0
TLS=0
AUTH=0
WORK=""
WORKLOADS="put-1,put,put-100,put-txn,range-l,range-s,range-l-100,range-s-100,range-prefix,txn-mixed,watch,watch-latency,lease-keepalive,stm,load-1m"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --members) MEMBERS=$2; shift 2 ;;
        --full) SCALE=10; shift ;;
        --scale) SCALE=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --work-dir) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --tls) TLS=1; shift ;;
        --auth) AUTH=1; shift ;;
        -h|--help) usage 0 ;;
        *) echo "unknown option: $1" >&2; usage 2 ;;
    esac
done
case "$MEMBERS" in 1|3) ;; *) echo "--members must be 1 or 3" >&2; exit 2 ;; esac

log() { echo "[compare] $*" >&2; }

if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/oxcd-compare.XXXXXX); else mkdir -p "$WORK"; fi
RESULTS=$WORK/results.jsonl
SCHEME=http
SERVER_TLS=()
CONN_FLAGS=()   # every oxcd-bench call (TLS)
AUTH_FLAGS=()   # workloads, once auth is set up
CTL_FLAGS=()
if [ "$TLS" = 1 ]; then
    C=$WORK/certs; mkdir -p "$C"
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$C/ext.cnf"
    EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${EC[@]}" -keyout "$C/ca.key" -out "$C/ca.crt" -days 2 -subj /CN=compare-ca 2>/dev/null &&
    openssl req "${EC[@]}" -keyout "$C/server.key" -out "$C/server.csr" -subj /CN=localhost 2>/dev/null &&
    openssl x509 -req -in "$C/server.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial \
        -out "$C/server.crt" -days 2 -extfile "$C/ext.cnf" 2>/dev/null ||
        { echo "openssl failed to make the TLS certificates" >&2; exit 1; }
    SCHEME=https
    SERVER_TLS=(--cert-file "$C/server.crt" --key-file "$C/server.key")
    CONN_FLAGS=(--cacert "$C/ca.crt")
    CTL_FLAGS=(--cacert "$C/ca.crt")
fi

# setup_auth: root, and a "bench" user allowed readwrite on every key from " " up.
setup_auth() {
    local ctl=(env ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" "${CTL_FLAGS[@]}")
    "${ctl[@]}" user add root:root >/dev/null &&
    "${ctl[@]}" role add root >/dev/null &&
    "${ctl[@]}" user grant-role root root >/dev/null &&
    "${ctl[@]}" user add bench:bench >/dev/null &&
    "${ctl[@]}" role add bench >/dev/null &&
    "${ctl[@]}" role grant-permission bench --from-key readwrite ' ' >/dev/null &&
    "${ctl[@]}" user grant-role bench bench >/dev/null &&
    "${ctl[@]}" auth enable >/dev/null
}
: > "$RESULTS"
PIDS=()

stop_servers() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 1 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS=()
}
cleanup() {
    stop_servers
    if [ "$KEEP" = 0 ]; then rm -rf "$WORK"/etcd-* "$WORK"/oxcd-*; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# JSON string escaping for error messages.
esc() { printf '%s' "$1" | tr -d '\r' | tr '\n' ' ' | sed 's/\\/\\\\/g; s/"/\\"/g'; }
emit_error() { printf '{"server":"%s","workload":"%s","error":"%s"}\n' "$1" "$2" "$(esc "$3")" >> "$RESULTS"; }
emit_metric() { printf '{"server":"%s","workload":"%s","metrics":{"%s":%s}}\n' "$1" "$2" "$3" "$4" >> "$RESULTS"; }

CLK_TCK=$(getconf CLK_TCK)
# CPU seconds (user+system) of all running members.
cpu_seconds() {
    local ticks=0 pid t
    for pid in "${PIDS[@]}"; do
        [ -r "/proc/$pid/stat" ] || continue
        # Fields after "pid (comm) ": state=$1 ... utime=$12 stime=$13.
        t=$(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
        ticks=$((ticks + t))
    done
    awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }'
}
# Peak RSS in MiB (max over members).
peak_rss_mib() {
    local max=0 pid kb
    for pid in "${PIDS[@]}"; do
        kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ -n "$kb" ] && [ "$kb" -gt "$max" ] && max=$kb
    done
    awk -v k="$max" 'BEGIN { printf "%.1f", k / 1024 }'
}

# Memory like for like, at the end of the run (max over members): anonymous memory
# (RssAnon: heap, stacks), and total = RssAnon + the data dir's pages in the page cache
# (fincore). etcd mmaps its bbolt file, so VmHWM counts its database pages while oxcd's redb
# reads through the page cache, which VmHWM does not count; the total counts both alike.
mem_now_mib() {
    local kind=$1 max_anon=0 max_total=0 i pid anon cached
    for i in "${!PIDS[@]}"; do
        pid=${PIDS[$i]}
        anon=$(awk '/^RssAnon:/ {print $2 * 1024}' "/proc/$pid/status" 2>/dev/null)
        anon=${anon:-0}
        cached=$(find "$WORK/$kind-$i/data" -type f -print0 2>/dev/null |
            xargs -0 -r fincore -b -n -o RES 2>/dev/null | awk '{s += $1} END {print s + 0}')
        [ "$anon" -gt "$max_anon" ] && max_anon=$anon
        [ $((anon + cached)) -gt "$max_total" ] && max_total=$((anon + cached))
    done
    awk -v a="$max_anon" -v t="$max_total" 'BEGIN { printf "%.1f %.1f", a / 1048576, t / 1048576 }'
}

# start_cluster KIND BIN BASE_PORT -> starts members, sets PIDS and ENDPOINTS.
start_cluster() {
    local kind=$1 bin=$2 base=$3 i cluster="" name
    ENDPOINTS=""
    AUTH_FLAGS=()
    for i in $(seq 0 $((MEMBERS - 1))); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 100 + i))"
        ENDPOINTS+="${ENDPOINTS:+,}$SCHEME://127.0.0.1:$((base + i))"
    done
    for i in $(seq 0 $((MEMBERS - 1))); do
        name=m$i
        local dir=$WORK/$kind-$i client=$SCHEME://127.0.0.1:$((base + i)) peer=http://127.0.0.1:$((base + 100 + i))
        rm -rf "$dir"; mkdir -p "$dir"
        "$bin" --name "$name" --data-dir "$dir/data" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "compare-$kind" "${SERVER_TLS[@]}" > "$dir/server.log" 2>&1 &
        PIDS+=($!)
    done
    log "$kind: started ${MEMBERS} member(s), pids ${PIDS[*]}, endpoints $ENDPOINTS"
    local deadline=$((SECONDS + 30)) pid
    while [ $SECONDS -lt $deadline ]; do
        for pid in "${PIDS[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                log "$kind: member pid $pid exited; log tail:"; tail -n 5 "$WORK/$kind-"*/server.log >&2
                return 1
            fi
        done
        if "$BENCH" --endpoints "$ENDPOINTS" "${CONN_FLAGS[@]}" --timeout 2 health 2>/dev/null; then
            if [ "$AUTH" = 1 ]; then
                setup_auth || { log "$kind: setting up auth failed"; return 1; }
                AUTH_FLAGS=(--user bench:bench)
            fi
            return 0
        fi
        sleep 0.3
    done
    log "$kind: not healthy after 30 s; log tail:"; tail -n 5 "$WORK/$kind-"*/server.log >&2
    return 1
}

# Workload table: label -> oxcd-bench arguments (totals scaled by --full).
workload_args() {
    local s=$SCALE
    case "$1" in
        put-1) echo "--clients 1 --total $((2000 * s)) put --val-size 256 --key-space-size 10000" ;;
        put) echo "--clients 16 --conns 4 --total $((20000 * s)) put --val-size 256 --key-space-size 10000" ;;
        put-100) echo "--clients 100 --conns 10 --total $((40000 * s)) put --val-size 256 --key-space-size 10000" ;;
        put-txn) echo "--clients 16 --conns 4 --total $((10000 * s)) put --txn --val-size 256 --key-space-size 10000" ;;
        # Loads the whole key space the read workloads use (run automatically before them).
        put-seq) echo "--clients 16 --conns 4 --total 10000 put --sequential-keys --val-size 256 --key-space-size 10000" ;;
        range-l) echo "--clients 16 --conns 4 --total $((20000 * s)) range --consistency l --val-size 256 --key-space-size 10000 --no-preload" ;;
        range-s) echo "--clients 16 --conns 4 --total $((20000 * s)) range --consistency s --val-size 256 --key-space-size 10000 --no-preload" ;;
        range-l-100) echo "--clients 100 --conns 10 --total $((40000 * s)) range --consistency l --val-size 256 --key-space-size 10000 --no-preload" ;;
        range-s-100) echo "--clients 100 --conns 10 --total $((40000 * s)) range --consistency s --val-size 256 --key-space-size 10000 --no-preload" ;;
        load-1m) echo "--clients 100 --conns 10 --total 1000000 put --sequential-keys --val-size 8 --key-space-size 1000000" ;;
        range-prefix) echo "--clients 8 --conns 4 --total $((5000 * s)) range --consistency s --prefix-keys 100 --val-size 256 --key-space-size 10000 --no-preload" ;;
        txn-mixed) echo "--clients 16 --conns 4 --total $((10000 * s)) txn-mixed --rw-ratio 4 --val-size 256 --key-space-size 10000 --no-preload" ;;
        watch) echo "--clients 8 --conns 4 --total $((2000 * s)) watch --watchers 100 --streams 10 --val-size 64" ;;
        watch-latency) echo "--clients 1 --total $((300 * s)) watch-latency --watchers 100 --streams 10 --put-rate 100" ;;
        lease-keepalive) echo "--clients 16 --conns 4 --total $((20000 * s)) lease-keepalive" ;;
        stm) echo "--clients 8 --conns 4 --total $((2000 * s)) stm --keys 16 --keys-per-txn 2" ;;
        *) return 1 ;;
    esac
}

# run_workload KIND LABEL: one oxcd-bench run, its report and the servers' CPU during it.
run_workload() {
    local kind=$1 w=$2 args before after out err rc
    if ! args=$(workload_args "$w"); then log "unknown workload $w"; return; fi
    [ "$w" = put-seq ] && LOADED=1
    log "$kind: $w ($args)"
    before=$(cpu_seconds)
    # shellcheck disable=SC2086
    local limit=$((120 * SCALE))
    [ "$w" = load-1m ] && limit=600
    out=$("$BENCH" --endpoints "$ENDPOINTS" "${CONN_FLAGS[@]}" "${AUTH_FLAGS[@]}" --json --timeout "$limit" $args 2> "$WORK/bench.err")
    rc=$?
    after=$(cpu_seconds)
    if [ $rc = 0 ] && [ -n "$out" ]; then
        printf '{"server":"%s","workload":"%s","report":%s}\n' "$kind" "$w" "$out" >> "$RESULTS"
    else
        err=$(head -c 300 "$WORK/bench.err")
        log "$kind: $w failed: $err"
        emit_error "$kind" "$w" "${err:-exit $rc}"
    fi
    emit_metric "$kind" "$w" "server CPU s" "$(awk -v a="$before" -v b="$after" 'BEGIN { printf "%.3f", b - a }')"
}

run_server() {
    local kind=$1 bin=$2 base=$3
    if [ ! -x "$bin" ]; then
        log "$kind: $bin is not built or not executable; skipping its column"
        emit_error "$kind" "server" "not built"
        return
    fi
    mkdir -p "$WORK/$kind-0"
    local probe
    if probe=$("$BENCH" --json fsync-probe --dir "$WORK/$kind-0" --count 200); then
        printf '{"server":"%s","workload":"disk","metrics":{"fsync p50 ms":%s}}\n' "$kind" \
            "$(printf '%s' "$probe" | sed 's/.*"p50":\([0-9.e+-]*\).*/\1/')" >> "$RESULTS"
    fi
    if ! start_cluster "$kind" "$bin" "$base"; then
        emit_error "$kind" "server" "did not start"
        stop_servers
        return
    fi
    local w
    LOADED=0
    IFS=',' read -r -a list <<< "$WORKLOADS"
    for w in "${list[@]}"; do
        case "$w" in
            range-*|txn-mixed) [ "$LOADED" = 1 ] || run_workload "$kind" put-seq ;;
        esac
        run_workload "$kind" "$w"
    done
    emit_metric "$kind" "server" "peak RSS MiB" "$(peak_rss_mib)"
    local mem
    read -r -a mem <<< "$(mem_now_mib "$kind")"
    emit_metric "$kind" "server" "RssAnon MiB (end)" "${mem[0]}"
    emit_metric "$kind" "server" "RssAnon + data page cache MiB (end)" "${mem[1]}"
    emit_metric "$kind" "server" "CPU s total" "$(cpu_seconds)"
    stop_servers
    log "$kind: stopped"
}

# --- build -------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    log "building oxcd-bench (release)"
    (cd "$ROOT" && cargo build --release -p oxcd-bench) >&2 || { log "oxcd-bench failed to build"; exit 1; }
    if [ "$ONLY" != etcd ]; then
        log "building oxcd (release)"
        (cd "$ROOT" && cargo build --release -p oxcd-server) >&2 || log "oxcd failed to build: its column will be empty"
    fi
fi
[ -x "$BENCH" ] || { log "$BENCH missing: build with cargo build --release -p oxcd-bench"; exit 1; }
if [ ! -x "$ETCD_BIN" ] && [ "$ONLY" != oxcd ]; then
    log "$ETCD_BIN missing: apt-get install -y etcd-server etcd-client"
fi

# --- run ---------------------------------------------------------------------------------
log "work dir $WORK, members $MEMBERS, scale x$SCALE, workloads $WORKLOADS"
[ "$ONLY" != oxcd ] && run_server etcd "$ETCD_BIN" 23790
[ "$ONLY" != etcd ] && run_server oxcd "$OXCD_BIN" 24790

echo
MODE=""; [ "$TLS" = 1 ] && MODE+=", TLS"; [ "$AUTH" = 1 ] && MODE+=", auth on"
echo "oxcd vs etcd $("$ETCD_BIN" --version 2>/dev/null | head -1 | sed 's/etcd Version: //'), $MEMBERS member(s), scale x$SCALE$MODE, $(nproc) cores; results: $RESULTS"
"$BENCH" table "$RESULTS"
