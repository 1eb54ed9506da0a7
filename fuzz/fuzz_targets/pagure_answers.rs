#![no_main]
//! Whatever Pagure (or something in front of it) answers: a flag POST's JSON, a flag list,
//! a refusal body with any status, a pull request's JSON, a `hascommit` answer (what the
//! trust classification rests on). Reading never panics; a refusal
//! always keeps its status and says something; whatever is read as Pagure's JSON is a JSON
//! object (serde alone reads `["ek", "", "er"]` as a refusal with an empty error code).
use bridge_core::forge::{FlagOn, FlagTarget};
use bridge_pagure::PagureError;
use bridge_pagure::answers::{flag_list, flag_posted, has_commit, pull_request, pull_request_status, refusal};
use libfuzzer_sys::fuzz_target;

/// Whether an accepted text is a JSON object: it parsed whole, so its first non-whitespace
/// byte says what it is. (Not a `serde_json::Value` parse: that refuses a lone surrogate
/// escape in a member the parsers skip, which JSON's grammar allows.)
fn is_object_text(text: &[u8]) -> bool {
    text.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'{')
}

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else { return };
    let target = FlagTarget { project_path: "fork/bob/rpms/bash".into(), on: FlagOn::PullRequest(2) };
    let is_object = || is_object_text(body);
    if flag_posted(body, &target, "sent-uid").is_ok() {
        assert!(is_object(), "a flag answer that is not an object was read");
    }
    if flag_list(body, &target).is_ok() {
        assert!(is_object(), "a flag list that is not an object was read");
    }
    if pull_request_status(body).is_ok() {
        assert!(is_object(), "a pull request that is not an object was read");
    }
    if let Ok(facts) = pull_request(body) {
        assert!(is_object(), "a pull request that is not an object was read");
        assert!(!facts.author.is_empty() && facts.author == facts.author.trim() && !facts.target_branch.is_empty());
    }
    if let Ok(has) = has_commit(body) {
        // Trust is granted on `"hascommit": true` in an object, and nothing else.
        assert!(is_object(), "a hascommit answer that is not an object was read");
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            assert_eq!(value["hascommit"].as_bool(), Some(has));
        }
    }
    let status = 400 + u16::from(status) % 100;
    match refusal(status, body, &target) {
        PagureError::Refused { status: kept, code, error, .. } => {
            assert_eq!(kept, status);
            assert!(!code.is_empty());
            if code != "(no error_code)" {
                assert!(is_object(), "an error code was read from something else than an object");
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
                    assert_eq!(
                        value["error_code"].as_str(),
                        Some(code.as_str()),
                        "the code is the object's error_code"
                    );
                }
            }
            let _ = error;
        }
        other => panic!("a 4xx answer is a refusal: {other:?}"),
    }
});
