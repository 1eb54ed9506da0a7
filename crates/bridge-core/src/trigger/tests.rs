use super::*;
use crate::config::ProjectConfig;

pub(crate) fn project() -> ProjectConfig {
    crate::fakes::demo_project()
}

fn raw(cause: &str, branch_to: Option<&str>) -> RawTrigger {
    RawTrigger {
        cause: cause.into(),
        repo: "git://127.0.0.1:5602/demo.git".into(),
        branch: "feature-1".into(),
        branch_to: branch_to.map(String::from),
        rebuild: false,
    }
}

#[test]
fn commit_and_pr_normalise() {
    let sha = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
    let r = normalise(&project(), raw(sha, Some("None")), TriggerKind::Jenkins, OffsetDateTime::UNIX_EPOCH)
        .expect("commit");
    assert_eq!(r.cause, Cause::Commit { sha: sha.into() });
    assert_eq!(r.branch_to, None);
    let r = normalise(&project(), raw("1", Some("main")), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).expect("pr");
    assert_eq!(r.cause, Cause::PullRequest { id: 1 });
    assert_eq!(r.branch_to.as_deref(), Some("main"));
    assert!(normalise(&project(), raw("1", None), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).is_err());
    assert!(normalise(&project(), raw(sha, Some("main")), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).is_err());
}

/// Each refusal has its kind and code; a field rule's refusal keeps the rule's error.
#[test]
fn refusals_say_their_kind_and_keep_the_field_rule() {
    let refuse = |raw: RawTrigger| {
        normalise(&project(), raw, TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).expect_err("refused")
    };
    let elsewhere = refuse(RawTrigger { repo: "https://evil.example/demo.git".into(), ..raw("1", Some("main")) });
    assert_eq!((elsewhere.kind, elsewhere.code()), (TriggerErrorKind::RepoNotAllowed, "repo_not_allowed"));
    assert!(matches!(elsewhere.field, Some(FieldError::Repo(_))), "{elsewhere:?}");
    let cause = refuse(raw("zero", Some("main")));
    assert_eq!(cause.code(), "invalid_cause");
    assert_eq!(std::error::Error::source(&cause).map(ToString::to_string), Some(cause.reason.clone()));
    let target = refuse(raw("1", Some("-x")));
    assert_eq!(target.code(), "invalid_branch");
    assert!(target.reason.starts_with("branch_to: branch \"-x\""), "{}", target.reason);
    assert!(matches!(&target.field, Some(FieldError::Branch { name, .. }) if name == "-x"));
    let missing = refuse(raw("1", None));
    assert_eq!((missing.code(), missing.field), ("missing_field", None));
}

#[test]
fn jenkins_parameters() {
    let call = parse_jenkins("cause=2&REPO=git%3A%2F%2F127.0.0.1%3A5602%2Fforks%2Fbob%2Fdemo.git&BRANCH=bob-fix&BRANCH_TO=main&token=T&delay=0sec", b"").expect("parse");
    assert_eq!(call.trigger.repo, "git://127.0.0.1:5602/forks/bob/demo.git");
    assert_eq!(call.token.as_deref(), Some("T"));
    assert!(parse_jenkins("cause=1&cause=2&REPO=r&BRANCH=b", b"").is_err());
    assert!(parse_jenkins("cause=1&REPO=r", b"").is_err());
    let form = parse_jenkins("token=T", b"cause=1&REPO=r&BRANCH=b&BRANCH_TO=main").expect("form");
    assert_eq!(form.trigger.cause, "1");
}

#[test]
fn json_accepts_numeric_cause() {
    let t = parse_json(br#"{"cause": 3, "repo": "r", "branch": "b", "branch_to": "main"}"#).expect("json");
    assert_eq!(t.cause, "3");
    assert!(parse_json(br#"{"cause": "3", "repo": "r", "branch": "b", "extra": 1}"#).is_err());
    assert!(parse_json(br#"[]"#).is_err());
}

/// serde reads a struct from an array in field order; the contract says object.
#[test]
fn json_trigger_spelled_as_an_array_is_refused() {
    let sha = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
    for body in [
        format!(r#"["{sha}", "git://127.0.0.1:5602/demo.git", "main", null]"#),
        format!(r#"["{sha}", "git://127.0.0.1:5602/demo.git", "main", null, false]"#),
        r#"[1, "r", "b", "main"]"#.to_owned(),
    ] {
        let error = parse_json(body.as_bytes()).expect_err(&body);
        assert_eq!(error.code(), "malformed_body");
        assert!(error.reason.contains("invalid type: sequence"), "{}", error.reason);
    }
    for body in ["\"cause\"", "1", "null", "true"] {
        assert_eq!(parse_json(body.as_bytes()).expect_err(body).code(), "malformed_body");
    }
}

fn approving_project() -> ProjectConfig {
    ProjectConfig { approval_phrase: Some("/ok-to-test".into()), ..project() }
}

const HEAD: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";

#[test]
fn json_and_jenkins_doors_cannot_approve() {
    // The JSON trigger has no such field (unknown fields are refused) ...
    let body = format!(
        r#"{{"cause": 4, "repo": "r", "branch": "b", "branch_to": "main", "approval": {{"by": "carol", "commit": "{HEAD}"}}}}"#
    );
    assert_eq!(parse_json(body.as_bytes()).expect_err("approval field").code(), "malformed_body");
    // ... and Jenkins ignores parameters it does not declare.
    let call = parse_jenkins(&format!("cause=4&REPO=r&BRANCH=b&BRANCH_TO=main&approval={HEAD}&approved_by=carol"), b"")
        .expect("parse");
    let request = normalise(
        &approving_project(),
        RawTrigger { repo: "git://127.0.0.1:5602/demo.git".into(), ..call.trigger },
        TriggerKind::Jenkins,
        OffsetDateTime::UNIX_EPOCH,
    )
    .expect("request");
    assert_eq!(request.approval, None);
}
