//! Power-loss crashes for durability tests: the `crash-journal` build of oxcd (found through
//! [`CRASH_BIN_ENV`]) journals every WAL fdatasync, and [`lose_unsynced_wal`] makes its WAL
//! read, after a `kill -9`, as it would after a power loss (see
//! `oxcd_storage::crash_journal`).
//!
//! Invariants: [`crash_bin`] never falls back to another binary (a build without the
//! journal cannot simulate the loss); a missing build fails the test unless skipping is
//! allowed ([`crate::skip`]). [`lose_unsynced_wal`] is only called on a stopped server.

use std::path::{Path, PathBuf};

use crate::skip::skip_or_fail;

/// Env var naming the oxcd binary built with `--features crash-journal`.
pub const CRASH_BIN_ENV: &str = "OXCD_CRASH_BIN";

/// The `crash-journal` build from `OXCD_CRASH_BIN`, or `None` after [`skip_or_fail`]
/// allowed `test` to skip (otherwise it panics).
pub fn crash_bin(test: &str) -> Option<PathBuf> {
    let how = "build it with `cargo build -p oxcd-server --bin oxcd --features crash-journal \
               --target-dir target/crash-journal` and set \
               OXCD_CRASH_BIN=<workspace>/target/crash-journal/debug/oxcd";
    match std::env::var_os(CRASH_BIN_ENV).map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        Some(p) => {
            skip_or_fail(
                test,
                &format!("{CRASH_BIN_ENV}={} does not exist: {how}", p.display()),
            );
            None
        }
        None => {
            skip_or_fail(test, &format!("{CRASH_BIN_ENV} is not set: {how}"));
            None
        }
    }
}

/// Reverts every WAL segment under `<data_dir>/member/wal` to its last synced content.
/// Returns a one-line summary (segments, bytes lost). Fails without a journal.
pub fn lose_unsynced_wal(data_dir: &Path) -> Result<String, String> {
    let dir = data_dir.join("member").join("wal");
    let reverted = oxcd_storage::crash_journal::revert_unsynced(&dir).map_err(|e| e.to_string())?;
    if reverted.is_empty() {
        return Err(format!("no *.wal segment under {}", dir.display()));
    }
    let lost: u64 = reverted.iter().map(|r| r.lost_bytes).sum();
    let detail: Vec<String> = reverted
        .iter()
        .map(|r| {
            format!(
                "{} synced {} lost {}",
                r.file.file_name().unwrap_or_default().to_string_lossy(),
                r.synced,
                r.lost_bytes
            )
        })
        .collect();
    Ok(format!(
        "power loss: {lost} unsynced bytes dropped ({})",
        detail.join("; ")
    ))
}
