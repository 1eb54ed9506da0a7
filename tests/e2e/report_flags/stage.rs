//! The report stage on CodeBuild and CodePipeline event fixtures: every build state becomes
//! the right flag on the right project, events without variables are matched through their
//! pipeline execution, Pagure's failures fail the invocation, and a build started by hand is
//! ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bridge_core::config::LocalConfig;
use bridge_core::ports::{ExecutionFacts, LookupError, PipelineLookup};
use bridge_core::report::invoke::{HandleError, handle};
use bridge_core::report::{ReportService, flag_uid};
use bridge_core::retry::Transience;
use bridge_local::StaticSecrets;
use bridge_pagure::PagureForge;
use e2e_tests::fake_pagure::{FakePagure, Fault};
use serde_json::{Value, json};

use super::{SHA, TOKEN, client, codebuild_event, event_fixture, pagure};

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

fn pipeline_event(state: &str, execution_id: &str) -> Value {
    let mut event: Value =
        serde_json::from_slice(&event_fixture("codepipeline-execution-state-change.json")).expect("fixture");
    event["detail"]["state"] = json!(state);
    event["detail"]["execution-id"] = json!(execution_id);
    event
}

/// The `PAGURE_*` variables of a pipeline execution that builds a push of [`SHA`] to
/// `project` (its repository on pagure.example.org).
fn pagure_variables(request_id: &str, project: &str) -> BTreeMap<String, String> {
    let repo = format!("https://pagure.example.org/{project}.git");
    [
        ("PAGURE_REQUEST_ID", request_id),
        ("PAGURE_PROJECT", project),
        ("PAGURE_REPO", &repo),
        ("PAGURE_CAUSE", SHA),
        ("PAGURE_COMMIT", SHA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
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
                variables: pagure_variables("req-pipeline-failed", "rpms/bash"),
                build_ran: false,
                summary: Some("Source: the object does not exist".into()),
            },
        ),
        (
            "exec-superseded".to_owned(),
            ExecutionFacts { variables: pagure_variables("req-superseded", "rpms/bash"), ..ExecutionFacts::default() },
        ),
        (
            "exec-built".to_owned(),
            ExecutionFacts { variables: pagure_variables("req-built", "rpms/bash"), build_ran: true, summary: None },
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
        let answer = handle(&service, event).await.unwrap_or_else(|e| panic!("{name}: {e}"));
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
    let late = handle(&service, codebuild_event("IN_PROGRESS", None, &fork_pr)).await.expect("late event");
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
        ExecutionFacts { variables: pagure_variables("req-looked-up", "demo"), build_ran: true, summary: None },
    );
    let service = report_service(&fake, executions);
    let no_vars: Vec<(&str, &str)> =
        ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE", "PAGURE_PR_ID", "PAGURE_COMMIT"]
            .into_iter()
            .map(|name| (name, ""))
            .collect();
    let answer = handle(&service, codebuild_event("SUCCEEDED", None, &no_vars)).await.expect("handled");
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
    let result = handle(&service, codebuild_event("SUCCEEDED", None, &[])).await;
    assert!(matches!(&result, Err(HandleError::Report(e)) if e.is_transient()), "{result:?}");
    // Pagure is back: the retried event posts the flag.
    let answer = handle(&service, codebuild_event("SUCCEEDED", None, &[])).await.expect("retried");
    assert_eq!(answer["outcome"], json!("posted"));
    let broken = json!({"detail-type": "CodeBuild Build State Change", "detail": {"build-status": 7}});
    assert!(matches!(handle(&service, broken).await, Err(HandleError::Event(_))));
    let other = json!({"detail-type": "EC2 Instance State-change Notification", "detail": {}});
    assert_eq!(handle(&service, other).await.expect("ignored")["outcome"], json!("ignored"));
}

/// A build not started by a pipeline (by hand, with PAGURE_* overrides that name a project)
/// never posts with that project's token.
#[tokio::test]
async fn a_build_started_by_hand_is_ignored_whatever_its_variables() {
    let fake = pagure().await;
    let service = report_service(&fake, Executions::default());
    let mut event = codebuild_event("SUCCEEDED", None, &[]);
    event["detail"]["additional-information"]["initiator"] = json!("user/mallory");
    let answer = handle(&service, event).await.expect("handled");
    assert_eq!(answer["outcome"], json!("ignored"), "{answer}");
    assert!(answer["reason"].as_str().is_some_and(|r| r.contains("not started by a pipeline")), "{answer}");
    assert!(fake.flags().is_empty());
}
