#!/usr/bin/env bash
# bench/memory.sh [RUNS] [WORKLOADS]: memory like for like, etcd and oxcd alternating.
# Runs bench/compare.sh RUNS times (default 3; each run starts etcd, then oxcd, on fresh data
# dirs) with WORKLOADS (default load-1m: 1,000,000 keys) and prints, per server, the median
# and range over the runs of peak RSS (VmHWM), RssAnon and RssAnon + the data dir's page
# cache (etcd mmaps its database, so VmHWM counts its pages; oxcd reads through the page
# cache, which VmHWM does not count: the last column counts both alike).
# Invariants: every run is compare.sh's (bounded, only its own PIDs signalled); the runs'
# result files stay under one work dir, printed at the end.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=${1:-3}
WORKLOADS=${2:-load-1m}
WORK=$(mktemp -d /tmp/oxcd-memory.XXXXXX)
for r in $(seq 1 "$RUNS"); do
    echo "[memory] run $r of $RUNS ($WORKLOADS)" >&2
    "$ROOT/bench/compare.sh" --no-build --workloads "$WORKLOADS" --work-dir "$WORK/run$r" > "$WORK/run$r.txt" 2>&1 ||
        echo "[memory] run $r failed: see $WORK/run$r.txt" >&2
done
python3 - "$WORK" "$RUNS" <<'PY'
import json, statistics, sys, glob
work, runs = sys.argv[1], int(sys.argv[2])
names = ["peak RSS MiB", "RssAnon MiB (end)", "RssAnon + data page cache MiB (end)"]
vals = {}
for f in sorted(glob.glob(f"{work}/run*/results.jsonl")):
    for line in open(f):
        o = json.loads(line)
        for n in names:
            v = o.get("metrics", {}).get(n)
            if o.get("workload") == "server" and v is not None:
                vals.setdefault((o["server"], n), []).append(float(v))
print(f"| server | metric | median | range | runs |")
print(f"|---|---|---|---|---|")
for (srv, n), v in sorted(vals.items()):
    print(f"| {srv} | {n} | {statistics.median(v):.1f} | {min(v):.1f}–{max(v):.1f} | {len(v)} |")
if not vals:
    sys.exit("no memory metrics recorded")
PY
echo "(results under $WORK)"
