#!/usr/bin/env bash
# The compat pass: every test of the oxcd binary's integration suite (`-p oxcd-server --test
# it`) against Debian's etcd 3.4.23, except the reviewed oxcd-only allow-list
# (crates/server/tests/it/oxcd_only.txt, one test a line with its reason). A listed name that
# names no test fails the pass, so the list cannot hide a renamed test.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LIST=crates/server/tests/it/oxcd_only.txt
mapfile -t ONLY < <(grep -v '^#' "$LIST" | awk 'NF {print $1}')
ALL=$(cargo test -q -p oxcd-server --test it -- --list 2>/dev/null | sed -n 's/: test$//p')
[ -n "$ALL" ] || { echo "compat: listing the tests failed"; exit 1; }
SKIPS=()
for t in "${ONLY[@]}"; do
  grep -qx "$t" <<<"$ALL" || { echo "compat: $LIST names $t, which is not a test"; exit 1; }
  SKIPS+=(--skip "$t")
done
echo "compat: $(wc -l <<<"$ALL") tests, ${#ONLY[@]} oxcd-only skipped (reasons in $LIST)"
exec env OXCD_TEST_SERVER=etcd cargo test --no-fail-fast -p oxcd-server --test it -- \
  "${SKIPS[@]}" "$@"
