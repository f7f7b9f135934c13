#!/usr/bin/env bash
# bench/gateway.sh: the JSON gateway under HTTP load (wrk), Debian's etcd and oxcd one after
# the other, one table: put and range through POST /v3/kv/put and /v3/kv/range.
#
# Each server runs alone on a fresh temporary data dir on loopback (etcd 127.0.0.1:23790,
# oxcd 127.0.0.1:24790); wrk runs --threads 2 --connections 100 for --duration seconds per
# request kind, with --latency for the percentiles. Only processes this script started are
# signalled, by PID; every run is bounded by wrk's duration and a 30 s start-up wait.
#
# Usage: bench/gateway.sh [--duration SECS] [--no-build]
# Env: ETCD_BIN (default /usr/bin/etcd), OXCD_BIN (default target/release/oxcd).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
OXCD_BIN=${OXCD_BIN:-$ROOT/target/release/oxcd}
DURATION=10
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if [ "$BUILD" = 1 ]; then
    (cd "$ROOT" && cargo build --release -p oxcd-server --bin oxcd) >&2 || exit 1
fi

WORK=$(mktemp -d /tmp/oxcd-gateway.XXXXXX)
PID=""
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# put.lua: distinct keys (base64 of "gw-<n>") with a 256-byte value; range.lua: one key.
cat > "$WORK/put.lua" <<'LUA'
local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64(s)
  return ((s:gsub('.', function(x)
    local r, c = '', x:byte()
    for i = 8, 1, -1 do r = r .. (c % 2 ^ i - c % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#s % 3 + 1])
end
local value = b64(string.rep("v", 256))
local n = 0
wrk.method = "POST"
wrk.path = "/v3/kv/put"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil,
    '{"key":"' .. b64("gw-" .. (n % 10000)) .. '","value":"' .. value .. '"}')
end
LUA
cat > "$WORK/range.lua" <<'LUA'
wrk.method = "POST"
wrk.path = "/v3/kv/range"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"Z3ctMQ=="}'
LUA

declare -A RESULT
run_server() {
    local kind=$1 bin=$2 port=$3 url
    url=http://127.0.0.1:$port
    [ -x "$bin" ] || { echo "[gateway] $kind: $bin missing" >&2; return; }
    "$bin" --name g --data-dir "$WORK/$kind" --listen-client-urls "$url" \
        --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$((port + 100))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((port + 100))" \
        --initial-cluster "g=http://127.0.0.1:$((port + 100))" > "$WORK/$kind.log" 2>&1 &
    PID=$!
    local deadline=$((SECONDS + 30))
    until curl -sf -m 2 "$url/health" | grep -q '"health":"true"'; do
        [ $SECONDS -lt $deadline ] || { echo "[gateway] $kind not healthy" >&2; kill "$PID"; PID=""; return; }
        sleep 0.3
    done
    local op out
    for op in put range; do
        out=$(wrk --threads 2 --connections 100 --duration "${DURATION}s" --latency \
            -s "$WORK/$op.lua" "$url" 2>&1)
        RESULT[$kind,$op,rps]=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
        RESULT[$kind,$op,p50]=$(awk '$1 == "50%" {print $2}' <<< "$out")
        RESULT[$kind,$op,p99]=$(awk '$1 == "99%" {print $2}' <<< "$out")
        RESULT[$kind,$op,err]=$(awk '/Non-2xx|Socket errors/ {print}' <<< "$out" | tr '\n' ' ')
    done
    kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
}

run_server etcd "$ETCD_BIN" 23790
run_server oxcd "$OXCD_BIN" 24790

printf '\ngateway under wrk (2 threads, 100 connections, %ss per row), %s cores\n' "$DURATION" "$(nproc)"
printf '%-8s %-10s %12s %12s %8s\n' request metric etcd oxcd oxcd/etcd
for op in put range; do
    for m in rps p50 p99; do
        e=${RESULT[etcd,$op,$m]:--} o=${RESULT[oxcd,$op,$m]:--}
        ratio=$(awk -v a="$e" -v b="$o" 'function v(x) { if (x ~ /ms$/) return x + 0; if (x ~ /us$/) return (x + 0) / 1000; if (x ~ /s$/) return (x + 0) * 1000; return x + 0 }
            BEGIN { if (v(a) > 0 && v(b) > 0) printf "%.2f", v(b) / v(a); else print "-" }')
        printf '%-8s %-10s %12s %12s %8s\n' "$op" "$m" "$e" "$o" "$ratio"
    done
done
for k in etcd oxcd; do
    for op in put range; do
        [ -n "${RESULT[$k,$op,err]:-}" ] && echo "$k $op: ${RESULT[$k,$op,err]}"
    done
done
exit 0
