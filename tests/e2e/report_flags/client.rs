//! The flag client against the fake Pagure: one flag per request, added then updated in
//! place; Pagure's refusals, 400 and 500 bodies; retries of timeouts and outages; no token in
//! the logs.

use std::time::Duration;

use bridge_core::auth::Secret;
use bridge_core::forge::{Flag, FlagOn, FlagStatus, FlagTarget};
use bridge_core::retry::Transience;
use bridge_pagure::{FlagPosted, PagureClient, PagureError};
use e2e_tests::fake_pagure::{FakePagure, Fault, Token};
use serde_json::{Value, json};

use super::{SHA, TOKEN, UID, client, pagure};

fn flag(status: FlagStatus, percent: Option<u8>) -> Flag {
    Flag {
        username: "AWS CodeBuild".into(),
        comment: format!("Build #12 {}", status.as_str()),
        url: "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/1/projects/p/build/p%3Aab/?region=eu-west-1"
            .into(),
        status,
        percent,
        uid: UID.into(),
    }
}

fn commit(project: &str) -> FlagTarget {
    FlagTarget { project_path: project.into(), on: FlagOn::Commit(SHA.into()) }
}

fn base(fake: &FakePagure) -> url::Url {
    url::Url::parse(&fake.url).expect("url")
}

/// `flag` posted on [`SHA`] of `project` with `token`.
async fn post(
    client: &PagureClient,
    fake: &FakePagure,
    project: &str,
    flag: &Flag,
    token: &str,
) -> Result<FlagPosted, PagureError> {
    client.post_flag(&base(fake), &commit(project), flag, &Secret::new(token)).await
}

#[tokio::test]
async fn one_flag_per_request_is_added_then_updated_in_place() {
    let fake = pagure().await;
    let client = client();
    let added = post(&client, &fake, "rpms/bash", &flag(FlagStatus::Pending, None), TOKEN).await;
    assert!(!added.expect("added").updated, "a new flag");
    let done = Flag { username: "someone else".into(), ..flag(FlagStatus::Success, Some(100)) };
    let updated = post(&client, &fake, "rpms/bash", &done, TOKEN).await.expect("updated");
    assert_eq!((updated.uid.as_str(), updated.updated), (UID, true));
    let flags = fake.flags();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(
        (flags[0].status.as_str(), flags[0].percent.as_deref(), flags[0].username.as_str()),
        ("success", Some("100"), "AWS CodeBuild"),
        "updated in place; Pagure keeps the first username"
    );
    let seen = fake.seen();
    assert!(seen.iter().all(|r| r.authorization.as_deref() == Some(&*format!("token {TOKEN}"))));
    assert!(seen.iter().all(|r| r.content_type.as_deref() == Some("application/json")));
    let body: Value = serde_json::from_str(&seen[1].body).expect("json body");
    assert_eq!(body["percent"], json!("100"), "percent is a string");
    assert_eq!(body["uid"], json!(UID));
    let listed = client.list_flags(&base(&fake), &commit("rpms/bash")).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, FlagStatus::Success);
    // A PR flag lands on the PR's current head, on the target project.
    let pr = FlagTarget { project_path: "demo".into(), on: FlagOn::PullRequest(2) };
    let other = Flag { uid: "fedcba9876543210fedcba9876543210".into(), ..flag(FlagStatus::Pending, None) };
    client.post_flag(&base(&fake), &pr, &other, &Secret::new(TOKEN)).await.expect("pr flag");
    let on_head = client.list_flags(&base(&fake), &commit("demo")).await.expect("list");
    assert_eq!(on_head.len(), 1);
    // Pagure finds a flag by (commit, uid) whatever the project: the same uid on the same
    // commit of another project updates the first project's flag. Hence globally unique uids.
    post(&client, &fake, "demo", &flag(FlagStatus::Failure, Some(0)), TOKEN).await.expect("clash");
    assert_eq!(fake.flags().iter().filter(|f| f.project == "rpms/bash" && f.status == "failure").count(), 1);
}

#[tokio::test]
async fn refusals_carry_pagures_code_and_are_not_retried() {
    let fake = pagure().await;
    fake.add_token("NOACL", Token { acls: vec!["pull_request_flag"], project: None, expired: false });
    fake.add_token("DEMOONLY", Token { acls: vec!["commit_flag"], project: Some("demo".into()), expired: false });
    fake.add_token("EXPIRED", Token { acls: vec!["commit_flag"], project: None, expired: true });
    let client = client();
    let pending = flag(FlagStatus::Pending, None);
    let cases: [(&str, FlagTarget, u16, &str, Option<&str>); 6] = [
        ("WRONG", commit("demo"), 401, "EINVALIDTOK", Some("Invalid token")),
        ("NOACL", commit("demo"), 401, "EINVALIDTOK", Some("Missing ACLs: commit_flag")),
        ("EXPIRED", commit("demo"), 401, "EINVALIDTOK", Some("Expired token")),
        // A project token used on a fork of its project: 401 without `errors`.
        ("DEMOONLY", commit("fork/bob/demo"), 401, "EINVALIDTOK", None),
        (
            TOKEN,
            FlagTarget { project_path: "fork/bob/demo".into(), on: FlagOn::PullRequest(2) },
            404,
            "EPULLREQUESTSDISABLED",
            None,
        ),
        (TOKEN, commit("nope"), 404, "ENOPROJECT", None),
    ];
    for (token, target, status, code, errors) in cases {
        let before = fake.posts();
        let result = client.post_flag(&base(&fake), &target, &pending, &Secret::new(token)).await;
        let Err(PagureError::Refused { status: got, code: got_code, errors: got_errors, .. }) = &result else {
            panic!("{token} on {target}: {result:?}");
        };
        assert_eq!((*got, got_code.as_str(), got_errors.as_deref()), (status, code, errors), "{target}");
        assert_eq!(fake.posts() - before, 1, "a refusal is not retried");
        let text = result.expect_err("refused").to_string();
        assert!(
            !text.contains(TOKEN) && !text.contains("DEMOONLY") && !text.contains("NOACL") && !text.contains("EXPIRED"),
            "{text}"
        );
    }
    // The 401 text is Pagure's, word for word.
    let result = post(&client, &fake, "demo", &pending, "WRONG").await;
    let message = result.expect_err("refused").to_string();
    assert!(
        message.contains("Invalid or expired token. Please visit http://127.0.0.1:")
            && message.contains("settings#nav-api-tab"),
        "{message}"
    );
}

#[tokio::test]
async fn the_contracts_400_and_500_bodies_are_read() {
    let fake = pagure().await;
    let client = client();
    // CONTRACT.md's "missing fields" answer, replayed byte for byte.
    fake.push_fault(Fault::Status(
        400,
        r#"{"error": "Invalid or incomplete input submitted", "error_code": "EINVALIDREQ", "errors": {"comment": ["This field is required."], "status": ["This field is required."], "url": ["This field is required."]}}"#,
    ));
    let result = post(&client, &fake, "demo", &flag(FlagStatus::Pending, None), TOKEN).await;
    let message = result.expect_err("400").to_string();
    assert!(message.contains("HTTP 400 EINVALIDREQ: Invalid or incomplete input submitted (comment: This field is required.; status: This field is required.; url: This field is required.)"), "{message}");
    // Pagure's 500 is an HTML page: retried, and the next attempt succeeds.
    fake.push_fault(Fault::Status(500, "<!doctype html><h1>Internal Server Error</h1>"));
    fake.push_fault(Fault::Status(503, "busy"));
    let before = fake.posts();
    let posted = post(&client, &fake, "demo", &flag(FlagStatus::Success, Some(100)), TOKEN).await;
    assert!(posted.is_ok(), "{posted:?}");
    assert_eq!(fake.posts() - before, 3, "two failures, then the flag");
    assert_eq!(fake.flags()[0].status, "success");
}

#[tokio::test]
async fn timeouts_are_retried_and_an_outage_ends_in_a_transient_error() {
    let fake = pagure().await;
    let client = client();
    fake.push_fault(Fault::Delay(Duration::from_secs(2)));
    let posted = post(&client, &fake, "demo", &flag(FlagStatus::Pending, None), TOKEN).await;
    assert!(posted.is_ok(), "the attempt after the timeout succeeds: {posted:?}");
    for _ in 0..4 {
        fake.push_fault(Fault::Status(502, "bad gateway"));
    }
    let before = fake.posts();
    let result = post(&client, &fake, "demo", &flag(FlagStatus::Failure, Some(0)), TOKEN).await;
    let error = result.expect_err("outage");
    assert!(error.is_transient(), "{error}");
    assert_eq!(fake.posts() - before, 4, "every attempt was made");
    assert_eq!(fake.flags()[0].status, "pending", "nothing was written during the outage");
}

#[test]
fn tokens_never_reach_the_logs() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (outcomes, logs) = e2e_tests::capture_logs(|| {
        runtime.block_on(async {
            let fake = pagure().await;
            let client = client();
            fake.push_fault(Fault::Status(500, "oops"));
            let ok = post(&client, &fake, "demo", &flag(FlagStatus::Pending, None), TOKEN).await;
            let refused = post(&client, &fake, "demo", &flag(FlagStatus::Pending, None), "SECRETWRONGTOKEN").await;
            (ok.is_ok(), refused.map_err(|e| e.to_string()))
        })
    });
    assert!(outcomes.0);
    let refused = outcomes.1.expect_err("refused");
    assert!(logs.contains("Pagure call failed"), "the retry was logged: {logs}");
    for secret in [TOKEN, "SECRETWRONGTOKEN"] {
        assert!(!logs.contains(secret), "a token is in the logs");
        assert!(!refused.contains(secret), "a token is in the error");
    }
}
