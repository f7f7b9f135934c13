#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz) for a bounded time and prints, per target, the
# executions and the findings (crash-/timeout-/oom- files under fuzz/artifacts/<target>/).
#   scripts/fuzz.sh [seconds per target, default 60] [target...]
# The committed seeds (fuzz/corpus/<target>/) are copied to a scratch corpus
# (fuzz/target/corpus/<target>/) that the run grows, so the repository's corpus stays small;
# copy interesting new inputs back by hand. Needs cargo-fuzz (`cargo install cargo-fuzz`);
# nightly flags come from RUSTC_BOOTSTRAP=1 on the stable toolchain. Not part of CI: the
# corpus replay tests (`fuzz_support` in each crate) run inside `cargo test`.
# Exit status: non-zero if any target found something or failed to run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
SECS="${1:-60}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -eq 0 ] && TARGETS=(request_decode raft_message wal_recovery snapshot_restore gateway_json backend_recovery)

# No sanitizer: the workspace forbids unsafe code, so ASan would only slow the search;
# release with debug assertions (cargo-fuzz's default) so overflows panic.
for t in "${TARGETS[@]}"; do cargo fuzz build -s none -O "$t" 2>&1 | tail -2 || exit 1; done

# The targets' scratch dirs (one per process, kept for its lifetime) go here, on tmpfs.
SCRATCH_PARENT=/dev/shm
[ -d "$SCRATCH_PARENT" ] || SCRATCH_PARENT="${TMPDIR:-/tmp}"
OXCD_FUZZ_SCRATCH="$(mktemp -d "$SCRATCH_PARENT/oxcd-fuzz.XXXXXX")" || exit 1
export OXCD_FUZZ_SCRATCH
trap 'rm -rf "$OXCD_FUZZ_SCRATCH"' EXIT

status=0
summary=()
for t in "${TARGETS[@]}"; do
  corpus="target/corpus/$t"
  art="artifacts/$t"
  mkdir -p "$corpus" "$art"
  cp -n corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  before=$(find "$art" -type f | wc -l)
  log="target/fuzz-$t.log"
  maxlen=8192
  [ "$t" = backend_recovery ] && maxlen=131072   # a small redb file is ~50 KB
  echo "=== $t (${SECS}s)"
  cargo fuzz run -s none -O "$t" "$corpus" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
    -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  found=$(( $(find "$art" -type f | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status=1
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -5
  fi
  summary+=("$(printf '%-18s execs=%-10s findings=%s exit=%s' "$t" "${execs:-?}" "$found" "$rc")")
done
echo
echo "=== summary (${SECS}s per target; logs in fuzz/target/fuzz-<target>.log)"
printf '%s\n' "${summary[@]}"
exit $status
