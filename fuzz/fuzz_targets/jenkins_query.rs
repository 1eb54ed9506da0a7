#![no_main]
//! pagure-ci's `buildWithParameters` query string and optional form body.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let query = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = bridge_core::trigger::parse_jenkins(&query, body);
});
