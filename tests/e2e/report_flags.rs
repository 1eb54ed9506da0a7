//! The report side against a contract-faithful fake Pagure: the flag client (token form,
//! string percent, uid updates, error bodies, retries), the report stage on CodeBuild and
//! CodePipeline event fixtures, the `report` CLI, and the whole local path from trigger to
//! final flag.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use bridge_core::auth::Secret;
use bridge_core::config::LocalConfig;
use bridge_core::forge::{Flag, FlagOn, FlagStatus, FlagTarget, RetryPolicy};
use bridge_core::ports::{ExecutionFacts, LookupError, PipelineLookup, StaticSecrets};
use bridge_core::report::{ReportService, flag_uid};
use bridge_core::retry::Transience;
use bridge_pagure::PagureForge;
use bridge_pagure::{PagureClient, PagureError};
use e2e_tests::fake_pagure::{FakePagure, Fault, Token};
use serde_json::{Value, json};

const TOKEN: &str = "PAGUREAPITOKEN0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB";
const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const UID: &str = "0123456789abcdef0123456789abcdef";

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(40),
        timeout: Duration::from_millis(500),
    }
}

fn client() -> PagureClient {
    PagureClient::new(quick()).expect("client")
}

async fn pagure() -> FakePagure {
    let fake = FakePagure::start().await;
    for project in ["demo", "rpms/bash", "fork/bob/demo"] {
        fake.add_project(project);
    }
    fake.add_token(TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    fake.set_pull("demo", 2, SHA);
    fake
}

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

#[tokio::test]
async fn one_flag_per_request_is_added_then_updated_in_place() {
    let fake = pagure().await;
    let client = client();
    let token = Secret::new(TOKEN);
    let added = client.post_flag(&base(&fake), &commit("rpms/bash"), &flag(FlagStatus::Pending, None), &token).await;
    assert!(!added.expect("added").updated, "a new flag");
    let done = Flag { username: "someone else".into(), ..flag(FlagStatus::Success, Some(100)) };
    let updated = client.post_flag(&base(&fake), &commit("rpms/bash"), &done, &token).await.expect("updated");
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
    client.post_flag(&base(&fake), &pr, &other, &token).await.expect("pr flag");
    let on_head = client.list_flags(&base(&fake), &commit("demo")).await.expect("list");
    assert_eq!(on_head.len(), 1);
    // Pagure finds a flag by (commit, uid) whatever the project: the same uid on the same
    // commit of another project updates the first project's flag. Hence globally unique uids.
    client.post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Failure, Some(0)), &token).await.expect("clash");
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
    let result = client.post_flag(&base(&fake), &commit("demo"), &pending, &Secret::new("WRONG")).await;
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
    let result =
        client.post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Pending, None), &Secret::new(TOKEN)).await;
    let message = result.expect_err("400").to_string();
    assert!(message.contains("HTTP 400 EINVALIDREQ: Invalid or incomplete input submitted (comment: This field is required.; status: This field is required.; url: This field is required.)"), "{message}");
    // Pagure's 500 is an HTML page: retried, and the next attempt succeeds.
    fake.push_fault(Fault::Status(500, "<!doctype html><h1>Internal Server Error</h1>"));
    fake.push_fault(Fault::Status(503, "busy"));
    let before = fake.posts();
    let posted = client
        .post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Success, Some(100)), &Secret::new(TOKEN))
        .await;
    assert!(posted.is_ok(), "{posted:?}");
    assert_eq!(fake.posts() - before, 3, "two failures, then the flag");
    assert_eq!(fake.flags()[0].status, "success");
}

#[tokio::test]
async fn timeouts_are_retried_and_an_outage_ends_in_a_transient_error() {
    let fake = pagure().await;
    let client = client();
    fake.push_fault(Fault::Delay(Duration::from_secs(2)));
    let posted =
        client.post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Pending, None), &Secret::new(TOKEN)).await;
    assert!(posted.is_ok(), "the attempt after the timeout succeeds: {posted:?}");
    for _ in 0..4 {
        fake.push_fault(Fault::Status(502, "bad gateway"));
    }
    let before = fake.posts();
    let result =
        client.post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Failure, Some(0)), &Secret::new(TOKEN)).await;
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
            let ok = client
                .post_flag(&base(&fake), &commit("demo"), &flag(FlagStatus::Pending, None), &Secret::new(TOKEN))
                .await;
            let refused = client
                .post_flag(
                    &base(&fake),
                    &commit("demo"),
                    &flag(FlagStatus::Pending, None),
                    &Secret::new("SECRETWRONGTOKEN"),
                )
                .await;
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

/// Pipeline executions as the report stage would look them up.
#[derive(Debug, Default)]
struct Executions(Mutex<HashMap<String, ExecutionFacts>>);

impl PipelineLookup for Executions {
    async fn execution(&self, _pipeline: &str, id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(self.0.lock().expect("executions").get(id).cloned())
    }

    async fn execution_of_build(&self, _pipeline: &str, build_id: &str) -> Result<Option<String>, LookupError> {
        let known = self.0.lock().expect("executions").contains_key(build_id);
        Ok(known.then(|| build_id.to_owned()))
    }
}

const PROJECTS: &str = r#"
[secrets]
file = "unused.json"
[projects.demo]
pagure_url = "PAGURE"
git_url = "https://pagure.example.org"
project = "demo"
pipeline = "demo-ci"
[projects.bash]
pagure_url = "PAGURE"
git_url = "https://pagure.example.org"
project = "rpms/bash"
pipeline = "demo-ci"  # one shared pipeline builds both
"#;

fn report_service(fake: &FakePagure, executions: Executions) -> ReportService<PagureForge<StaticSecrets>, Executions> {
    let config = LocalConfig::parse(&PROJECTS.replace("PAGURE", &fake.url), std::path::Path::new("/")).expect("config");
    let doc = format!(
        r#"{{"projects": {{"demo": {{"pagure_api_token": "{TOKEN}"}}, "bash": {{"pagure_api_token": "{TOKEN}"}}}}}}"#
    );
    let secrets = StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(&doc).expect("secrets"));
    let flags = PagureForge::new(client(), config.accept.projects.clone(), secrets, "AWS CodeBuild".into());
    ReportService::new(config.accept, flags, executions)
}

fn event_fixture(name: &str) -> Vec<u8> {
    std::fs::read(e2e_tests::root().join("tests/fixtures/events").join(name)).expect(name)
}

pub(crate) fn codebuild_event(
    status: &str,
    failed_phase: Option<(&str, &str, &str)>,
    variables: &[(&str, &str)],
) -> Value {
    let mut event: Value =
        serde_json::from_slice(&event_fixture("codebuild-build-state-change.json")).expect("fixture");
    event["detail"]["build-status"] = json!(status);
    if let Some((phase, phase_status, context)) = failed_phase {
        let phases = event["detail"]["additional-information"]["phases"].as_array_mut().expect("phases");
        for entry in phases.iter_mut() {
            if entry["phase-type"] == json!(phase) {
                entry["phase-status"] = json!(phase_status);
                entry["phase-context"] = json!([context]);
            }
        }
    }
    let vars = event["detail"]["additional-information"]["environment"]["environment-variables"]
        .as_array_mut()
        .expect("variables");
    for (name, value) in variables {
        vars.retain(|v| v["name"] != json!(name));
        if !value.is_empty() {
            vars.push(json!({"name": name, "type": "PLAINTEXT", "value": value}));
        }
    }
    event
}

fn pipeline_event(state: &str, execution_id: &str) -> Value {
    let mut event: Value =
        serde_json::from_slice(&event_fixture("codepipeline-execution-state-change.json")).expect("fixture");
    event["detail"]["state"] = json!(state);
    event["detail"]["execution-id"] = json!(execution_id);
    event
}

fn pagure_variables(
    request_id: &str,
    project: &str,
    repo: &str,
    cause: &str,
    pr: Option<&str>,
) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = [
        ("PAGURE_REQUEST_ID", request_id),
        ("PAGURE_PROJECT", project),
        ("PAGURE_REPO", repo),
        ("PAGURE_CAUSE", cause),
        ("PAGURE_COMMIT", SHA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if let Some(pr) = pr {
        vars.insert("PAGURE_PR_ID".into(), pr.into());
    }
    vars
}

/// project, status, comment, percent.
type ExpectedFlag = (&'static str, &'static str, &'static str, Option<&'static str>);

#[tokio::test]
async fn every_build_state_becomes_the_right_flag() {
    let fake = pagure().await;
    let executions = Executions::default();
    executions.0.lock().expect("executions").extend([
        // A pipeline whose source stage failed: no CodeBuild action ran.
        (
            "exec-nobuild".to_owned(),
            ExecutionFacts {
                variables: pagure_variables(
                    "req-pipeline-failed",
                    "rpms/bash",
                    "https://pagure.example.org/rpms/bash.git",
                    SHA,
                    None,
                ),
                build_ran: false,
                summary: Some("Source: the object does not exist".into()),
            },
        ),
        (
            "exec-superseded".to_owned(),
            ExecutionFacts {
                variables: pagure_variables(
                    "req-superseded",
                    "rpms/bash",
                    "https://pagure.example.org/rpms/bash.git",
                    SHA,
                    None,
                ),
                ..ExecutionFacts::default()
            },
        ),
        (
            "exec-built".to_owned(),
            ExecutionFacts {
                variables: pagure_variables(
                    "req-built",
                    "rpms/bash",
                    "https://pagure.example.org/rpms/bash.git",
                    SHA,
                    None,
                ),
                build_ran: true,
                summary: None,
            },
        ),
    ]);
    let service = report_service(&fake, executions);
    let fork_pr = [("PAGURE_REQUEST_ID", "req-fork-pr")];
    let namespaced = [
        ("PAGURE_REQUEST_ID", "req-namespaced"),
        ("PAGURE_PROJECT", "rpms/bash"),
        ("PAGURE_REPO", "https://pagure.example.org/rpms/bash.git"),
        ("PAGURE_CAUSE", SHA),
        ("PAGURE_PR_ID", ""),
        ("PAGURE_BRANCH_TO", ""),
    ];
    let cases: Vec<(&str, Value, Option<ExpectedFlag>)> = vec![
        (
            "in progress",
            codebuild_event("IN_PROGRESS", None, &fork_pr),
            Some(("demo", "pending", "Build #12 running", None)),
        ),
        (
            "succeeded",
            codebuild_event("SUCCEEDED", None, &fork_pr),
            Some(("demo", "success", "Build #12 succeeded", Some("100"))),
        ),
        (
            "failed in BUILD",
            codebuild_event(
                "FAILED",
                Some((
                    "BUILD",
                    "FAILED",
                    "COMMAND_EXECUTION_ERROR: Error while executing command: make check. Reason: exit status 2",
                )),
                &namespaced,
            ),
            Some((
                "rpms/bash",
                "failure",
                "Build #12 failed in phase BUILD: COMMAND_EXECUTION_ERROR: Error while executing command: make check. Reason: exit status 2",
                Some("0"),
            )),
        ),
        (
            "stopped",
            codebuild_event("STOPPED", None, &[("PAGURE_REQUEST_ID", "req-stopped")]),
            Some(("demo", "canceled", "Build #12 stopped", None)),
        ),
        (
            "timed out",
            codebuild_event("FAILED", Some(("BUILD", "TIMED_OUT", "")), &[("PAGURE_REQUEST_ID", "req-timeout")]),
            Some(("demo", "error", "Build #12 timed out in phase BUILD", None)),
        ),
        (
            "source download failed",
            codebuild_event(
                "FAILED",
                Some(("DOWNLOAD_SOURCE", "CLIENT_ERROR", "CLIENT_ERROR: AccessDenied")),
                &[("PAGURE_REQUEST_ID", "req-source")],
            ),
            Some((
                "demo",
                "error",
                "Build #12 could not run: phase DOWNLOAD_SOURCE CLIENT_ERROR: CLIENT_ERROR: AccessDenied",
                None,
            )),
        ),
        (
            "fault",
            codebuild_event("FAILED", Some(("PROVISIONING", "FAULT", "")), &[("PAGURE_REQUEST_ID", "req-fault")]),
            Some(("demo", "error", "Build #12 failed: CodeBuild fault in phase PROVISIONING", None)),
        ),
        ("unknown build", codebuild_event("SUCCEEDED", None, &[("PAGURE_REQUEST_ID", "")]), None),
        (
            "pipeline failed before CodeBuild",
            pipeline_event("FAILED", "exec-nobuild"),
            Some((
                "rpms/bash",
                "error",
                "Pipeline demo-ci failed before CodeBuild ran: Source: the object does not exist",
                None,
            )),
        ),
        (
            "pipeline superseded",
            pipeline_event("SUPERSEDED", "exec-superseded"),
            Some(("rpms/bash", "canceled", "Pipeline demo-ci execution superseded by a newer one", None)),
        ),
        ("pipeline failed after CodeBuild ran", pipeline_event("FAILED", "exec-built"), None),
        ("pipeline started", pipeline_event("STARTED", "exec-nobuild"), None),
        ("unknown pipeline execution", pipeline_event("FAILED", "exec-unknown"), None),
    ];
    for (name, event, expected) in cases {
        let before = fake.posts();
        let answer =
            bridge_core::report::invoke::handle(&service, event).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        match expected {
            None => {
                assert_eq!(answer["outcome"], json!("ignored"), "{name}: {answer}");
                assert_eq!(fake.posts(), before, "{name}: nothing posted");
            }
            Some((project, status, comment, percent)) => {
                assert_eq!(answer["outcome"], json!("posted"), "{name}: {answer}");
                let flags = fake.flags();
                let flag = flags.iter().max_by_key(|f| f.updated).expect("a flag");
                assert_eq!(
                    (
                        flag.project.as_str(),
                        flag.commit.as_str(),
                        flag.status.as_str(),
                        flag.comment.as_str(),
                        flag.percent.as_deref()
                    ),
                    (project, SHA, status, comment, percent),
                    "{name}"
                );
                let expected_url = if name.starts_with("pipeline") {
                    "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/demo-ci/executions/"
                        .to_owned()
                } else {
                    "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/demo-build/build/demo-build%3A8745a7a9-c340-456a-9166-edf953571bea/?region=eu-west-1".to_owned()
                };
                assert!(flag.url.starts_with(&expected_url), "{name}: {}", flag.url);
            }
        }
    }
    // The fork PR's pending and success are one flag; a late IN_PROGRESS does not undo it.
    let fork_flags: Vec<_> = fake.flags().into_iter().filter(|f| f.uid == flag_uid("req-fork-pr")).collect();
    assert_eq!(fork_flags.len(), 1);
    let late = bridge_core::report::invoke::handle(&service, codebuild_event("IN_PROGRESS", None, &fork_pr))
        .await
        .expect("late event");
    assert_eq!(late["outcome"], json!("ignored"), "{late}");
    assert_eq!(
        fake.flags().into_iter().find(|f| f.uid == flag_uid("req-fork-pr")).map(|f| f.status),
        Some("success".into())
    );
}

#[tokio::test]
async fn events_without_variables_are_matched_through_the_pipeline() {
    let fake = pagure().await;
    let executions = Executions::default();
    // The fake lookup maps the build id to an execution of the same name.
    executions.0.lock().expect("executions").insert(
        "demo-build:8745a7a9-c340-456a-9166-edf953571bea".into(),
        ExecutionFacts {
            variables: pagure_variables("req-looked-up", "demo", "https://pagure.example.org/demo.git", SHA, None),
            build_ran: true,
            summary: None,
        },
    );
    let service = report_service(&fake, executions);
    let no_vars: Vec<(&str, &str)> =
        ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE", "PAGURE_PR_ID", "PAGURE_COMMIT"]
            .into_iter()
            .map(|name| (name, ""))
            .collect();
    let answer = bridge_core::report::invoke::handle(&service, codebuild_event("SUCCEEDED", None, &no_vars))
        .await
        .expect("handled");
    assert_eq!(answer["outcome"], json!("posted"), "{answer}");
    assert_eq!(fake.flags()[0].uid, flag_uid("req-looked-up"));
}

#[tokio::test]
async fn failures_to_reach_pagure_fail_the_invocation() {
    let fake = pagure().await;
    let service = report_service(&fake, Executions::default());
    for _ in 0..4 {
        fake.push_fault(Fault::Status(500, "down"));
    }
    let result = bridge_core::report::invoke::handle(&service, codebuild_event("SUCCEEDED", None, &[])).await;
    assert!(
        matches!(&result, Err(bridge_core::report::invoke::HandleError::Report(e)) if e.is_transient()),
        "{result:?}"
    );
    // Pagure is back: the retried event posts the flag.
    let answer =
        bridge_core::report::invoke::handle(&service, codebuild_event("SUCCEEDED", None, &[])).await.expect("retried");
    assert_eq!(answer["outcome"], json!("posted"));
    let broken = json!({"detail-type": "CodeBuild Build State Change", "detail": {"build-status": 7}});
    assert!(matches!(
        bridge_core::report::invoke::handle(&service, broken).await,
        Err(bridge_core::report::invoke::HandleError::Event(_))
    ));
    let other = json!({"detail-type": "EC2 Instance State-change Notification", "detail": {}});
    assert_eq!(
        bridge_core::report::invoke::handle(&service, other).await.expect("ignored")["outcome"],
        json!("ignored")
    );
}

#[tokio::test]
async fn the_report_command_flags_from_inside_a_build() {
    let fake = pagure().await;
    let env: BTreeMap<String, String> = [
        ("PAGURE_REQUEST_ID", UID),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "https://pagure.example.org/forks/bob/demo.git"),
        ("PAGURE_CAUSE", "2"),
        ("PAGURE_PR_ID", "2"),
        ("PAGURE_COMMIT", SHA),
        ("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:123456789012:build/demo-build:8745a7a9"),
        ("CODEBUILD_BUILD_NUMBER", "12"),
        ("CODEBUILD_BUILD_SUCCEEDING", "1"),
        ("PAGURE_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let output = tokio::process::Command::new(crate::local_pipeline::bridge_binary())
        .args(["report", "--from-codebuild-env", "--pagure-url", &fake.url])
        .env_clear()
        .envs(&env)
        .output()
        .await
        .expect("run report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token is not logged");
    let flags = fake.flags();
    assert_eq!(flags.len(), 1);
    assert_eq!(
        (flags[0].project.as_str(), flags[0].commit.as_str(), flags[0].status.as_str(), flags[0].uid.as_str()),
        ("demo", SHA, "success", UID)
    );
    // Without the token variable: a clear error, nothing posted.
    let mut no_token = env.clone();
    no_token.remove("PAGURE_API_TOKEN");
    let output = tokio::process::Command::new(crate::local_pipeline::bridge_binary())
        .args(["report", "--status", "failure", "--pagure-url", &fake.url])
        .env_clear()
        .envs(&no_token)
        .output()
        .await
        .expect("run report");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PAGURE_API_TOKEN is not set"));
    assert_eq!(fake.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_flags_a_fork_pr_from_trigger_to_result() {
    let repos = e2e_tests::git_server::demo_repos().await;
    let fake = pagure().await;
    // A fork PR by someone who may commit to its target: trusted, built in `pipeline`.
    fake.set_pull_author("demo", 2, "bob", "rawhide");
    fake.add_committer("demo", "bob", Some(&["rawhide"]));
    let dir = e2e_tests::temp_dir("local-report");
    std::fs::write(
        dir.join("secrets.json"),
        format!(r#"{{"projects": {{"demo": {{"trigger_token": "trigger-me", "pagure_api_token": "{TOKEN}"}}}}}}"#),
    )
    .expect("secrets");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nfile = \"secrets.json\"\n[report]\nflag_username = \"Local CI\"\n\
         [projects.demo]\npagure_url = \"{}\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"demo-ci\"\nallow_insecure_git_url = true\n",
        fake.url, repos.server.base
    );
    let config = LocalConfig::parse(&text, &dir).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bridge = format!("http://{}", listener.local_addr().expect("addr"));
    let (app, worker, receiver) = pagure_ci_bridge::build_local(&config, &format!("{bridge}/")).await.expect("local");
    tokio::spawn(pagure_ci_bridge::serve(listener, std::sync::Arc::new(app), std::future::pending()));
    tokio::spawn(pagure_ci_bridge::consume(receiver, std::sync::Arc::new(worker), 3, Duration::from_millis(50)));

    let http = e2e_tests::http();
    let accepted = http
        .post(format!("{bridge}/trigger/demo"))
        .header("authorization", "token trigger-me")
        .json(&json!({"cause": "2", "repo": repos.server.url("forks/bob/demo.git"), "branch": "bob-fix", "branch_to": "rawhide"}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(accepted.status(), 202);
    let mut queued = None;
    for _ in 0..200 {
        if let Some(flag) = fake.flags().first().cloned() {
            queued = Some(flag);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = queued.expect("the pending flag was posted");
    assert_eq!(
        (
            queued.project.as_str(),
            queued.commit.as_str(),
            queued.status.as_str(),
            queued.comment.as_str(),
            queued.username.as_str()
        ),
        ("demo", repos.shas["bob"].as_str(), "pending", bridge_worker::QUEUED_COMMENT, "Local CI"),
        "the built head of the fork PR, on the target"
    );
    // The flag links to the local run, which lists what the pipeline would get.
    assert!(queued.url.starts_with(&format!("{bridge}/runs/local-")), "{}", queued.url);
    let run: Value = http.get(&queued.url).send().await.expect("run").json().await.expect("run json");
    let variables = run_variables(&run);
    assert_eq!(run["pipeline"], json!("demo-ci"));

    // CodeBuild runs it: its events carry the PAGURE_* values as environment variables.
    let pairs: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for status in ["IN_PROGRESS", "SUCCEEDED"] {
        let answer = http
            .post(format!("{bridge}/events"))
            .json(&codebuild_event(status, None, &pairs))
            .send()
            .await
            .expect("event");
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("answer");
        assert_eq!(body["outcome"], json!("posted"), "{body}");
    }
    let posted: Vec<(String, String)> = fake
        .seen()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).expect("json");
            (
                body["status"].as_str().unwrap_or_default().to_owned(),
                body["comment"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        posted,
        [
            ("pending".to_owned(), bridge_worker::QUEUED_COMMENT.to_owned()),
            ("pending".to_owned(), "Build #12 running".to_owned()),
            ("success".to_owned(), "Build #12 succeeded".to_owned()),
        ]
    );
    let flags = fake.flags();
    assert_eq!(flags.len(), 1, "one flag, updated in place");
    assert_eq!((flags[0].status.as_str(), flags[0].percent.as_deref()), ("success", Some("100")));
    let not_json = http.post(format!("{bridge}/events")).body("nope").send().await.expect("bad event");
    assert_eq!(not_json.status(), 400);
}

/// The variables a local pipeline run got (`GET /runs/<id>`), as name and value.
pub(crate) fn run_variables(run: &Value) -> Vec<(String, String)> {
    run["variables"]
        .as_object()
        .expect("variables")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A build not started by a pipeline (by hand, with PAGURE_* overrides that name a project)
/// never posts with that project's token.
#[tokio::test]
async fn a_build_started_by_hand_is_ignored_whatever_its_variables() {
    let fake = pagure().await;
    let service = report_service(&fake, Executions::default());
    let mut event = codebuild_event("SUCCEEDED", None, &[]);
    event["detail"]["additional-information"]["initiator"] = json!("user/mallory");
    let answer = bridge_core::report::invoke::handle(&service, event).await.expect("handled");
    assert_eq!(answer["outcome"], json!("ignored"), "{answer}");
    assert!(answer["reason"].as_str().is_some_and(|r| r.contains("not started by a pipeline")), "{answer}");
    assert!(fake.flags().is_empty());
}
