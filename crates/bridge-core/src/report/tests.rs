#[test]
fn an_event_from_a_pipeline_the_project_does_not_use_is_not_its_own() {
    let registry = crate::registry::Registry::compile(
        &[("demo-job".to_owned(), crate::trigger::tests::project())].into_iter().collect(),
        None,
        &crate::registry::Deployment::default(),
    )
    .expect("registry");
    let correlation = super::Correlation {
        request_id: "r".into(),
        project: "demo".into(),
        repo: "git://127.0.0.1:5602/demo.git".into(),
        cause: crate::model::Cause::PullRequest { id: 1 },
        commit: None,
    };
    let (project, _) = correlation.resolve(&registry, Some("demo-ci")).expect("its own pipeline");
    assert_eq!(project.key, "demo-job");
    // Another stack's pipeline, or one no rule names: never posted with this project's token.
    let foreign = correlation.resolve(&registry, Some("demo-ci-staging")).expect_err("foreign");
    assert!(foreign.contains("builds in pipeline `demo-ci-staging`"), "{foreign}");
}

use super::subject::short_comment;
use super::*;
use crate::forge::MAX_COMMENT_CHARS;
use crate::forge::{FlagOn, FlagStatus, FlagTarget};
use crate::model::{Cause, ProjectRef};
use crate::ports::ExecutionFacts;
use std::collections::BTreeMap;

fn change(status: &str, phases: &[(&str, &str, &str)]) -> CodeBuildChange {
    CodeBuildChange {
        region: "eu-west-1".into(),
        account: "123456789012".into(),
        project_name: "demo-build".into(),
        build_id: "arn:aws:codebuild:eu-west-1:123456789012:build/demo-build:8745a7a9".into(),
        build_number: Some(12),
        status: status.into(),
        phases: phases
            .iter()
            .map(|(phase, status, context)| PhaseOutcome {
                phase: (*phase).into(),
                status: Some((*status).into()),
                context: if context.is_empty() { vec![] } else { vec![(*context).into()] },
            })
            .collect(),
        initiator: Some("codepipeline/demo".into()),
        variables: BTreeMap::new(),
    }
}

#[test]
fn every_codebuild_state_has_its_flag() {
    let ok = [("SUBMITTED", "SUCCEEDED", ""), ("DOWNLOAD_SOURCE", "SUCCEEDED", "")];
    assert_eq!(change("IN_PROGRESS", &ok).flag_state(), Some((FlagStatus::Pending, "Build #12 running".into(), None)));
    assert_eq!(
        change("SUCCEEDED", &ok).flag_state(),
        Some((FlagStatus::Success, "Build #12 succeeded".into(), Some(100)))
    );
    let failed = change(
        "FAILED",
        &[
            ("INSTALL", "SUCCEEDED", ""),
            ("BUILD", "FAILED", "COMMAND_EXECUTION_ERROR: make check. Reason: exit status 2"),
        ],
    );
    assert_eq!(
        failed.flag_state(),
        Some((
            FlagStatus::Failure,
            "Build #12 failed in phase BUILD: COMMAND_EXECUTION_ERROR: make check. Reason: exit status 2".into(),
            Some(0)
        ))
    );
    assert_eq!(change("STOPPED", &ok).flag_state().map(|s| s.0), Some(FlagStatus::Canceled));
    let timed_out = change("FAILED", &[("BUILD", "TIMED_OUT", "")]);
    assert_eq!(
        timed_out.flag_state().map(|s| (s.0, s.1)),
        Some((FlagStatus::Error, "Build #12 timed out in phase BUILD".into()))
    );
    let source = change("FAILED", &[("DOWNLOAD_SOURCE", "CLIENT_ERROR", "ACCESS_DENIED: no access")]);
    assert_eq!(
        source.flag_state().map(|s| (s.0, s.1)),
        Some((
            FlagStatus::Error,
            "Build #12 could not run: phase DOWNLOAD_SOURCE CLIENT_ERROR: ACCESS_DENIED: no access".into()
        ))
    );
    let fault = change("FAILED", &[("PROVISIONING", "FAULT", "")]);
    assert_eq!(fault.flag_state().map(|s| s.0), Some(FlagStatus::Error));
    assert_eq!(change("QUEUED", &ok).flag_state(), None);
}

#[test]
fn console_links_follow_the_documented_forms() {
    let c = change("SUCCEEDED", &[]);
    assert_eq!(
        c.console_url(),
        "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/123456789012/projects/demo-build/build/demo-build%3A8745a7a9/?region=eu-west-1"
    );
    assert!(crate::forge::url_acceptable(&c.console_url()));
    let url = pipeline_console_url("eu-west-1", "demo", "0f0a-11");
    assert_eq!(
        url,
        "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/demo/executions/0f0a-11"
    );
}

#[test]
fn pipeline_states_only_flag_when_no_build_ran() {
    let change = PipelineChange {
        region: "eu-west-1".into(),
        pipeline: "demo".into(),
        execution_id: "e1".into(),
        state: "FAILED".into(),
    };
    let no_build = ExecutionFacts { summary: Some("Source: access denied".into()), ..ExecutionFacts::default() };
    assert_eq!(
        change.flag_state(&no_build),
        Some((FlagStatus::Error, "Pipeline demo failed before CodeBuild ran: Source: access denied".into(), None))
    );
    let built = ExecutionFacts { build_ran: true, ..ExecutionFacts::default() };
    assert_eq!(change.flag_state(&built), None);
    let superseded = PipelineChange { state: "SUPERSEDED".into(), ..change.clone() };
    assert_eq!(superseded.flag_state(&no_build).map(|s| s.0), Some(FlagStatus::Canceled));
    let started = PipelineChange { state: "STARTED".into(), ..change };
    assert_eq!(started.flag_state(&no_build), None);
}

#[test]
fn uids_fit_pagure_and_stay_stable() {
    assert_eq!(flag_uid("0123456789abcdef0123456789abcdef"), "0123456789abcdef0123456789abcdef");
    let long = flag_uid("a-request-id-that-is-far-too-long-for-pagure");
    assert_eq!(long.len(), 32);
    assert_eq!(long, flag_uid("a-request-id-that-is-far-too-long-for-pagure"));
}

#[test]
fn targets_follow_the_contract() {
    let fork = ProjectRef { key: "demo".into(), namespace: None, name: "demo".into(), fork_user: Some("bob".into()) };
    let pr = Cause::PullRequest { id: 2 };
    let subject = FlagSubject { project: &fork, cause: &pr, commit: None, request_id: "r1" };
    // Before the head is known: the PR of the target (never the fork, whose PRs are off).
    assert_eq!(subject.target(), FlagTarget { project_path: "demo".into(), on: FlagOn::PullRequest(2) });
    // Once built: the built commit, on the target.
    assert_eq!(
        subject.with_commit("abc").target(),
        FlagTarget { project_path: "demo".into(), on: FlagOn::Commit("abc".into()) }
    );
    // A push to a fork: the fork's commit.
    let push = Cause::Commit { sha: "def".into() };
    let subject = FlagSubject { project: &fork, cause: &push, commit: None, request_id: "r1" };
    assert_eq!(subject.target(), FlagTarget { project_path: "fork/bob/demo".into(), on: FlagOn::Commit("def".into()) });
}

#[test]
fn comments_are_kept_short() {
    let long = "x".repeat(2000);
    let comment = short_comment(&long);
    assert_eq!(comment.chars().count(), MAX_COMMENT_CHARS);
    assert!(comment.ends_with('…'));
}

fn build_env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn a_build_reports_its_own_result() {
    let env = build_env(&[
        ("PAGURE_REQUEST_ID", "0123456789abcdef0123456789abcdef"),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "https://pagure.example.org/forks/bob/demo.git"),
        ("PAGURE_CAUSE", "2"),
        ("PAGURE_PR_ID", "2"),
        ("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed"),
        ("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:123456789012:build/demo-build:8745a7a9"),
        ("CODEBUILD_BUILD_NUMBER", "12"),
        ("CODEBUILD_BUILD_SUCCEEDING", "0"),
    ]);
    let (target, flag) = flag_from_build_env(&env, None, None, None, "CI").expect("flag");
    // A fork PR: the built commit on the target.
    assert_eq!(
        (target.project_path.as_str(), &target.on),
        ("demo", &crate::forge::FlagOn::Commit("05bab967134e26fd2a307065b49ce0bc2a2063ed".into()))
    );
    assert_eq!((flag.status, flag.comment.as_str(), flag.percent), (FlagStatus::Failure, "Build #12 failed", Some(0)));
    assert_eq!(flag.uid, "0123456789abcdef0123456789abcdef");
    assert!(flag.url.contains("/projects/demo-build/build/demo-build%3A8745a7a9/"));
    let push = build_env(&[
        ("PAGURE_REQUEST_ID", "r2"),
        ("PAGURE_PROJECT", "ns/demo"),
        ("PAGURE_REPO", "https://pagure.example.org/forks/bob/ns/demo.git"),
        ("PAGURE_CAUSE", "05bab967134e26fd2a307065b49ce0bc2a2063ed"),
    ]);
    let (target, flag) = flag_from_build_env(
        &push,
        Some(FlagStatus::Success),
        Some("all green"),
        Some("https://ci.example.org/1"),
        "CI",
    )
    .expect("flag");
    assert_eq!(target.project_path, "fork/bob/ns/demo");
    assert_eq!((flag.comment.as_str(), flag.percent), ("all green", Some(100)));
    assert!(flag_from_build_env(&build_env(&[]), None, None, None, "CI").is_err());
    let undecided = build_env(&[
        ("PAGURE_REQUEST_ID", "r3"),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "x"),
        ("PAGURE_CAUSE", "abc"),
    ]);
    assert!(flag_from_build_env(&undecided, None, None, Some("https://ci.example.org/1"), "CI").is_err());
}

#[test]
fn correlation_reads_the_pagure_variables() {
    let vars: BTreeMap<String, String> = [
        ("PAGURE_REQUEST_ID", "r1"),
        ("PAGURE_PROJECT", "rpms/bash"),
        ("PAGURE_REPO", "https://src.example.org/rpms/bash.git"),
        ("PAGURE_CAUSE", "7"),
        ("PAGURE_PR_ID", "7"),
        ("PAGURE_COMMIT", "abc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let c = Correlation::from_variables(&vars).and_then(Result::ok);
    assert_eq!(c.map(|c| c.cause), Some(Cause::PullRequest { id: 7 }));
    assert_eq!(Correlation::from_variables(&BTreeMap::new()), None);
    let manual: BTreeMap<String, String> = ["PAGURE_REQUEST_ID", "PAGURE_PROJECT", "PAGURE_REPO", "PAGURE_CAUSE"]
        .into_iter()
        .map(|k| (k.to_owned(), crate::buildspec::MANUAL_RUN.to_owned()))
        .collect();
    assert_eq!(Correlation::from_variables(&manual), None, "a run started by hand is not the bridge's");
    let mut broken = vars.clone();
    broken.remove("PAGURE_REPO");
    assert_eq!(Correlation::from_variables(&broken), Some(Err("PAGURE_REPO is missing".into())));
}
