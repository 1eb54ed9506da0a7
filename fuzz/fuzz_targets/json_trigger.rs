#![no_main]
//! The JSON trigger body `{cause, repo, branch, branch_to}`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bridge_core::trigger::parse_json(data);
});
