//! Mutated backend (redb) file → open, index rebuild and reads (`oxcd_mvcc::fuzz_support`).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod scratch;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(scratch::scratch);
    let _ = oxcd_mvcc::fuzz_support::backend_recovery(dir.path(), data);
});
