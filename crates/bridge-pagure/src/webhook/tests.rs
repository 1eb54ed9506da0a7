use bridge_core::auth::sign256;
use bridge_core::config::ProjectConfig;
use bridge_core::model::TriggerKind;
use bridge_core::trigger::normalise;
use time::OffsetDateTime;

use super::*;

fn project() -> ProjectConfig {
    bridge_core::fakes::demo_project()
}

const KEY: &str = "UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7";
const PUSH: &[u8] = br#"{"topic": "git.receive", "msg": {"branch": "main", "end_commit": "05bab967134e26fd2a307065b49ce0bc2a2063ed", "project_fullname": "demo"}}"#;

/// A delivery's headers: each `(name, value)` given, the rest absent.
fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(http::HeaderName::from_bytes(name.as_bytes()).expect("name"), value.parse().expect("value"));
    }
    map
}

fn deliver(pairs: &[(&str, &str)], body: &[u8]) -> Result<WebhookOutcome, TriggerError> {
    PagureWebhooks.read_delivery(&project(), &headers(pairs), body, &Secret::new(KEY), &[])
}

#[test]
fn a_signed_delivery_from_the_instance_is_read() {
    let signature = sign256(PUSH, &Secret::new(KEY));
    // The instance with or without its trailing slash, header names in any case.
    for instance in ["http://127.0.0.1:5600/", "http://127.0.0.1:5600"] {
        let outcome = deliver(
            &[("X-Pagure-Signature-256", &signature), ("X-Pagure", instance), ("X-Pagure-Topic", "git.receive")],
            PUSH,
        );
        let Ok(WebhookOutcome::Build(raw)) = outcome else { panic!("{instance}: {outcome:?}") };
        assert_eq!((raw.branch.as_str(), raw.repo.as_str()), ("main", "git://127.0.0.1:5602/demo.git"));
    }
}

/// Each refusal in the order the door checks: the signature before anything else of the
/// delivery is believed.
#[test]
fn refusals_are_typed_and_the_signature_comes_first() {
    let good = sign256(PUSH, &Secret::new(KEY));
    let wrong = sign256(PUSH, &Secret::new("another key"));
    let refuse = |pairs: &[(&str, &str)]| deliver(pairs, PUSH).expect_err("refused");

    let missing = refuse(&[("x-pagure", "http://127.0.0.1:5600/"), ("x-pagure-topic", "git.receive")]);
    assert_eq!((missing.kind, missing.code()), (TriggerErrorKind::MissingCredentials, "missing_credentials"));
    assert_eq!(missing.reason, "X-Pagure-Signature-256 is missing: is this a Pagure web-hook?");

    // A bad signature is refused as such, even from another instance and without a topic.
    let bad = refuse(&[("x-pagure-signature-256", &wrong), ("x-pagure", "https://evil.example/")]);
    assert_eq!(
        (bad.kind, bad.code(), bad.reason.as_str()),
        (TriggerErrorKind::InvalidSignature, "invalid_signature", BAD_SIGNATURE)
    );

    let elsewhere = refuse(&[("x-pagure-signature-256", &good), ("x-pagure", "https://evil.example/")]);
    assert_eq!((elsewhere.kind, elsewhere.code()), (TriggerErrorKind::WrongInstance, "wrong_instance"));
    assert_eq!(elsewhere.reason, "web-hooks for `demo-job` must come from http://127.0.0.1:5600/ (X-Pagure)");
    let unnamed = refuse(&[("x-pagure-signature-256", &good)]);
    assert_eq!(unnamed.kind, TriggerErrorKind::WrongInstance);

    let no_topic = refuse(&[("x-pagure-signature-256", &good), ("x-pagure", "http://127.0.0.1:5600/")]);
    assert_eq!((no_topic.kind, no_topic.code()), (TriggerErrorKind::MissingField, "missing_field"));
    assert_eq!(no_topic.reason, "X-Pagure-Topic is missing");

    // An empty key signs nothing.
    let outcome = PagureWebhooks.read_delivery(
        &project(),
        &headers(&[("x-pagure-signature-256", &sign256(PUSH, &Secret::default()))]),
        PUSH,
        &Secret::default(),
        &[],
    );
    assert_eq!(outcome.expect_err("empty key").kind, TriggerErrorKind::InvalidSignature);
}

#[test]
fn webhook_structs_spelled_as_arrays_are_refused() {
    let body = br#"{"topic": "git.receive", "msg": ["main", "05bab967134e26fd2a307065b49ce0bc2a2063ed", "demo"]}"#;
    let error = parse_webhook(&project(), "git.receive", body, &[]).expect_err("msg as an array");
    assert_eq!(error.code(), "malformed_body");
    let body = br#"["git.receive", {"branch": "main", "end_commit": "05bab967134e26fd2a307065b49ce0bc2a2063ed", "project_fullname": "demo"}]"#;
    assert!(parse_webhook(&project(), "git.receive", body, &[]).is_err(), "envelope as an array");
    let ignored = parse_webhook(&project(), "project.edit", br#"{"topic": "project.edit", "msg": {"a": 1}}"#, &[]);
    assert!(matches!(ignored, Ok(WebhookOutcome::Ignore(_))), "{ignored:?}");
    for msg in ["[]", "1", "null"] {
        let body = format!(r#"{{"topic": "project.edit", "msg": {msg}}}"#);
        assert!(parse_webhook(&project(), "project.edit", body.as_bytes(), &[]).is_err(), "msg {msg}");
    }
}

fn approving_project() -> ProjectConfig {
    ProjectConfig { approval_phrase: Some("/ok-to-test".into()), ..project() }
}

const HEAD: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";

/// A `pull-request.comment.added` body of a fork PR whose comments are (author, text,
/// notification), oldest first.
fn comment_added(comments: &[(&str, &str, bool)], commit_stop: serde_json::Value) -> Vec<u8> {
    let comments: Vec<serde_json::Value> = comments
        .iter()
        .enumerate()
        .map(|(i, (user, comment, notification))| {
            serde_json::json!({"id": i + 1, "comment": comment, "notification": notification,
                "user": {"name": user, "fullname": user}})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"topic": "pull-request.comment.added", "msg": {"pullrequest": {
        "id": 4, "branch": "main", "branch_from": "fix", "status": "Open", "project": {"fullname": "demo"},
        "repo_from": {"fullname": "forks/mallory/demo"}, "remote_git": null, "commit_stop": commit_stop,
        "user": {"name": "mallory"}, "comments": comments}}}))
    .expect("json")
}

fn rebuild_phrases() -> Vec<String> {
    vec!["pretty please pagure-ci rebuild".into()]
}

#[test]
fn an_approval_comment_carries_its_author_and_the_head() {
    let body = comment_added(&[("mallory", "please test", false), ("carol", "  /ok-to-test\n", false)], HEAD.into());
    let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
    let Ok(WebhookOutcome::Approve(raw, approval)) = outcome else { panic!("{outcome:?}") };
    assert_eq!(approval, Approval { by: "carol".into(), commit: HEAD.into() });
    assert!(raw.rebuild);
    assert_eq!((raw.cause.as_str(), raw.repo.as_str()), ("4", "git://127.0.0.1:5602/forks/mallory/demo.git"));
    let request = normalise(&approving_project(), raw.clone(), TriggerKind::Webhook, OffsetDateTime::UNIX_EPOCH)
        .expect("request");
    assert_eq!(request.approval, None, "normalise alone never approves");
    let approved = request.clone().approved(approval);
    assert_ne!(approved.idempotency_key, request.idempotency_key);

    // Without an approval phrase, the same comment is just a comment.
    let outcome = parse_webhook(&project(), "pull-request.comment.added", &body, &rebuild_phrases());
    assert_eq!(outcome, Ok(WebhookOutcome::Ignore("the new comment does not ask for a rebuild".into())));
    // A rebuild phrase still asks for a plain rebuild.
    let body = comment_added(&[("carol", "pretty please pagure-ci rebuild", false)], HEAD.into());
    let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
    assert!(matches!(outcome, Ok(WebhookOutcome::Build(ref raw)) if raw.rebuild), "{outcome:?}");
}

#[test]
fn only_the_newest_real_comment_approves() {
    // An approval followed by Pagure's notification of a push: the push is not approved.
    let body =
        comment_added(&[("carol", "/ok-to-test", false), ("mallory", "**1 new commit added**", true)], HEAD.into());
    let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
    assert!(matches!(outcome, Ok(WebhookOutcome::Ignore(_))), "{outcome:?}");
    // An approval followed by another comment: that comment is the event.
    let body = comment_added(&[("carol", "/ok-to-test", false), ("mallory", "thanks!", false)], HEAD.into());
    let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
    assert!(matches!(outcome, Ok(WebhookOutcome::Ignore(ref why)) if why.contains("/ok-to-test")), "{outcome:?}");
    // The phrase quoted inside a longer comment is not the phrase.
    let body = comment_added(&[("carol", "do not /ok-to-test yet", false)], HEAD.into());
    assert!(matches!(
        parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases()),
        Ok(WebhookOutcome::Ignore(_))
    ));
}

#[test]
fn an_approval_without_a_head_or_an_author_is_refused() {
    for commit_stop in [serde_json::Value::Null, "abc".into(), "main".into()] {
        let body = comment_added(&[("carol", "/ok-to-test", false)], commit_stop.clone());
        let error = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases())
            .expect_err("no head");
        assert!(error.reason.contains("commit_stop"), "{commit_stop}: {}", error.reason);
    }
    let body = comment_added(&[(" ", "/ok-to-test", false)], HEAD.into());
    let error = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases())
        .expect_err("no author");
    assert!(error.reason.contains("user.name"), "{}", error.reason);
}

#[test]
fn fork_clone_url_uses_the_fork_path() {
    assert_eq!(fork_clone_url(&project(), "forks/bob/demo"), "git://127.0.0.1:5602/forks/bob/demo.git");
}

/// Strings built from the characters that matter to the parsers.
fn tricky() -> impl proptest::strategy::Strategy<Value = String> {
    proptest::string::string_regex(r"[a-zA-Z0-9./:@%?#&=\-_~^*\[\]\\{} \n\t\u{0}\u{7f}é]{0,60}").expect("regex")
}

proptest::proptest! {
    #[test]
    fn webhook_never_panics(topic in tricky(), body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = parse_webhook(&project(), &topic, &body, &["pretty please pagure-ci rebuild".into()]);
    }

    #[test]
    fn webhook_shaped_input(branch in tricky(), end in tricky(), fullname in tricky(), id in proptest::prelude::any::<u64>()) {
        let project = &project();
        let receive = serde_json::json!({"topic": "git.receive", "msg": {"branch": branch, "end_commit": end, "project_fullname": fullname}});
        let _ = parse_webhook(project, "git.receive", receive.to_string().as_bytes(), &[]);
        let pr = serde_json::json!({"topic": "pull-request.new", "msg": {"pullrequest": {"id": id, "branch": branch, "branch_from": end,
            "status": "Open", "project": {"fullname": fullname}, "repo_from": {"fullname": fullname}}}});
        let _ = parse_webhook(project, "pull-request.new", pr.to_string().as_bytes(), &[]);
    }

    /// Whatever the headers say, an unsigned body is never read.
    #[test]
    fn unsigned_deliveries_are_refused(signature in "[ -~]{0,70}", instance in "[ -~]{0,40}", body in tricky()) {
        let outcome = deliver(
            &[("x-pagure-signature-256", &signature), ("x-pagure", &instance), ("x-pagure-topic", "git.receive")],
            body.as_bytes(),
        );
        let refused = outcome.expect_err("unsigned");
        proptest::prop_assert_eq!(refused.kind, TriggerErrorKind::InvalidSignature);
    }
}
