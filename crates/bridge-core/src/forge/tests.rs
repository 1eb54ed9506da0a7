use super::*;

#[test]
fn project_paths_follow_the_contract() {
    assert_eq!(FlagTarget::project_path(Some("rpms"), "bash", None), "rpms/bash");
    assert_eq!(FlagTarget::project_path(None, "demo", Some("bob")), "fork/bob/demo");
    assert_eq!(FlagTarget::project_path(Some("ns"), "demo", Some("bob")), "fork/bob/ns/demo");
}

#[test]
fn url_rule_matches_pagure() {
    for good in [
        "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/1/projects/p/build/p%3Aab/?region=eu-west-1",
        "http://localhost:8080/runs/1",
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "ftp://ci.example.org/log",
        "git://example.io/x#frag",
    ] {
        assert!(url_acceptable(good), "{good}");
    }
    for bad in ["http://ci/1", "file:///etc/passwd", "https://example.c0m/", "not a url", "https://.io/"] {
        assert!(!url_acceptable(bad), "{bad}");
    }
}

#[test]
fn flag_checks_uid_and_fields() {
    let flag = Flag {
        username: "AWS CodeBuild".into(),
        comment: "Build #1 running".into(),
        url: "https://example.org/".into(),
        status: FlagStatus::Pending,
        percent: None,
        uid: "0123456789abcdef0123456789abcdef".into(),
    };
    assert_eq!(flag.check(), Ok(()));
    let long = Flag { uid: "x".repeat(33), ..flag.clone() };
    assert!(matches!(long.check(), Err(InvalidFlag(_))));
    let no_comment = Flag { comment: "  ".into(), ..flag.clone() };
    assert!(no_comment.check().is_err());
    let bad_url = Flag { url: "http://ci/1".into(), ..flag };
    assert!(bad_url.check().is_err());
}

#[test]
fn retry_delays_grow_and_stay_capped() {
    let policy = RetryPolicy::default();
    for retry in 1..10 {
        let full = policy.base.saturating_mul(1 << (retry - 1)).min(policy.cap);
        let delay = policy.delay(retry);
        assert!(delay >= full / 2 && delay <= full, "retry {retry}: {delay:?} outside {:?}..={full:?}", full / 2);
    }
}
