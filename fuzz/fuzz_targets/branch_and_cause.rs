#![no_main]
//! Branch names and causes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if bridge_core::validate::check_branch(&text).is_ok() {
        assert!(!text.contains("..") && !text.starts_with('-') && !text.chars().any(|c| c.is_ascii_control()));
    }
    if let Ok(cause) = bridge_core::validate::parse_cause(&text) {
        assert_eq!(bridge_core::validate::parse_cause(&cause.as_trigger_value()), Ok(cause));
    }
});
