//! Client request bytes → decode, validate, apply on one store (`oxcd_mvcc::fuzz_support`).
//! The store is replaced every few thousand inputs so it stays small.
#![no_main]
use std::sync::Mutex;

use libfuzzer_sys::fuzz_target;
use oxcd_mvcc::fuzz_support::RequestFuzzer;

mod scratch;

const RUNS_PER_STORE: u32 = 5000;

static STATE: Mutex<Option<(RequestFuzzer, tempfile::TempDir, u32)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if st.as_ref().is_none_or(|s| s.2 >= RUNS_PER_STORE) {
        *st = None;
        let dir = scratch::scratch();
        let f = RequestFuzzer::open(dir.path()).expect("open store");
        *st = Some((f, dir, 0));
    }
    let s = st.as_mut().expect("set above");
    s.2 += 1;
    let _ = s.0.run(data);
});
