#!/usr/bin/env bash
# Mutation check for the WAL fsync: the power-loss durability test
# (crates/server/tests/it/crash.rs, acknowledged_ops_survive_power_loss) must pass against the
# `crash-journal` build of oxcd and FAIL against the same build with `unsafe-no-fsync`
# (the WAL append fdatasync skipped). If it passed with the sync disabled, it would not be
# checking durability. Exits 0 only when it is GREEN then RED.
#
# Both builds get their own target dirs (the normal one is untouched); set
# OXCD_CRASH_BIN / OXCD_NOFSYNC_BIN to reuse binaries built elsewhere (then nothing is built).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TEST=crash::acknowledged_ops_survive_power_loss
CRASH_TARGET="$ROOT/target/crash-journal"
NOFSYNC_TARGET="$ROOT/target/no-fsync"
CRASH_BIN="${OXCD_CRASH_BIN:-$CRASH_TARGET/debug/oxcd}"
NOFSYNC_BIN="${OXCD_NOFSYNC_BIN:-$NOFSYNC_TARGET/debug/oxcd}"

if [ -z "${OXCD_CRASH_BIN:-}" ]; then
  cargo build -p oxcd-server --bin oxcd --features crash-journal --target-dir "$CRASH_TARGET" || exit 1
fi
if [ -z "${OXCD_NOFSYNC_BIN:-}" ]; then
  cargo build -p oxcd-server --bin oxcd --features crash-journal,unsafe-no-fsync \
    --target-dir "$NOFSYNC_TARGET" || exit 1
fi
cargo test -p oxcd-server --test it --no-run || exit 1

run() {
  env OXCD_TEST_SERVER=oxcd OXCD_CRASH_BIN="$1" \
    cargo test -q -p oxcd-server --test it "$TEST" -- --exact --nocapture 2>&1
}

echo "=== GREEN expected: $TEST with fsync ($CRASH_BIN)"
green_out=$(run "$CRASH_BIN"); green=$?
echo "$green_out" | grep -E "power loss:|acknowledged ops|test result|panicked" | tail -n 20

echo "=== RED expected: $TEST without fsync ($NOFSYNC_BIN)"
red_out=$(run "$NOFSYNC_BIN"); red=$?
echo "$red_out" | grep -E "power loss:|acknowledged ops|differences|missing|did not become ready|panicked|test result" | head -n 30

rc=0
if [ "$green" -ne 0 ]; then
  echo "FAIL: the durability test failed with fsync enabled (exit $green)"; rc=1
fi
if [ "$red" -eq 0 ]; then
  echo "FAIL: the durability test passed with fsync DISABLED: it does not notice lost writes"; rc=1
elif ! grep -q "power loss:" <<<"$red_out"; then
  # It must fail on durability, after a simulated power loss, not on a setup problem.
  echo "FAIL: with fsync disabled the test failed before any power loss (setup problem?)"; rc=1
fi
[ "$rc" -eq 0 ] && echo "OK: fsync mutation detected (green with fsync, red without)"
exit $rc
