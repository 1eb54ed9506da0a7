#![no_main]
//! Whatever Pagure (or something in front of it) answers: a flag POST's JSON, a flag list,
//! a refusal body with any status, a pull request's JSON. Reading never panics; a refusal
//! always keeps its status and says something.
use bridge_core::pagure::answers::{flag_list, flag_posted, pull_request_status, refusal};
use bridge_core::pagure::{FlagOn, FlagTarget, PagureError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&status, body)) = data.split_first() else { return };
    let target = FlagTarget { project_path: "fork/bob/rpms/bash".into(), on: FlagOn::PullRequest(2) };
    let _ = flag_posted(body, &target, "sent-uid");
    let _ = flag_list(body, &target);
    let _ = pull_request_status(body);
    let status = 400 + u16::from(status) % 100;
    match refusal(status, body, &target) {
        PagureError::Refused { status: kept, code, error, .. } => {
            assert_eq!(kept, status);
            assert!(!code.is_empty());
            let _ = error;
        }
        other => panic!("a 4xx answer is a refusal: {other:?}"),
    }
});
