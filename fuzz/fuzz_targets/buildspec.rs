#![no_main]
//! Buildspec YAML from a repository's default branch: injection never panics, and what it
//! writes parses again with the variables in place.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let vars = [("PAGURE_CAUSE", "42".to_owned()), ("PAGURE_COMMIT", "1234567e12".to_owned())];
    if let Ok(out) = bridge_core::buildspec::inject(text, &vars) {
        let again = bridge_core::buildspec::inject(&out.text, &vars).expect("injected output is a valid buildspec");
        assert_eq!(again.overridden, ["PAGURE_CAUSE", "PAGURE_COMMIT"]);
    }
});
