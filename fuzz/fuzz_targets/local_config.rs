#![no_main]
//! The local configuration file (TOML): errors, never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = bridge_core::config::LocalConfig::parse(text, std::path::Path::new("/"));
});
