//! Mutated snapshot file → status and restore (`oxcd_storage::fuzz_support`).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod scratch;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(scratch::scratch);
    let _ = oxcd_storage::fuzz_support::snapshot_restore(dir.path(), data);
});
