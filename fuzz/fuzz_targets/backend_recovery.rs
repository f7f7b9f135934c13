//! Mutated backend (redb) file → open, index rebuild and reads (`oxcd_mvcc::fuzz_support`).
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod scratch;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(|| {
        // `Backend::open` contains redb's panics on corrupt files (it refuses the file), so
        // the default hook replaces libFuzzer's abort-on-any-panic one; a panic that gets
        // out of the function still aborts (libfuzzer-sys catches it and aborts).
        let _ = std::panic::take_hook();
        scratch::scratch()
    });
    let _ = oxcd_mvcc::fuzz_support::backend_recovery(dir.path(), data);
});
