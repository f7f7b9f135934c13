//! Peer stream bytes → raft messages stepped into a raft node (`oxcd_etcdserver::fuzz_support`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = oxcd_etcdserver::fuzz_support::raft_message(data);
});
