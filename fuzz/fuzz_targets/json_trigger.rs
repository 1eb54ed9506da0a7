#![no_main]
//! The JSON trigger body `{cause, repo, branch, branch_to}`. Whatever is accepted is a JSON
//! object (serde alone would read the trigger from an array too), and its branch passes the
//! branch rule.
use libfuzzer_sys::fuzz_target;

/// Whether an accepted text is a JSON object: it parsed whole, so its first non-whitespace
/// byte says what it is. (Not a `serde_json::Value` parse: that refuses a lone surrogate
/// escape in a member the parsers skip, which JSON's grammar allows.)
fn is_object_text(text: &[u8]) -> bool {
    text.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'{')
}

fuzz_target!(|data: &[u8]| {
    if let Ok(trigger) = bridge_core::trigger::parse_json(data) {
        assert!(is_object_text(data), "a trigger that is not an object was accepted");
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
            assert_eq!(value["branch"].as_str(), Some(trigger.branch.as_str()));
        }
    }
});
