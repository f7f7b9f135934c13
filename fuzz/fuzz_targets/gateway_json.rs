//! Gateway request bodies → JSON decoding (`oxcd_http::fuzz_support`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = oxcd_http::fuzz_support::gateway_json(data);
});
