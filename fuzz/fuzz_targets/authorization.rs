#![no_main]
//! `Authorization` header values (token, Bearer, Basic).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bridge_core::auth::parse_authorization(&String::from_utf8_lossy(data));
});
