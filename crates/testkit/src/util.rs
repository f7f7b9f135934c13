//! Small helpers for "eventually" conditions and test serialisation.
//!
//! Invariants: [`poll`] is bounded in time and count; [`serial`] is poison-tolerant, so one
//! failed test does not fail the others that share the lock.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the per-process lock that makes cluster tests run one at a time (the machine has
/// two cores; two clusters under load at once would make timing assertions flaky).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    for _ in 0..100_000 {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Whether an error text is one of the errors etcd gives for a write/read that cannot be
/// served without a quorum.
pub fn is_no_quorum_error(e: &str) -> bool {
    let e = e.to_lowercase();
    e.contains("request timed out")
        || e.contains("no leader")
        || e.contains("leader changed")
        || e.contains("timed out")
        || e.contains("deadline")
}
