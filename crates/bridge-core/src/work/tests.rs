use super::*;
use crate::buildspec::{PIPELINE_VARIABLES, trigger_variables};
use crate::model::{BuildTarget, TriggerKind};
use crate::validate::RepoPolicy;

mod worker;

const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";

/// The values a real request sends, through the same functions the work stage uses.
fn sent(git_url: &str, fullname: &str, repo: &str, cause: Cause) -> Vec<(&'static str, String)> {
    let policy = RepoPolicy::new(git_url, fullname, true).expect("policy");
    let (repo_url, project) = policy.check("demo", repo).expect("allowed");
    let request = BuildRequest::new(
        BuildTarget { project, repo_url, cause, branch: "fix\"x,{y}".into(), branch_to: Some("main".into()) },
        TriggerKind::Json,
        time::OffsetDateTime::UNIX_EPOCH,
    );
    trigger_variables(&request, SHA)
        .into_iter()
        .filter(|(name, v)| PIPELINE_VARIABLES.contains(name) && !v.is_empty())
        .collect()
}

#[test]
fn every_value_the_bridge_sends_is_a_safe_pipeline_variable() {
    for (git_url, fullname, repo) in [
        ("https://pagure.io", "demo", "https://pagure.io/demo.git"),
        ("https://pagure.io", "rpms/python3.12-c++_x", "https://pagure.io/forks/bob-2.x/rpms/python3.12-c++_x.git"),
        ("http://127.0.0.1:5600/", "ns/demo", "http://127.0.0.1:5600/ns/demo.git"),
        ("http://[::1]:8080/~git/", "demo", "http://[::1]:8080/~git/forks/a.b/demo"),
    ] {
        for cause in [Cause::PullRequest { id: 4_294_967_295 }, Cause::Commit { sha: SHA.into() }] {
            let variables = sent(git_url, fullname, repo, cause);
            assert_eq!(variables.len(), PIPELINE_VARIABLES.len(), "{variables:?}");
            assert_eq!(check_pipeline_variables(&variables), Ok(()), "{variables:?}");
        }
    }
}

#[test]
fn a_value_that_json_or_codepipeline_would_read_is_refused() {
    for bad in ["a\"b", "a\\b", "a,\"x\":\"y", "#{variables.X}", "a{b}", "a b", "a\nb", "$(id)", "é", "a\u{0}"] {
        let error = check_pipeline_variables(&[("PAGURE_REPO", bad.into())]).expect_err(bad);
        assert_eq!(error.name, "PAGURE_REPO");
        assert!(error.to_string().starts_with("PAGURE_REPO has the character"), "{error}");
    }
    assert_eq!(check_pipeline_variables(&[("PAGURE_REPO", "https://h/x.git".into())]), Ok(()));
    assert!(!PIPELINE_VARIABLES.contains(&"PAGURE_BRANCH"), "a branch name is the PR author's choice");
}

#[test]
fn errors_are_classified_once() {
    let fetch = |e: FetchError| WorkError::Fetch(e).retry();
    assert_eq!(fetch(FetchError::NoDefaultBranch), Retry::Terminal);
    assert_eq!(fetch(FetchError::TimedOut(Duration::from_secs(1))), Retry::Terminal);
    assert_eq!(fetch(FetchError::Transient("HTTP 500".into())), Retry::Transient);
    assert_eq!(WorkError::CutShortFetching(FetchError::TimedOut(Duration::from_secs(1))).retry(), Retry::Transient);
    assert_eq!(WorkError::CutShort.to_string(), CUT_SHORT);
    let archive = |e: ArchiveError| WorkError::Archive(e);
    let full = archive(ArchiveError::Io(std::io::Error::other("disk full")));
    assert_eq!(
        (full.retry(), full.to_string().as_str()),
        (Retry::Transient, "archive: writing the archive: disk full")
    );
    let large = archive(ArchiveError::TooLarge { limit: 1 });
    assert_eq!(
        (large.retry(), large.to_string().as_str()),
        (Retry::Terminal, "the tree cannot be archived: the tree holds more than 1 bytes of files")
    );
    let start = |e: StartError| WorkError::Start { pipeline: "demo-ci".into(), source: e };
    let throttled = start(StartError::Transient("throttled".into()));
    assert_eq!((throttled.retry(), throttled.to_string().as_str()), (Retry::Transient, "throttled"));
    let missing = start(StartError::Terminal("no such pipeline".into()));
    assert_eq!(
        (missing.retry(), missing.to_string().as_str()),
        (Retry::Terminal, "pipeline `demo-ci`: no such pipeline")
    );
    let source = std::error::Error::source(&missing).expect("the adapter's error is kept");
    assert!(source.to_string().contains("no such pipeline"), "{source}");
}

#[test]
fn the_buildspec_check_names_the_problem() {
    assert_eq!(check_buildspec(FAKE.as_bytes()), Ok(()));
    assert!(matches!(check_buildspec(b"\xff\xfe"), Err(BuildspecProblem::NotUtf8(_))));
    let error = check_buildspec(b"version: 0.1\n").expect_err("old version");
    assert!(matches!(error, BuildspecProblem::Invalid(crate::buildspec::BuildspecError::Version { .. })), "{error:?}");
}

const FAKE: &str = crate::fakes::FAKE_BUILDSPEC;
