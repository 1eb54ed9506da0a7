//! The worker through its ports, with the in-memory fakes of [`crate::fakes`]: what it
//! starts, stores and flags for each way a request can go.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::config::LocalConfig;
use crate::fakes::{FAKE_COMMIT, FakeForge, FakePipelines, FakeSecrets, FakeSource, FakeStore};
use crate::forge::{FlagOn, FlagStatus, FlagUpdate, ForgeError, PullRequestFacts};
use crate::model::Approval;
use crate::ports::SecretsDocument;
use crate::trigger::{RawTrigger, normalise};

const PUSHED: &str = "d2085936e8b068ce55bd07cbf3cf794b8fe7a996";

const CONFIG: &str = r#"
[secrets]
file = "unused.json"
[work]
artifacts_dir = "unused"
[projects.demo]
pagure_url = "https://pagure.example.org/"
git_url = "https://pagure.example.org"
project = "demo"
pipeline = "demo-ci"
[projects.guarded]
pagure_url = "https://pagure.example.org/"
git_url = "https://pagure.example.org"
project = "guarded"
pipeline = "guarded-ci"
untrusted_pipeline = "guarded-untrusted"
[projects.approvals]
pagure_url = "https://pagure.example.org/"
git_url = "https://pagure.example.org"
project = "approvals"
pipeline = "approvals-ci"
approval_phrase = "/ci approve"
"#;

type FakeWorker = Worker<FakeSource, FakeStore, FakePipelines, FakeForge, FakeSecrets>;

/// A worker on fakes, and a handle on each fake.
struct Rig {
    config: LocalConfig,
    source: FakeSource,
    store: FakeStore,
    pipelines: FakePipelines,
    forge: FakeForge,
    worker: FakeWorker,
}

fn rig() -> Rig {
    rig_with(WorkSettings::default(), FakeSecrets::default())
}

fn rig_with(settings: WorkSettings, secrets: FakeSecrets) -> Rig {
    let config = LocalConfig::parse(CONFIG, Path::new("/")).expect("config");
    let (source, store, pipelines, forge) =
        (FakeSource::default(), FakeStore::default(), FakePipelines::default(), FakeForge::default());
    let worker = Worker::new(
        config.accept.clone(),
        settings,
        source.clone(),
        store.clone(),
        pipelines.clone(),
        forge.clone(),
        secrets,
    );
    Rig { config, source, store, pipelines, forge, worker }
}

impl Rig {
    fn request(&self, project: &str, cause: &str, repo: &str, branch_to: Option<&str>) -> BuildRequest {
        let raw = RawTrigger {
            cause: cause.into(),
            repo: format!("https://pagure.example.org/{repo}.git"),
            branch: "feature".into(),
            branch_to: branch_to.map(String::from),
            rebuild: false,
        };
        normalise(&self.config.accept.projects[project], raw, TriggerKind::Jenkins, time::OffsetDateTime::now_utc())
            .expect("request")
    }

    /// pagure-ci's call for a push of [`PUSHED`] to `demo`.
    fn push(&self) -> BuildRequest {
        self.request("demo", PUSHED, "demo", None)
    }

    /// Pull request #7 of `project` from alice's fork.
    fn fork_pr(&self, project: &str) -> BuildRequest {
        self.request(project, "7", &format!("forks/alice/{project}"), Some("rawhide"))
    }

    /// The forge says every pull request is alice's, from her fork of `project`, and she
    /// may not commit.
    fn alice_opened(&self, project: &str) {
        self.forge.set_pull_request(Some(PullRequestFacts {
            status: "Open".into(),
            author: "alice".into(),
            target_branch: "rawhide".into(),
            head: Some(FAKE_COMMIT.into()),
            source: Some(format!("forks/alice/{project}")),
        }));
    }

    fn marker(&self, request: &BuildRequest, suffix: &str) -> Option<String> {
        self.store.marker_at(&format!("sources/{}/{}.{suffix}", request.project.key, request.request_id))
    }

    fn claim(&self, request: &BuildRequest) -> serde_json::Value {
        // A pull request's build is its event and the head fetched.
        let build = crate::dedupe::build_key(request, Some(FAKE_COMMIT)).expect("build key");
        let key = format!("sources/{}/claims/{build}", request.project.key);
        serde_json::from_str(&self.store.marker_at(&key).expect("claim")).expect("json")
    }

    /// `(status, comment)` of every flag posted.
    fn flag_texts(&self) -> Vec<(FlagStatus, String)> {
        self.forge.flags().into_iter().map(|f| (f.status, f.comment)).collect()
    }
}

fn failed(reason: &str) -> Disposition {
    Disposition::Done(Ending::Failed { reason: reason.into(), flagged: true })
}

fn on_commit(flag: &FlagUpdate) -> Option<&str> {
    match &flag.target.on {
        FlagOn::Commit(sha) => Some(sha),
        FlagOn::PullRequest(_) => None,
    }
}

#[tokio::test]
async fn a_trusted_push_builds_and_flags_pending_with_the_execution_link() {
    let rig = rig();
    rig.source.set_commit(PUSHED);
    let request = rig.push();
    let disposition = rig.worker.handle(&request, false).await;
    assert_eq!(disposition, Disposition::Done(Ending::Started { execution_id: "exec-1".into() }));

    let fetches = rig.source.fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].target_url, "https://pagure.example.org/demo.git");
    assert_eq!(fetches[0].deadline, FetchSettings::default().deadline, "the configured deadline, not shortened");
    assert_eq!(fetches[0].username, None, "no credentials in the secrets");
    let archives = rig.source.archives();
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].commit, PUSHED);
    let (path, buildspec) = &archives[0].replacements[0];
    assert_eq!(path, "buildspec.yml", "where CodeBuild reads it");
    let buildspec = String::from_utf8_lossy(buildspec);
    assert!(buildspec.contains(&request.request_id) && buildspec.contains("make check"), "{buildspec}");

    let key = format!("sources/demo/{}.zip", request.request_id);
    let stored = &rig.store.archives()[&key];
    assert!(stored.path.to_string_lossy().ends_with(&format!("{PUSHED}.zip")), "the adapter's archive, not opened");
    assert!(stored.metadata.entries.contains(&("pagure-trust".into(), "trusted".into())));
    assert!(stored.metadata.entries.contains(&("pagure-commit".into(), PUSHED.into())));
    assert_eq!(rig.source.open_workspaces(), 0, "the scratch is given back");

    let starts = rig.pipelines.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!((starts[0].pipeline.as_str(), starts[0].artifact.key.as_str()), ("demo-ci", key.as_str()));
    assert!(starts[0].variables.contains(&("PAGURE_COMMIT", PUSHED.into())), "{:?}", starts[0].variables);
    assert!(starts[0].variables.contains(&("PAGURE_REQUEST_ID", request.request_id.clone())));
    assert_eq!(rig.marker(&request, "started").as_deref(), Some("exec-1"));

    let flags = rig.forge.flags();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!((flags[0].status, flags[0].comment.as_str()), (FlagStatus::Pending, QUEUED_COMMENT));
    assert_eq!(flags[0].url, "https://pipelines.example.org/demo-ci/exec-1");
    assert_eq!(on_commit(&flags[0]), Some(PUSHED));
    assert!(rig.claim(&request)["started_ms"].as_i64().is_some(), "a rerun from now on builds again");
}

#[tokio::test]
async fn a_redelivered_request_starts_nothing() {
    let rig = rig();
    let request = rig.push();
    let started = Disposition::Done(Ending::Started { execution_id: "exec-1".into() });
    assert_eq!(rig.worker.handle(&request, false).await, started);
    assert_eq!(rig.worker.handle(&request, false).await, started, "the same execution, from the marker");
    assert_eq!(rig.pipelines.starts().len(), 1);
    assert_eq!(rig.source.fetches().len(), 1, "not even fetched again");
    assert_eq!(rig.forge.flags().len(), 1, "one pending flag");

    // A `.started` marker from an earlier delivery (another worker) is enough.
    let again = rig.push();
    rig.store.set_marker(&format!("sources/demo/{}.started", again.request_id), "exec-earlier");
    let disposition = rig.worker.handle(&again, true).await;
    assert_eq!(disposition, Disposition::Done(Ending::Started { execution_id: "exec-earlier".into() }));
    assert_eq!((rig.pipelines.starts().len(), rig.source.fetches().len()), (1, 1));
}

#[tokio::test]
async fn identical_requests_accepted_before_the_start_are_merged_into_the_first() {
    let rig = rig();
    let first = rig.push();
    let copy = rig.push();
    assert_eq!(first.idempotency_key, copy.idempotency_key);
    assert!(matches!(rig.worker.handle(&first, false).await, Disposition::Done(Ending::Started { .. })));
    let disposition = rig.worker.handle(&copy, false).await;
    assert_eq!(disposition, Disposition::Done(Ending::Duplicate { of: first.request_id.clone() }));
    let merged: serde_json::Value = serde_json::from_str(&rig.marker(&copy, "merged").expect("merged")).expect("json");
    assert_eq!(merged["merged_into"], first.request_id.as_str());
    assert_eq!(rig.pipelines.starts().len(), 1);
    assert_eq!(rig.source.fetches().len(), 1, "a commit's build is known before the fetch");
    assert_eq!(rig.marker(&copy, "started"), None);
}

#[tokio::test]
async fn an_untrusted_pull_request_goes_to_the_untrusted_pipeline() {
    let rig = rig();
    rig.alice_opened("guarded");
    let request = rig.fork_pr("guarded");
    assert!(matches!(rig.worker.handle(&request, false).await, Disposition::Done(Ending::Started { .. })));
    let starts = rig.pipelines.starts();
    assert_eq!(starts.iter().map(|s| s.pipeline.as_str()).collect::<Vec<_>>(), ["guarded-untrusted"]);
    let stored = rig.store.archives();
    let metadata = &stored[&starts[0].artifact.key].metadata;
    assert!(metadata.entries.contains(&("pagure-trust".into(), "untrusted".into())), "{metadata:?}");
    assert_eq!(rig.forge.commit_questions(), [("alice".to_owned(), "rawhide".to_owned())], "Pagure's target branch");
    let flags = rig.forge.flags();
    assert_eq!(flags[0].url, "https://pipelines.example.org/guarded-untrusted/exec-1");
}

#[tokio::test]
async fn an_untrusted_pull_request_waits_for_an_approval_then_builds_once_approved() {
    let rig = rig();
    rig.alice_opened("approvals");
    let request = rig.fork_pr("approvals");
    let Disposition::Done(Ending::Awaiting { comment, flagged: true }) = rig.worker.handle(&request, false).await
    else {
        panic!("not awaiting: {:?}", rig.flag_texts());
    };
    assert!(comment.starts_with("Waiting for a committer to comment `/ci approve`"), "{comment}");
    let flags = rig.forge.flags();
    assert_eq!(rig.flag_texts(), [(FlagStatus::Pending, comment)]);
    assert_eq!(on_commit(&flags[0]), Some(FAKE_COMMIT), "on the head that waits");
    assert_eq!(flags[0].url, "https://pagure.example.org/approvals/pull-request/7", "where approvals are given");
    assert!(rig.pipelines.starts().is_empty() && rig.source.archives().is_empty(), "nothing built");
    assert_eq!(rig.claim(&request)["released"], true, "decided afresh next time");

    // A committer's approval of exactly that head, through the signed web-hook.
    let mut approved = rig.fork_pr("approvals");
    approved.trigger = TriggerKind::Webhook;
    let approved = approved.approved(Approval { by: "pingou".into(), commit: FAKE_COMMIT.into() });
    assert!(matches!(rig.worker.handle(&approved, false).await, Disposition::Done(Ending::Started { .. })));
    let starts = rig.pipelines.starts();
    assert_eq!(starts.iter().map(|s| s.pipeline.as_str()).collect::<Vec<_>>(), ["approvals-ci"]);
    let metadata = &rig.store.archives()[&starts[0].artifact.key].metadata;
    assert!(metadata.entries.contains(&("pagure-trust".into(), "approved".into())), "{metadata:?}");
}

#[tokio::test]
async fn an_untrusted_pull_request_with_nowhere_to_go_is_refused_with_an_error_flag() {
    let rig = rig();
    rig.alice_opened("demo");
    let request = rig.fork_pr("demo");
    let disposition = rig.worker.handle(&request, false).await;
    let reason = "not built: untrusted pull request from alice, and project `demo` has neither untrusted_pipeline (a pipeline without the trusted build's secrets, to build it there) nor approval_phrase (to build it in `demo-ci` once a committer approves its head)";
    assert_eq!(disposition, failed(reason));
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, reason.to_owned())]);
    assert_eq!(on_commit(&rig.forge.flags()[0]), Some(FAKE_COMMIT), "on the fetched head");
    assert!(rig.pipelines.starts().is_empty() && rig.source.archives().is_empty());
    assert_eq!(rig.source.open_workspaces(), 0);
}

#[tokio::test]
async fn a_closed_pull_request_is_ignored_without_a_fetch() {
    let rig = rig();
    rig.forge.set_pull_request(Some(PullRequestFacts {
        status: "Merged".into(),
        author: "pingou".into(),
        target_branch: "rawhide".into(),
        head: None,
        source: Some("demo".into()),
    }));
    let request = rig.request("demo", "7", "demo", Some("rawhide"));
    let disposition = rig.worker.handle(&request, false).await;
    assert_eq!(disposition, Disposition::Done(Ending::Ignored { reason: "pull request #7 is Merged".into() }));
    assert!(rig.source.fetches().is_empty() && rig.forge.flags().is_empty());
}

#[tokio::test]
async fn a_terminal_fetch_failure_is_flagged_and_releases_the_build() {
    let rig = rig();
    rig.source.fail_next_fetch(FetchError::BranchGone { branch: "feature".into() });
    let request = rig.push();
    let reason = "branch `feature` does not exist (any more) in the repository";
    assert_eq!(rig.worker.handle(&request, false).await, failed(reason));
    let flags = rig.forge.flags();
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, reason.to_owned())]);
    assert_eq!(on_commit(&flags[0]), Some(PUSHED), "a push's commit is known without the fetch");
    assert_eq!(flags[0].url, format!("https://pagure.example.org/demo/c/{PUSHED}"));
    assert!(rig.pipelines.starts().is_empty());
    assert_eq!(rig.claim(&request)["released"], true);
    // Fixed (the branch pushed again): the same call builds, not merged into the failure.
    assert!(matches!(rig.worker.handle(&rig.push(), false).await, Disposition::Done(Ending::Started { .. })));
}

#[tokio::test]
async fn a_transient_fetch_failure_is_retried_and_reported_on_the_last_attempt() {
    let rig = rig();
    let request = rig.push();
    rig.source.fail_next_fetch(FetchError::Transient("HTTP 500".into()));
    assert_eq!(rig.worker.handle(&request, false).await, Disposition::Retry("git: HTTP 500".into()));
    assert!(rig.forge.flags().is_empty(), "not reported before the last delivery");
    assert_eq!(rig.claim(&request)["released"], false, "the claim is kept for the next delivery");

    rig.source.fail_next_fetch(FetchError::Stalled("timed out".into()));
    let reason = "git: the git host stopped answering: timed out";
    assert_eq!(rig.worker.handle(&request, true).await, Disposition::Retry(reason.into()), "to the dead-letter queue");
    let flag = format!("the build could not be started after several attempts: {reason}");
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, flag)]);
    assert_eq!(rig.claim(&request)["released"], true);
    assert!(rig.pipelines.starts().is_empty());
}

#[tokio::test]
async fn an_error_flag_the_forge_cannot_take_keeps_the_message() {
    let rig = rig();
    rig.source.fail_next_fetch(FetchError::NoDefaultBranch);
    rig.forge.fail_next_flag(ForgeError::transient("Pagure answered 503"));
    let disposition = rig.worker.handle(&rig.push(), false).await;
    assert_eq!(
        disposition,
        Disposition::Retry(
            "the repository has no default branch (its HEAD points nowhere) (and the error flag could not be posted: Pagure answered 503)"
                .into()
        )
    );
    // A refusal (a flag Pagure will never take) ends it, logged only.
    rig.source.fail_next_fetch(FetchError::NoDefaultBranch);
    rig.forge.fail_next_flag(ForgeError::terminal("403"));
    let disposition = rig.worker.handle(&rig.push(), false).await;
    let reason = "the repository has no default branch (its HEAD points nowhere)".to_owned();
    assert_eq!(disposition, Disposition::Done(Ending::Failed { reason, flagged: false }));
    assert!(rig.forge.flags().is_empty());
}

#[tokio::test]
async fn a_buildspec_that_cannot_take_the_trigger_fails_before_the_tree() {
    let rig = rig();
    rig.source.set_buildspec(b"version: 0.1\nphases: {}\n");
    let disposition = rig.worker.handle(&rig.push(), false).await;
    let Disposition::Done(Ending::Failed { reason, flagged: true }) = disposition else {
        panic!("{disposition:?}");
    };
    assert!(
        reason.starts_with("`buildspec.yml` on the default branch `main`: the buildspec has version 0.1"),
        "{reason}"
    );
    assert_eq!(rig.forge.errors().len(), 1);
    assert!(rig.source.archives().is_empty() && rig.pipelines.starts().is_empty());
}

#[tokio::test]
async fn a_pipeline_that_cannot_be_started_is_flagged_on_the_commit() {
    let rig = rig();
    rig.pipelines.fail_next_start(StartError::Terminal("PipelineNotFoundException".into()));
    let request = rig.push();
    let reason = "pipeline `demo-ci`: PipelineNotFoundException";
    assert_eq!(rig.worker.handle(&request, false).await, failed(reason));
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, reason.to_owned())]);
    assert_eq!(rig.marker(&request, "started"), None);
    assert_eq!(rig.claim(&request)["released"], true);
    assert_eq!(rig.store.archives().len(), 1, "the archive was stored before the start");
}

#[tokio::test]
async fn a_pipeline_start_that_failed_for_now_is_tried_again() {
    let rig = rig();
    rig.pipelines.fail_next_start(StartError::Transient("ThrottlingException".into()));
    let request = rig.push();
    assert_eq!(rig.worker.handle(&request, false).await, Disposition::Retry("ThrottlingException".into()));
    assert!(rig.forge.flags().is_empty() && rig.pipelines.starts().is_empty());
    assert_eq!(rig.marker(&request, "started"), None);
    // The next delivery holds the same claim, and builds.
    let disposition = rig.worker.handle(&request, false).await;
    assert_eq!(disposition, Disposition::Done(Ending::Started { execution_id: "exec-1".into() }));
    assert_eq!(rig.source.fetches().len(), 2);
}

#[tokio::test]
async fn pipeline_variables_outside_the_json_safe_set_are_refused_with_a_flag() {
    let rig = rig();
    // A hostile source could answer anything for the commit: it reaches a variable.
    rig.source.set_commit("abc\",\"x\":\"y");
    let disposition = rig.worker.handle(&rig.push(), false).await;
    let reason = "pipeline `demo-ci` not started: PAGURE_COMMIT has the character '\"', outside what a pipeline variable may hold ([A-Za-z0-9._:/@+~=%[]-]: the pipeline pastes it into JSON unescaped)";
    assert_eq!(disposition, failed(reason));
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, reason.to_owned())]);
    assert!(rig.source.archives().is_empty() && rig.pipelines.starts().is_empty());
}

#[tokio::test]
async fn work_past_its_time_is_cut_short_and_tried_again() {
    let rig = rig();
    rig.source.set_fetch_time(Duration::from_secs(30));
    let request = rig.push();
    let began = std::time::Instant::now();
    let until = tokio::time::Instant::now() + Duration::from_millis(200);
    let Disposition::Retry(reason) = rig.worker.handle_until(&request, false, Some(until)).await else {
        panic!("not retried");
    };
    assert!(reason.starts_with(CUT_SHORT), "{reason}");
    assert!(began.elapsed() < Duration::from_secs(10), "stopped at the time given, not the fetch's");
    assert!(rig.source.fetches()[0].deadline <= Duration::from_millis(200), "the fetch got the time left");
    assert!(rig.forge.flags().is_empty() && rig.pipelines.starts().is_empty());

    // On the last delivery, reported; with no time left at all, not even fetched.
    let fetches = rig.source.fetches().len();
    let past = tokio::time::Instant::now();
    let disposition = rig.worker.handle_until(&request, true, Some(past)).await;
    assert_eq!(disposition, Disposition::Retry(CUT_SHORT.into()));
    let flag = format!("the build could not be started after several attempts: {CUT_SHORT}");
    assert_eq!(rig.flag_texts(), [(FlagStatus::Error, flag)]);
    assert_eq!(rig.source.fetches().len(), fetches);
}

#[tokio::test]
async fn a_fetch_past_its_own_deadline_is_terminal() {
    let settings = WorkSettings {
        fetch: FetchSettings { deadline: Duration::from_millis(50), ..FetchSettings::default() },
        ..WorkSettings::default()
    };
    let rig = rig_with(settings, FakeSecrets::default());
    rig.source.set_fetch_time(Duration::from_secs(30));
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    let disposition = rig.worker.handle_until(&rig.push(), false, Some(until)).await;
    assert_eq!(disposition, failed("the fetch took longer than 50ms"), "a repository too slow to fetch");
    assert_eq!(rig.forge.errors().len(), 1);
}

#[tokio::test]
async fn credentials_from_the_secrets_reach_the_fetch_and_failures_to_read_them_are_retried() {
    let document =
        SecretsDocument::parse(r#"{"projects": {"demo": {"git_username": "ci-bot", "git_password": "s3cret"}}}"#)
            .expect("secrets");
    let rig = rig_with(WorkSettings::default(), FakeSecrets::new(document));
    assert!(matches!(rig.worker.handle(&rig.push(), false).await, Disposition::Done(Ending::Started { .. })));
    assert_eq!(rig.source.fetches()[0].username.as_deref(), Some("ci-bot"));

    let error = crate::ports::SecretsError::Unavailable("Secrets Manager answered 500".into());
    let rig = rig_with(WorkSettings::default(), FakeSecrets::failing(error));
    let Disposition::Retry(reason) = rig.worker.handle(&rig.push(), false).await else { panic!("not retried") };
    assert!(reason.contains("Secrets Manager answered 500"), "{reason}");
    assert!(rig.source.fetches().is_empty());

    // A malformed secret is the deployment's to fix: the request waits for it, no `error` flag.
    let malformed = crate::ports::SecretsError::Malformed("expected `:` at line 1".into());
    let rig = rig_with(WorkSettings::default(), FakeSecrets::failing(malformed));
    assert!(matches!(rig.worker.handle(&rig.push(), false).await, Disposition::Retry(_)), "retried");
    assert!(rig.forge.flags().is_empty() && rig.source.fetches().is_empty());
}

#[tokio::test]
async fn an_upload_that_fails_is_retried_and_the_scratch_is_given_back() {
    let rig = rig();
    rig.store.fail_next_upload(crate::ports::StoreError::Failed("S3 answered 503".into()));
    let request = rig.push();
    assert_eq!(rig.worker.handle(&request, false).await, Disposition::Retry("artifact store: S3 answered 503".into()));
    assert_eq!(rig.source.open_workspaces(), 0);
    assert!(rig.pipelines.starts().is_empty() && rig.forge.flags().is_empty());
}

#[tokio::test]
async fn a_request_already_settled_gets_no_late_pending_flag() {
    let rig = rig();
    let request = rig.push();
    rig.store.set_marker(&format!("sources/demo/{}.settled", request.request_id), r#"{"status": "error"}"#);
    assert!(matches!(rig.worker.handle(&request, false).await, Disposition::Done(Ending::Started { .. })));
    assert_eq!(rig.pipelines.starts().len(), 1);
    assert!(rig.forge.flags().is_empty(), "no pending flag over a final one");
}

/// The metric events of the thread it is the default subscriber of: (metric, dimensions).
#[derive(Debug, Clone, Default)]
struct Metrics(Arc<Mutex<Vec<(String, String)>>>);

impl Metrics {
    fn names(&self) -> Vec<String> {
        self.0.lock().expect("metrics").iter().map(|(name, _)| name.clone()).collect()
    }

    fn dimensions_of(&self, name: &str) -> Vec<Vec<(String, String)>> {
        let events = self.0.lock().expect("metrics");
        events.iter().filter(|(n, _)| n == name).map(|(_, d)| crate::metrics::decode_dimensions(d)).collect()
    }
}

impl tracing::Subscriber for Metrics {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == crate::metrics::TARGET
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        #[derive(Default)]
        struct Fields(String, String);
        impl tracing::field::Visit for Fields {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "metric" {
                    self.0 = value.to_owned();
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "dimensions" {
                    self.1 = format!("{value:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().expect("metrics").push((fields.0, fields.1));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn builds_failures_and_the_three_durations_are_counted() {
    let metrics = Metrics::default();
    let _default = tracing::subscriber::set_default(metrics.clone());
    let rig = rig();
    assert!(matches!(rig.worker.handle(&rig.push(), false).await, Disposition::Done(Ending::Started { .. })));
    assert_eq!(metrics.names(), ["FetchDuration", "ArchiveDuration", "UploadDuration", "BuildsStarted"]);

    rig.source.fail_next_fetch(FetchError::Transient("HTTP 500".into()));
    let request = rig.request("demo", FAKE_COMMIT, "demo", None);
    assert!(matches!(rig.worker.handle(&request, false).await, Disposition::Retry(_)));
    rig.source.fail_next_fetch(FetchError::NoDefaultBranch);
    assert!(matches!(rig.worker.handle(&request, false).await, Disposition::Done(Ending::Failed { .. })));
    let class = |value: &str| vec![("Class".to_owned(), value.to_owned())];
    assert_eq!(metrics.dimensions_of("Failures"), [class("transient"), class("terminal")]);
    assert_eq!(metrics.dimensions_of("BuildsStarted").len(), 1, "failures start nothing");
}
