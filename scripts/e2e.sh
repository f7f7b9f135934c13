#!/usr/bin/env bash
# etcd 3.4.23's own end-to-end suite (Debian's golang-etcd-server-dev, tests/e2e) run against
# oxcd, or with --reference against Debian's etcd, so both counts come from one machine.
#
#   scripts/e2e.sh [--reference] [--ci] [-j N] [--timeout SECS] [REGEX]
#
#   REGEX         run only the tests whose name matches (grep -E); default: all 243
#   --reference   run Debian's /usr/bin/etcd instead of oxcd
#   --ci          run the tests listed in scripts/e2e-ci.txt; any failure, any skip, a listed
#                 test that does not exist or no test at all makes the exit status non-zero
#   -j N          run N tests at once (each has its own network namespace); default 1
#   --timeout S   per-test limit in seconds (default 300); the Go test gets S-15 so it can
#                 print its goroutine dump before the hard kill
#
# How it works:
#   * installs golang-go, golang-etcd-server-dev, etcd-server and etcd-client if missing;
#   * builds the e2e test binary once, in GOPATH mode over /usr/share/gocode/src, cached in
#     target/e2e/e2e.test (rebuilt when the Debian package version changes);
#   * builds oxcd (nice -n 10 cargo build -p oxcd-server --bin oxcd) and points `-bin-dir` at a
#     directory holding `etcd` -> oxcd (a symlink: the framework execs and signals oxcd itself)
#     and `etcdctl` -> /usr/bin/etcdctl; `-cert-dir` is Debian's integration/fixtures;
#   * runs every test in its own process, its own network namespace (the suite binds fixed
#     ports: 20000+, 127.0.0.1:2379, 23790) and its own PID namespace (when the test ends or
#     times out, every server it started dies with it), with TMPDIR and the working directory
#     fresh per test. The working directory is <work>/tests/e2e with <work>/integration ->
#     Debian's integration tree (the JWT tests read ../../integration/fixtures) and
#     <work>/etcd.conf.yml.sample (Debian does not ship it; ours is scripts/e2e/).
#     One process per test also keeps the v2 tests (TestCtlV2*, TestV2Curl*), which set
#     --enable-v2 on a shared config, from leaking it into other tests; they are counted apart.
#   * prints passed/failed/skipped with the list of failures; per-test logs and a results
#     table (name, outcome, seconds) go to target/e2e/<oxcd|reference>/.
# Exit status: non-zero if any test failed (with --ci: or was skipped, or none ran).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
SUITE_SRC=/usr/share/gocode/src/go.etcd.io/etcd
CI_LIST="$ROOT/scripts/e2e-ci.txt"
V2_REGEX='^Test(CtlV2|V2Curl)'

MODE=oxcd CI=0 JOBS=1 PER_TEST=300 REGEX=''
while [ $# -gt 0 ]; do
  case "$1" in
    --reference) MODE=reference ;;
    --ci) CI=1 ;;
    -j) JOBS="$2"; shift ;;
    --timeout) PER_TEST="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "e2e.sh: unknown option $1" >&2; exit 2 ;;
    *) [ -n "$REGEX" ] && { echo "e2e.sh: only one REGEX" >&2; exit 2; }; REGEX="$1" ;;
  esac
  shift
done
case "$JOBS$PER_TEST" in *[!0-9]*) echo "e2e.sh: -j and --timeout take numbers" >&2; exit 2 ;; esac
[ "$PER_TEST" -ge 30 ] || { echo "e2e.sh: --timeout must be at least 30" >&2; exit 2; }

E2E="$ROOT/target/e2e"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$E2E/$MODE"
mkdir -p "$E2E" "$OUT"

apt_install() {
  # Keep package scripts from starting services (no etcd daemon left behind).
  local made_policy=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  apt-get update -qq || rc=$?
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

install_deps() {
  local missing=()
  command -v go >/dev/null || missing+=(golang-go)
  [ -d "$SUITE_SRC/tests/e2e" ] || missing+=(golang-etcd-server-dev)
  [ -x /usr/bin/etcd ] || missing+=(etcd-server)
  [ -x /usr/bin/etcdctl ] || missing+=(etcd-client)
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v ip >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing ${missing[*]}"
  apt_install "${missing[@]}"
}

# The test binary, built once per version of Debian's etcd source.
build_suite() {
  local version stamp="$E2E/e2e.test.version"
  version="$(dpkg-query -W -f='${Version}' golang-etcd-server-dev 2>/dev/null || echo unknown) $(go version)"
  if [ -x "$E2E/e2e.test" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  echo "== building etcd's e2e test binary (once; cached in target/e2e)"
  mkdir -p "$E2E/gopath"
  ln -sfn /usr/share/gocode/src "$E2E/gopath/src"
  (cd "$E2E" && env GO111MODULE=off GOPATH="$E2E/gopath" GOCACHE="$E2E/gocache" GOFLAGS= \
      timeout 1800 nice -n 10 go test -c -o "$E2E/e2e.test.new" go.etcd.io/etcd/tests/e2e) || return 1
  mv "$E2E/e2e.test.new" "$E2E/e2e.test" && echo "$version" > "$stamp"
}

setup_bin_dir() {
  BIN_DIR="$OUT/bin"
  mkdir -p "$BIN_DIR"
  if [ "$MODE" = oxcd ]; then
    echo "== building oxcd"
    (cd "$ROOT" && timeout 2400 nice -n 10 cargo build -q -p oxcd-server --bin oxcd) || return 1
    ln -sfn "$CARGO_TARGET_DIR/debug/oxcd" "$BIN_DIR/etcd"
  else
    ln -sfn /usr/bin/etcd "$BIN_DIR/etcd"
  fi
  ln -sfn /usr/bin/etcdctl "$BIN_DIR/etcdctl"
}

# run_one NAME: runs one test in fresh namespaces; writes OUT/logs/NAME.log and prints
# "NAME OUTCOME SECONDS".
run_one() {
  local t="$1" work="$OUT/work/$1" log="$OUT/logs/$1.log" start rc outcome
  rm -rf "$work"
  mkdir -p "$work/tests/e2e" "$work/tmp"
  ln -s "$SUITE_SRC/integration" "$work/integration"
  cp "$ROOT/scripts/e2e/etcd.conf.yml.sample" "$work/etcd.conf.yml.sample"
  start=$(date +%s)
  # --kill-child: if timeout kills unshare, the namespace's init dies and the kernel kills
  # every process of the PID namespace (the servers the test started included).
  # EXPECT_DEBUG: the framework copies every line of the processes it drives into the log.
  (cd "$work/tests/e2e" && env TMPDIR="$work/tmp" EXPECT_DEBUG=1 timeout -k 10 "$PER_TEST" \
      unshare --net --pid --fork --kill-child -- sh -c \
      'ip link set lo up && exec "$@"' sh \
      "$E2E/e2e.test" -test.run "^${t}\$" -test.v -test.timeout "$((PER_TEST - 15))s" \
      -bin-dir "$BIN_DIR" -cert-dir "$SUITE_SRC/integration/fixtures") > "$log" 2>&1
  rc=$?
  if grep -q -- "--- FAIL: ${t} " "$log"; then outcome=FAIL
  elif grep -q -- "--- SKIP: ${t} " "$log"; then outcome=SKIP
  elif grep -q -- "--- PASS: ${t} " "$log"; then
    # (Go prints the result after the last line a driven process wrote, which may lack its
    # newline, so the result is not always at the start of a line.)
    # A non-zero status after the PASS line is TestMain's leaked-goroutine check (an expect
    # reader still open), which a whole-suite run only applies once at the very end.
    outcome=PASS
    [ "$rc" -eq 0 ] || echo "e2e.sh: exit status $rc after PASS (TestMain's goroutine leak check)" >> "$log"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then outcome=FAIL; echo "e2e.sh: killed after ${PER_TEST}s" >> "$log"
  else outcome=FAIL; echo "e2e.sh: exit status $rc without a PASS line" >> "$log"
  fi
  rm -rf "$work"
  echo "$t $outcome $(( $(date +%s) - start ))"
}

# summary TITLE RESULTS_FILE: prints the counts and failures of one group of tests.
summary() {
  local title="$1" file="$2" p f s
  p=$(awk '$2=="PASS"' "$file" | wc -l)
  f=$(awk '$2=="FAIL"' "$file" | wc -l)
  s=$(awk '$2=="SKIP"' "$file" | wc -l)
  echo "$title: $p passed, $f failed, $s skipped (of $((p + f + s)))"
  awk '$2=="FAIL" { printf "  FAIL %s (%ss)\n", $1, $3 }' "$file"
  awk '$2=="SKIP" { printf "  SKIP %s\n", $1 }' "$file"
}

install_deps || { echo "e2e.sh: installing dependencies failed" >&2; exit 1; }
build_suite || { echo "e2e.sh: building the e2e test binary failed" >&2; exit 1; }
setup_bin_dir || { echo "e2e.sh: building oxcd failed" >&2; exit 1; }
# Nothing from the caller's environment may reconfigure the servers or etcdctl.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(ETCD_|ETCDCTL_)')
unset RUST_LOG

mapfile -t ALL < <("$E2E/e2e.test" -test.list '.*' | grep '^Test')
if [ "$CI" = 1 ]; then
  mapfile -t TESTS < <(grep -Ev '^\s*(#|$)' "$CI_LIST" | awk '{print $1}')
  declare -A KNOWN=()
  for t in "${ALL[@]}"; do KNOWN[$t]=1; done
  for t in "${TESTS[@]}"; do
    [ -n "${KNOWN[$t]:-}" ] || { echo "e2e.sh: $t (in $CI_LIST) is not a test of the suite" >&2; exit 1; }
  done
  [ -n "$REGEX" ] && mapfile -t TESTS < <(printf '%s\n' "${TESTS[@]}" | grep -E "$REGEX")
else
  mapfile -t TESTS < <(printf '%s\n' "${ALL[@]}" | grep -E "${REGEX:-.}")
fi
[ ${#TESTS[@]} -gt 0 ] || { echo "e2e.sh: no test matches" >&2; exit 1; }

export MODE OUT E2E BIN_DIR SUITE_SRC PER_TEST ROOT
export -f run_one
rm -rf "$OUT/logs" "$OUT/work"
mkdir -p "$OUT/logs"
RESULTS="$OUT/results.txt"
rm -f "$RESULTS.tmp"
START=$(date +%s)
echo "== running ${#TESTS[@]} tests against $MODE ($JOBS at a time, ${PER_TEST}s each at most); logs in $OUT/logs"
printf '%s\n' "${TESTS[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$1"' _ {} |
  while read -r name outcome secs; do
    echo "$name $outcome $secs" >> "$RESULTS.tmp"
    printf '%-4s %4ss %s\n' "$outcome" "$secs" "$name"
  done
sort "$RESULTS.tmp" > "$RESULTS" && rm -f "$RESULTS.tmp"

echo
echo "== $MODE, $(( $(date +%s) - START ))s"
grep -Ev "$V2_REGEX" "$RESULTS" > "$OUT/results-v3.txt"
grep -E "$V2_REGEX" "$RESULTS" > "$OUT/results-v2.txt"
[ -s "$OUT/results-v3.txt" ] && summary "suite without the v2 tests" "$OUT/results-v3.txt"
[ -s "$OUT/results-v2.txt" ] && summary "v2 tests (TestCtlV2*, TestV2Curl*)" "$OUT/results-v2.txt"

failed=$(awk '$2=="FAIL"' "$RESULTS" | wc -l)
skipped=$(awk '$2=="SKIP"' "$RESULTS" | wc -l)
ran=$(wc -l < "$RESULTS")
if [ "$CI" = 1 ]; then
  [ "$ran" -gt 0 ] && [ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ]
else
  [ "$failed" -eq 0 ]
fi
