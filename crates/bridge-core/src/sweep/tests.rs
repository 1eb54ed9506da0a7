use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::config::LocalConfig;
use crate::fakes::FakeStore;
use crate::ports::{ArtifactMetadata, InMemoryPipelines};
use crate::report::{BuildEvent, CodeBuildChange, PhaseOutcome, ReportOutcome, flag_uid};

const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const CONFIG: &str = r#"
[secrets]
file = "unused.json"
[projects.demo]
pagure_url = "https://pagure.example.org"
git_url = "https://pagure.example.org"
project = "demo"
pipeline = "demo-ci"
untrusted_pipeline = "demo-untrusted"
"#;

/// Records every flag posted.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<FlagUpdate>>);

impl Forge for &Recorder {
    async fn report(&self, update: &FlagUpdate) -> Result<(), ForgeError> {
        self.0.lock().expect("flags").push(update.clone());
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<FlagUpdate> {
        std::mem::take(&mut *self.0.lock().expect("flags"))
    }
}

struct World {
    store: FakeStore,
    pipelines: std::sync::Arc<InMemoryPipelines>,
    flags: Recorder,
}

type Service<'w> = ReportService<&'w Recorder, std::sync::Arc<InMemoryPipelines>, SettlementMarkers<FakeStore>>;

impl World {
    fn new() -> Self {
        World { store: FakeStore::default(), pipelines: std::sync::Arc::default(), flags: Recorder::default() }
    }

    fn service(&self) -> Service<'_> {
        let config = LocalConfig::parse(CONFIG, std::path::Path::new("/")).expect("config");
        ReportService::new(config.accept, &self.flags, self.pipelines.clone())
            .with_settlements(SettlementMarkers::new(self.store.clone(), "sources"))
    }

    fn sweeper(&self) -> Sweeper<FakeStore> {
        Sweeper::new(self.store.clone(), SweepSettings::new("sources", Duration::from_secs(3600)))
    }

    /// A request the work stage started: its marker and archive, and the execution.
    async fn started(&self, request_id: &str, execution_id: &str, state: Option<ExecutionState>) {
        let base = format!("sources/demo/{request_id}");
        self.store.put_marker(&format!("{base}.started"), execution_id).await.expect("marker");
        // The fake store records the archive's path; it never opens it.
        let zip = std::path::PathBuf::from(format!("/work/{request_id}.zip"));
        let metadata = ArtifactMetadata {
            entries: vec![
                ("pagure-project".into(), "demo".into()),
                ("pagure-repo".into(), "https://pagure.example.org/demo.git".into()),
                ("pagure-cause".into(), SHA.into()),
                ("pagure-commit".into(), SHA.into()),
                ("pagure-request-id".into(), request_id.into()),
            ],
            revision_summary: "demo push".into(),
        };
        self.store.put_archive(&format!("{base}.zip"), &zip, &metadata).await.expect("archive");
        if let Some(state) = state {
            self.pipelines.set_execution("demo-ci", execution_id, state);
        }
    }

    async fn settled(&self, request_id: &str) -> Option<serde_json::Value> {
        let text = self.store.marker(&format!("sources/demo/{request_id}.settled")).await.expect("read")?;
        Some(serde_json::from_str(&text).expect("json"))
    }
}

fn variables(request_id: &str) -> BTreeMap<String, String> {
    [
        ("PAGURE_REQUEST_ID", request_id),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "https://pagure.example.org/demo.git"),
        ("PAGURE_CAUSE", SHA),
        ("PAGURE_COMMIT", SHA),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn state(status: &str, request_id: &str, builds: Vec<BuildAction>) -> ExecutionState {
    ExecutionState {
        status: status.into(),
        summary: None,
        variables: variables(request_id),
        region: "eu-west-1".into(),
        builds,
    }
}

fn action(status: &str, build_id: Option<&str>, message: Option<&str>) -> BuildAction {
    BuildAction {
        stage: "Build".into(),
        action: "CodeBuild".into(),
        status: status.into(),
        build_id: build_id.map(String::from),
        message: message.map(String::from),
    }
}

fn build(id: &str, status: &str, failed: Option<(&str, &str, &str)>) -> CodeBuildChange {
    let mut phases = vec![PhaseOutcome { phase: "INSTALL".into(), status: Some("SUCCEEDED".into()), context: vec![] }];
    if let Some((phase, status, context)) = failed {
        phases.push(PhaseOutcome { phase: phase.into(), status: Some(status.into()), context: vec![context.into()] });
    }
    CodeBuildChange {
        region: "eu-west-1".into(),
        account: "123456789012".into(),
        project_name: "demo-build".into(),
        build_id: format!("arn:aws:codebuild:eu-west-1:123456789012:build/{id}"),
        build_number: Some(7),
        status: status.into(),
        phases,
        initiator: Some("codepipeline/demo-ci".into()),
        variables: BTreeMap::new(),
    }
}

fn later(hours: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::hours(hours)
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

fn request(n: u8) -> String {
    format!("{n:02}{}", "ab".repeat(15))
}

#[tokio::test]
async fn a_finished_build_gets_the_flag_its_event_would_have_given_once() {
    let w = World::new();
    let r = request(1);
    w.started(&r, "e1", Some(state("Failed", &r, vec![action("Failed", Some("demo-build:b1"), None)]))).await;
    w.pipelines.set_build(build(
        "demo-build:b1",
        "FAILED",
        Some(("BUILD", "FAILED", "COMMAND_EXECUTION_ERROR: make check")),
    ));
    let service = w.service();
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.due, report.posted, report.complete), (1, 1, true));
    let flags = w.flags.take();
    let [flag] = flags.as_slice() else { panic!("one flag: {flags:?}") };
    assert_eq!(flag.status, FlagStatus::Failure);
    assert_eq!(flag.comment, "Build #7 failed in phase BUILD: COMMAND_EXECUTION_ERROR: make check");
    assert_eq!(flag.uid, flag_uid(&r), "the pending flag's uid");
    assert_eq!(
        (flag.target.project_path.as_str(), &flag.target.on),
        ("demo", &crate::forge::FlagOn::Commit(SHA.into()))
    );
    assert!(flag.url.contains("/projects/demo-build/build/demo-build%3Ab1/"), "{}", flag.url);
    let settled = w.settled(&r).await.expect("settled");
    assert_eq!((settled["status"].as_str(), settled["by"].as_str()), (Some("failure"), Some("sweep")));
    let again = w.sweeper().run(&service, later(3), far()).await.expect("sweep");
    assert_eq!((again.due, again.posted), (0, 0), "a settled request is never reposted");
    assert!(w.flags.take().is_empty());
}

#[tokio::test]
async fn a_running_execution_stays_pending_and_young_or_old_markers_are_left_alone() {
    let w = World::new();
    let r = request(2);
    w.started(&r, "e2", Some(state("InProgress", &r, vec![action("InProgress", Some("demo-build:b2"), None)]))).await;
    let service = w.service();
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.due, report.running, report.posted), (1, 1, 0));
    assert!(w.flags.take().is_empty());
    assert!(w.settled(&r).await.is_none());
    // Younger than `after`, older than the horizon: not even looked up.
    w.pipelines.set_execution("demo-ci", "e2", state("Succeeded", &r, vec![]));
    let young = w.sweeper().run(&service, OffsetDateTime::now_utc() + time::Duration::minutes(10), far()).await;
    assert_eq!(young.expect("sweep").due, 0);
    let old = w.sweeper().run(&service, later(8 * 24), far()).await.expect("sweep");
    assert_eq!(old.due, 0);
    assert!(w.flags.take().is_empty());
}

#[tokio::test]
async fn an_execution_codepipeline_forgot_is_an_error_placed_from_the_archive() {
    let w = World::new();
    let r = request(3);
    w.started(&r, "gone", None).await;
    let service = w.service();
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!(report.posted, 1);
    let flags = w.flags.take();
    let [flag] = flags.as_slice() else { panic!("one flag: {flags:?}") };
    assert_eq!(flag.status, FlagStatus::Error);
    assert!(
        flag.comment.contains("no longer knows execution gone (pipeline demo-ci or demo-untrusted)"),
        "{}",
        flag.comment
    );
    assert!(flag.comment.contains("rebuild"), "{}", flag.comment);
    assert_eq!(
        (flag.target.project_path.as_str(), &flag.target.on),
        ("demo", &crate::forge::FlagOn::Commit(SHA.into()))
    );
    assert_eq!(flag.url, format!("https://pagure.example.org/demo/c/{SHA}"));
    // Without the archive either, nothing says where a flag goes: recorded, not retried.
    let r2 = request(4);
    w.store.put_marker(&format!("sources/demo/{r2}.started"), "gone2").await.expect("marker, no archive");
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.posted, report.unflaggable), (0, 1));
    assert_eq!(w.settled(&r2).await.expect("settled")["status"], "unflaggable");
}

#[tokio::test]
async fn the_untrusted_pipeline_is_looked_up_too_and_no_build_means_the_pipeline_flag() {
    let w = World::new();
    let r = request(5);
    w.started(&r, "u1", None).await;
    let mut failed = state("Failed", &r, vec![]);
    failed.summary = Some("Source: access denied".into());
    w.pipelines.set_execution("demo-untrusted", "u1", failed);
    let service = w.service();
    w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    let flags = w.flags.take();
    let [flag] = flags.as_slice() else { panic!("one flag: {flags:?}") };
    assert_eq!(flag.status, FlagStatus::Error);
    assert_eq!(flag.comment, "Pipeline demo-untrusted failed before CodeBuild ran: Source: access denied");
    assert_eq!(
        flag.url,
        "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/demo-untrusted/executions/u1"
    );
}

#[tokio::test]
async fn codebuild_at_its_concurrency_limit_is_retried_then_an_error_with_a_rebuild_hint() {
    let w = World::new();
    let r = request(6);
    let refused = || {
        action(
            "Failed",
            None,
            Some(
                "Error calling startBuild: Cannot have more than 1 builds in queue for the account (Service: AWSCodeBuild; Status Code: 400; Error Code: AccountLimitExceededException)",
            ),
        )
    };
    w.started(&r, "c1", Some(state("Failed", &r, vec![refused()]))).await;
    let service = w.service();
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.retried, report.posted), (1, 0));
    assert_eq!(w.pipelines.retries(), vec![("demo-ci".into(), "Build".into(), "c1".into())]);
    let flags = w.flags.take();
    let [flag] = flags.as_slice() else { panic!("one flag: {flags:?}") };
    assert_eq!(flag.status, FlagStatus::Pending, "transient: neither failure nor error");
    assert!(flag.comment.contains("attempt 2 of 4"), "{}", flag.comment);
    assert!(w.settled(&r).await.is_none());
    // The retried build ran and passed: settled as success.
    w.pipelines.set_execution(
        "demo-ci",
        "c1",
        state("Succeeded", &r, vec![action("Succeeded", Some("demo-build:b6"), None), refused()]),
    );
    w.pipelines.set_build(build("demo-build:b6", "SUCCEEDED", None));
    w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!(w.flags.take().iter().map(|f| f.status).collect::<Vec<_>>(), vec![FlagStatus::Success]);
    // Refused four times (three retries used up): error, saying what to do.
    let r2 = request(7);
    w.started(&r2, "c2", Some(state("Failed", &r2, (0..4).map(|_| refused()).collect()))).await;
    w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    let flags = w.flags.take();
    let [flag] = flags.as_slice() else { panic!("one flag: {flags:?}") };
    assert_eq!(flag.status, FlagStatus::Error);
    assert!(flag.comment.contains("4 time(s)") && flag.comment.contains("ask for a rebuild"), "{}", flag.comment);
    assert_eq!(w.pipelines.retries().len(), 1, "no retry past the budget");
    // CodePipeline refusing the retry: the same error at once.
    let r3 = request(8);
    w.started(&r3, "c3", Some(state("Failed", &r3, vec![refused()]))).await;
    w.pipelines.refuse_retries.store(true, std::sync::atomic::Ordering::SeqCst);
    w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    let flags = w.flags.take();
    assert_eq!(flags.iter().map(|f| f.status).collect::<Vec<_>>(), vec![FlagStatus::Error]);
}

#[tokio::test]
async fn a_flag_settled_by_an_event_is_left_alone_and_late_pending_events_are_ignored() {
    let w = World::new();
    let r = request(9);
    w.started(&r, "e9", Some(state("Succeeded", &r, vec![action("Succeeded", Some("demo-build:b9"), None)]))).await;
    let service = w.service();
    let mut change = build("demo-build:b9", "SUCCEEDED", None);
    change.variables = variables(&r);
    let outcome = service.handle(&BuildEvent::CodeBuild(change.clone())).await.expect("event");
    assert!(matches!(outcome, ReportOutcome::Posted(_)));
    assert_eq!(w.settled(&r).await.expect("settled")["by"], "event");
    let report = w.sweeper().run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.due, report.posted), (0, 0));
    let late = CodeBuildChange { status: "IN_PROGRESS".into(), ..change };
    let outcome = service.handle(&BuildEvent::CodeBuild(late)).await.expect("event");
    assert!(matches!(outcome, ReportOutcome::Ignored(_)), "{outcome:?}");
    assert_eq!(w.flags.take().len(), 1, "only the event's final flag");
}

#[tokio::test]
async fn work_per_run_is_bounded_and_the_next_run_goes_on_from_the_cursor() {
    let w = World::new();
    for n in 10..15 {
        let r = request(n);
        let id = format!("e{n}");
        w.started(&r, &id, Some(state("Succeeded", &r, vec![]))).await;
    }
    let service = w.service();
    let mut sweeper = w.sweeper();
    sweeper.settings.max_checks = 2;
    sweeper.settings.page_size = 3;
    // A deadline already within the margin: nothing is looked up, nothing is lost.
    let report = sweeper.run(&service, later(2), Instant::now()).await.expect("sweep");
    assert_eq!((report.due, report.stopped.is_some()), (0, true));
    let mut posted = Vec::new();
    for run in 0..3 {
        let report = sweeper.run(&service, later(2), far()).await.expect("sweep");
        assert!(report.due <= 2, "run {run}: {report:?}");
        posted.extend(w.flags.take().into_iter().map(|f| f.uid));
    }
    let mut expected: Vec<String> = (10..15).map(|n| flag_uid(&request(n))).collect();
    expected.sort();
    posted.sort();
    assert_eq!(posted, expected, "every request settled once across the runs");
    let report = sweeper.run(&service, later(2), far()).await.expect("sweep");
    assert_eq!((report.due, report.complete), (0, true));
}

#[test]
fn marker_keys_are_read_back() {
    assert_eq!(parse_started("sources", "sources/rpms/bash/r1.started"), Some(("rpms/bash".into(), "r1".into())));
    assert_eq!(parse_started("sources", "sources/demo/claims/abc"), None);
    assert_eq!(parse_started("sources", "sources/r1.started"), None);
    assert_eq!(parse_started("sources", "sources/.sweep/x.started"), None);
}
