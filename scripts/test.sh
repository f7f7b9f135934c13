#!/usr/bin/env bash
# The project's test command (README, CI via .ci/run). On a fresh Debian 12 machine it:
#   1. installs what is missing: etcd-server/etcd-client (the real etcd 3.4 for compat runs)
#      and a Python venv at .venv with python-etcd3 and pytest;
#   2. builds the workspace and three test-only builds of oxcd (failpoints, crash-journal,
#      no-fsync: see below) and runs `cargo test --workspace` (against oxcd) and the fsync
#      mutation check (scripts/fsync_mutation.sh);
#   3. runs the compat pass against real etcd: every integration test but the reviewed
#      oxcd-only list (scripts/compat.sh, crates/server/tests/it/oxcd_only.txt);
#   4. runs the Python tests against oxcd and against etcd;
#   5. runs the CI subset of etcd 3.4.23's own e2e suite against oxcd (scripts/e2e.sh --ci);
#   6. runs the dashboard's end-to-end tests (tests/ui: node --test, playwright-core driving
#      Debian's chromium; apt installs chromium/chromium-driver, `npm ci` the test deps);
#   7. checks formatting (cargo fmt --check) and lints (cargo clippy -D warnings).
# Every step runs even if an earlier one failed; the exit status is non-zero if any failed.
# Servers are started by the tests themselves on 127.0.0.1 with random ports.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A fresh clone gains nothing from incremental caches; they only take disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
VENV="$ROOT/.venv"
START=$(date +%s)

PASSED=()
FAILED=()

log() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# step NAME TIMEOUT_SECONDS CMD... : runs CMD bounded in time and records the outcome.
step() {
  local name="$1" secs="$2"
  shift 2
  log "$name"
  if timeout --kill-after=30 "$secs" bash -c '"$@"' "$name" "$@"; then
    PASSED+=("$name")
  else
    local rc=$?
    [ "$rc" -eq 124 ] && echo "!!! $name timed out after ${secs}s"
    echo "!!! $name failed (exit $rc)"
    FAILED+=("$name")
    return 1
  fi
}

apt_install() {
  # Keep package scripts from starting services (no daemons left behind).
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  local rc=0
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq || rc=$?
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || rc=$?
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  return $rc
}

install_etcd() {
  # protoc (Debian's, 3.21) is needed to build the etcd-client crate used by the tests.
  # openssl: the Python TLS tests make their certificates with it.
  if [ -x /usr/bin/etcd ] && [ -x /usr/bin/etcdctl ] && command -v protoc >/dev/null &&
    command -v openssl >/dev/null; then
    return 0
  fi
  log "installing etcd-server etcd-client protobuf-compiler"
  apt_install etcd-server etcd-client protobuf-compiler openssl
}

venv_ok() {
  [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<'PY' 2>/dev/null
import etcd3, etcd3gw, pytest, tenacity, google.protobuf as pb
assert pb.__version__ == "3.20.3", pb.__version__
PY
}

install_venv() {
  venv_ok && return 0
  log "creating Python venv at $VENV"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    apt_install python3-venv python3-pip || return 1
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV" || return 1
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "etcd3==0.12.0" "protobuf==3.20.3" "tenacity==6.3.1" "etcd3gw==2.7.0" pytest || return 1
  venv_ok
}

install_ui_deps() {
  # The dashboard tests: Debian's Chromium (no browser download) and playwright-core from
  # npm (package-lock.json pins it). With CI=true a missing Chromium fails the tests.
  if ! [ -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null || ! command -v npm >/dev/null; then
    log "installing chromium chromium-driver npm"
    apt_install chromium chromium-driver fonts-liberation nodejs npm || return 1
  fi
  (cd tests/ui && npm ci --no-audit --no-fund)
}

ui_run() {
  (cd tests/ui && node --test --test-concurrency=1)
}

pytest_run() {
  # pytest exits 5 when it collected no tests: that is a failure here.
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
}

export ROOT VENV START
export -f log apt_install install_etcd venv_ok install_venv install_ui_deps ui_run pytest_run

step "install etcd 3.4 and protoc (apt)" 900 install_etcd
step "install python venv" 900 install_venv
step "install chromium and the UI test deps (apt, npm ci)" 900 install_ui_deps
step "cargo fmt --check" 300 cargo fmt --all -- --check
OXCD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/oxcd"
# Test-only builds of oxcd share one target dir of their own (the normal one is untouched;
# registry crates compile once for all three); each binary is copied out after its build:
#   failpoints      the robustness suite's fail-point scenario (OXCD_FAILPOINTS_BIN);
#   crash-journal   the power-loss durability test (OXCD_CRASH_BIN);
#   no-fsync        crash-journal with the WAL fdatasync skipped: the mutant the power-loss
#                   test must catch (OXCD_NOFSYNC_BIN, scripts/fsync_mutation.sh).
# A missing binary makes its test fail, never skip.
FEAT_TARGET="$ROOT/target/features"
FEAT_BINS="$ROOT/target/feature-bins"
export OXCD_FAILPOINTS_BIN="$FEAT_BINS/oxcd-failpoints"
export OXCD_CRASH_BIN="$FEAT_BINS/oxcd-crash-journal"
export OXCD_NOFSYNC_BIN="$FEAT_BINS/oxcd-no-fsync"
export CI="${CI:-true}"   # the test command never skips (OXCD_ALLOW_SKIP is ignored in CI)
build_feature_bin() {
  cargo build -p oxcd-server --bin oxcd --features "$2" --target-dir "$FEAT_TARGET" &&
    mkdir -p "$FEAT_BINS" && cp "$FEAT_TARGET/debug/oxcd" "$FEAT_BINS/oxcd-$1"
}
export FEAT_TARGET FEAT_BINS
export -f build_feature_bin
step "cargo build oxcd --features failpoints" 2400 build_feature_bin failpoints failpoints
step "cargo build oxcd --features crash-journal" 2400 build_feature_bin crash-journal crash-journal
step "cargo build oxcd --features crash-journal,unsafe-no-fsync" 2400 \
  build_feature_bin no-fsync crash-journal,unsafe-no-fsync
if step "cargo build (workspace, all targets)" 2400 cargo test --workspace --no-run; then
  step "cargo clippy -D warnings" 1800 cargo clippy --workspace --all-targets -- -D warnings
  step "cargo test --workspace (oxcd)" 1800 env OXCD_TEST_SERVER=oxcd cargo test --workspace --no-fail-fast
  step "fsync mutation (durability test green with fsync, red without)" 900 bash scripts/fsync_mutation.sh
  # Every integration test but the reviewed oxcd-only list, against real etcd.
  step "cargo compat tests (real etcd)" 1500 bash scripts/compat.sh
  step "python tests (oxcd)" 600 env OXCD_TEST_SERVER=oxcd OXCD_BIN="$OXCD_BIN" bash -c pytest_run
  # etcd 3.4.23's own e2e suite, the subset that fits CI (scripts/e2e-ci.txt); the full
  # suite is `scripts/e2e.sh` (and `--reference` for Debian's etcd).
  step "etcd e2e suite (CI subset)" 1800 bash scripts/e2e.sh --ci
  step "dashboard tests (headless chromium)" 600 env OXCD_BIN="$OXCD_BIN" bash -c ui_run
else
  FAILED+=("cargo test --workspace (oxcd): skipped, build failed")
  FAILED+=("cargo compat tests (real etcd): skipped, build failed")
  FAILED+=("python tests (oxcd): skipped, build failed")
  FAILED+=("etcd e2e suite (CI subset): skipped, build failed")
  FAILED+=("fsync mutation: skipped, build failed")
  FAILED+=("dashboard tests: skipped, build failed")
fi
step "python tests (real etcd)" 600 env OXCD_TEST_SERVER=etcd bash -c pytest_run

log "summary ($(( $(date +%s) - START ))s)"
for s in "${PASSED[@]}"; do echo "  ok    $s"; done
for s in "${FAILED[@]}"; do echo "  FAIL  $s"; done
echo "steps: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
[ "${#FAILED[@]}" -eq 0 ]
