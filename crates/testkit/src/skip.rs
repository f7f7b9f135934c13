//! The one skip policy of the test suite: a test that cannot run (no etcd, no venv, no
//! special build) fails, unless skipping was asked for explicitly.
//!
//! Invariant: [`skip_or_fail`] returns (the caller then skips) only when
//! `OXCD_ALLOW_SKIP=1` and `CI` is not `true`; in CI a missing prerequisite is always a
//! failure, so a green CI run never hides a test that did not run.

/// Env var that allows tests to skip when a prerequisite is missing (never in CI).
pub const ALLOW_SKIP_ENV: &str = "OXCD_ALLOW_SKIP";

/// Whether this run is CI (`CI=true`, as set by CI systems and `.ci/run`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether skipping is allowed: `OXCD_ALLOW_SKIP=1` and not in CI.
pub fn skip_allowed() -> bool {
    std::env::var(ALLOW_SKIP_ENV).is_ok_and(|v| v == "1") && !in_ci()
}

/// `test` cannot run because of `why`: prints `SKIP` and returns if skipping is allowed,
/// else panics with `why` and how to fix or skip it.
pub fn skip_or_fail(test: &str, why: &str) {
    if skip_allowed() {
        eprintln!("SKIP {test}: {why} ({ALLOW_SKIP_ENV}=1)");
        return;
    }
    let ci = if in_ci() {
        " (CI=true: skipping is never allowed in CI)"
    } else {
        ""
    };
    panic!("{test} cannot run: {why}. Install/build what is missing, or set {ALLOW_SKIP_ENV}=1 to skip it outside CI{ci}");
}
