#!/usr/bin/env bash
# bench/lease_compare.sh: the lease scale benchmark (crates/bench/examples/lease_scale.rs)
# against etcd and oxcd in one run, side by side: 100,000 live leases with keep-alives
# (server RSS, grant/put/keep-alive rates) and a mass expiry of 10,000 leases (time until
# every key is gone, put latency before/during the expiry).
#
# Each server runs alone on a fresh temp data dir on loopback (etcd 25790/25890, oxcd
# 25791/25891). Only processes this script started are signalled, by PID. Bounded: the
# example has per-phase deadlines; servers get 30 s to start.
#
# Usage: bench/lease_compare.sh [--leases N] [--expire N] [--keepalive-secs S] [--no-build]
# Env: ETCD_BIN (default /usr/bin/etcd), OXCD_BIN (default target/release/oxcd).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OXCD_BIN=${OXCD_BIN:-$ROOT/target/release/oxcd}
EXAMPLE=$ROOT/target/release/examples/lease_scale
BUILD=1
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --leases|--expire|--keepalive-secs|--streams|--window) EXTRA+=("$1" "$2"); shift 2 ;;
        --no-build) BUILD=0; shift ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
if [ $BUILD = 1 ]; then
    (cd "$ROOT" && cargo build --release -p oxcd-server -p oxcd-bench --example lease_scale) || exit 1
fi
WORK=$(mktemp -d /tmp/oxcd-lease-bench.XXXXXX)
PID=""
stop() {
    [ -n "$PID" ] || return
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=""
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

run() {
    local kind=$1 bin=$2 c=$3 p=$4
    local url=http://127.0.0.1:$c peer=http://127.0.0.1:$p
    "$bin" --name n1 --data-dir "$WORK/$kind" --listen-client-urls "$url" --advertise-client-urls "$url" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "n1=$peer" \
        > "$WORK/$kind.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
        ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$c" endpoint health >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "[lease-bench] $kind (pid $PID)" >&2
    "$EXAMPLE" --endpoint "$url" --pid "$PID" "${EXTRA[@]}" > "$WORK/$kind.json" || echo '{}' > "$WORK/$kind.json"
    stop
}
run etcd "$ETCD_BIN" 25790 25890
run oxcd "$OXCD_BIN" 25791 25891
python3 - "$WORK/etcd.json" "$WORK/oxcd.json" <<'PY'
import json, sys
e, o = (json.load(open(p)) for p in sys.argv[1:3])
keys = [k for k in e] + [k for k in o if k not in e]
print("%-28s %14s %14s %10s" % ("metric", "etcd 3.4", "oxcd", "oxcd/etcd"))
for k in keys:
    a, b = e.get(k, "-"), o.get(k, "-")
    ratio = "%.2f" % (b / a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and a else ""
    fmt = lambda v: ("%.3f" % v if isinstance(v, float) else str(v))
    print("%-28s %14s %14s %10s" % (k, fmt(a), fmt(b), ratio))
PY
