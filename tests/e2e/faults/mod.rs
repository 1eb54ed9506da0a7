//! Faults, one at a time, end to end: triggers over HTTP into local mode's accept service,
//! the worker fetching over smart HTTP from `git http-backend`, archives and claims in S3
//! on moto, flags on the contract-faithful fake Pagure through the real client.
//!
//! Each scenario asserts its expected final state (started, retried then started, merged
//! into another request, ignored with a reason, an `error` flag with the reason, or the
//! dead-letter queue with the reason). A ledger proves that every accepted request reached
//! exactly one final state, checked against what the outside saw: pipeline runs, flags on
//! Pagure. Everything runs under a TRACE subscriber, and no secret may appear in the logs.
//!
//! `cargo test -p e2e-tests --test e2e faults -- --nocapture` prints the table that
//! docs/reliability.md shows.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bridge_aws::{Encryption, S3Store};
use bridge_core::accept::AcceptService;
use bridge_core::config::LocalConfig;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{ArtifactMetadata, ArtifactStore, StoreError, StoredArtifact, StoredMarker};
use bridge_core::work::{Disposition, Ending, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{InProcessQueue, LocalPipeline, StaticSecrets};
use bridge_pagure::{PagureForge, PagureWebhooks};
use e2e_tests::fake_pagure::{FakePagure, Fault as PagureFault, Token};
use e2e_tests::git_server::{DemoRepos, Fault as GitFault, demo_repos, git, publish};
use e2e_tests::{Moto, capture_logs, temp_dir};
use tokio::sync::mpsc;

mod scenarios;

use scenarios::scenarios;

const TRIGGER_TOKEN: &str = "fault-suite-trigger-token-2b7e151628aed2a6";
const PAGURE_TOKEN: &str = "fault-suite-pagure-api-token-abf7158809cf4f3c";
const REVOKED_TOKEN: &str = "fault-suite-revoked-api-token-762e7160f38b4da5";
/// Deliveries of a message before it goes to the dead-letter queue (SQS `maxReceiveCount`).
const MAX_ATTEMPTS: u32 = 3;

/// The S3 store on moto, which can kill moto as an upload begins ("S3 down mid-upload").
struct StoppableStore {
    inner: S3Store,
    moto: Arc<Mutex<Moto>>,
    stop_at_upload: Arc<AtomicBool>,
}

impl ArtifactStore for StoppableStore {
    async fn put_archive(
        &self,
        key: &str,
        path: &Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        if self.stop_at_upload.swap(false, Ordering::SeqCst) {
            self.moto.lock().expect("moto").stop();
        }
        self.inner.put_archive(key, path, metadata).await
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        self.inner.put_marker(key, content).await
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.marker(key).await
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        self.inner.create_marker(key, content).await
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        self.inner.replace_marker(key, content, seen).await
    }
}

type FaultWorker = Worker<GitFetcher, StoppableStore, LocalPipeline, PagureForge<StaticSecrets>, StaticSecrets>;

/// Where a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Final {
    Ended(Ending),
    DeadLetter(String),
}

impl Final {
    fn label(&self) -> String {
        match self {
            Final::Ended(Ending::Started { .. }) => "started".into(),
            Final::Ended(Ending::Duplicate { .. }) => "merged into another".into(),
            Final::Ended(Ending::Ignored { .. }) => "ignored".into(),
            Final::Ended(Ending::Awaiting { .. }) => "awaiting approval".into(),
            Final::Ended(Ending::Failed { flagged: true, .. }) => "error flag".into(),
            Final::Ended(Ending::Failed { flagged: false, .. }) => "failed, flag refused (logged)".into(),
            Final::DeadLetter(_) => "dead letter + error flag".into(),
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Final::Ended(Ending::Ignored { reason } | Ending::Failed { reason, .. }) | Final::DeadLetter(reason) => {
                Some(reason)
            }
            _ => None,
        }
    }
}

/// One scenario's line of the ledger.
struct Row {
    fault: &'static str,
    sent: usize,
    answered_2xx: usize,
    /// Request id → final state; each recorded once.
    finals: BTreeMap<String, (Final, u32)>,
    seconds: f64,
}

struct Rig {
    repos: DemoRepos,
    pagure: FakePagure,
    moto: Arc<Mutex<Moto>>,
    s3: aws_sdk_s3::Client,
    stop_at_upload: Arc<AtomicBool>,
    bridge_url: String,
    /// A git URL where nothing listens.
    dead_git: String,
    queue: mpsc::Receiver<BuildRequest>,
    worker: Arc<FaultWorker>,
    pipeline: LocalPipeline,
    rows: Vec<Row>,
    /// When the current scenario began.
    mark: Instant,
}

fn config(git: &str, pagure: &str, dead_git: &str) -> LocalConfig {
    let project = |key: &str, path: &str, git: &str| {
        format!(
            "[projects.{key}]\npagure_url = \"{pagure}\"\ngit_url = \"{git}\"\nproject = \"{path}\"\npipeline = \"{key}-ci\"\nallow_insecure_git_url = true\n"
        )
    };
    let mut text = format!(
        "[secrets]\nfile = \"unused.json\"\n[work]\nmax_attempts = {MAX_ATTEMPTS}\nfetch_timeout_seconds = 30\n[report]\npagure_attempts = 3\npagure_timeout_seconds = 2\n"
    );
    for (key, path, host) in [
        ("demo", "demo", git),
        ("nospec", "nospec", git),
        ("badspec", "badspec", git),
        ("bomb", "bomb", git),
        ("moving", "moving", git),
        ("revoked", "nospec", git),
        ("deadhost", "demo", dead_git),
    ] {
        text.push_str(&project(key, path, host));
    }
    LocalConfig::parse(&text, Path::new("/")).expect("config")
}

fn secrets() -> StaticSecrets {
    let mut projects = serde_json::Map::new();
    for key in ["demo", "nospec", "badspec", "bomb", "moving", "deadhost"] {
        projects
            .insert(key.into(), serde_json::json!({"trigger_token": TRIGGER_TOKEN, "pagure_api_token": PAGURE_TOKEN}));
    }
    projects.insert(
        "revoked".into(),
        serde_json::json!({"trigger_token": TRIGGER_TOKEN, "pagure_api_token": REVOKED_TOKEN}),
    );
    let doc = serde_json::json!({ "projects": projects }).to_string();
    StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(&doc).expect("secrets"))
}

/// A buildspec of about 1 MB whose aliases would expand to 10^9 strings.
fn alias_bomb() -> String {
    let mut text = String::from("version: 0.2\n");
    text.push_str(&format!("# {}\n", "padding ".repeat(120)).repeat(1000));
    text.push_str("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for (name, prev) in [("b", "a"), ("c", "b"), ("d", "c"), ("e", "d"), ("f", "e"), ("g", "f"), ("h", "g"), ("i", "h")]
    {
        let refs = vec![format!("*{prev}"); 10].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    text.push_str("phases:\n  build:\n    commands: [\"echo\"]\n");
    text
}

impl Rig {
    async fn start() -> Rig {
        e2e_tests::libgit2_timeouts();
        let repos = demo_repos().await;
        let root = &repos.server.root;
        e2e_tests::git_server::single_commit_repo(root, "bomb", &[("buildspec.yml", &alias_bomb())]);
        let moving = temp_dir("git-moving");
        git(&moving, &["init", "-q", "-b", "main"]);
        std::fs::write(moving.join("buildspec.yml"), "version: 0.2\nphases:\n  build:\n    commands: [make]\n")
            .expect("write");
        git(&moving, &["add", "-A"]);
        git(&moving, &["commit", "-q", "-m", "m1"]);
        git(&moving, &["checkout", "-q", "-b", "topic"]);
        git(&moving, &["commit", "-q", "--allow-empty", "-m", "t1"]);
        git(&moving, &["checkout", "-q", "main"]);
        git(&moving, &["commit", "-q", "--allow-empty", "-m", "m2"]);
        publish(&moving, &root.join("moving.git"), "main");
        git(&moving, &["push", "-q", root.join("moving.git").to_str().expect("utf-8"), "topic"]);

        let pagure = FakePagure::start().await;
        for project in ["demo", "nospec", "badspec", "bomb", "moving"] {
            pagure.add_project(project);
        }
        pagure.add_token(
            PAGURE_TOKEN,
            Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false },
        );
        pagure.set_pull("demo", 1, &repos.shas["f4"]);
        pagure.set_pull("demo", 2, &repos.shas["bob"]);
        // Both by a committer: these scenarios are about faults (trust.rs is about trust).
        for id in [1, 2] {
            pagure.set_pull_author("demo", id, "pingou", "rawhide");
        }
        pagure.add_committer("demo", "pingou", None);

        let moto = Moto::start();
        let s3 = moto.versioned_bucket("sources").await;
        let moto = Arc::new(Mutex::new(moto));
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_git = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead); // Nothing listens there now: connections are refused.
        let config = config(&repos.server.base, &pagure.url, &dead_git);
        let stop_at_upload = Arc::new(AtomicBool::new(false));
        let store = StoppableStore {
            inner: S3Store::new(s3.clone(), "sources", Encryption::S3Managed),
            moto: moto.clone(),
            stop_at_upload: stop_at_upload.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let bridge_url = format!("http://{}", listener.local_addr().expect("addr"));
        let pipeline = LocalPipeline::new(&bridge_url);
        let flags = PagureForge::from_config(&config.report, config.accept.projects.clone(), secrets()).expect("flags");
        let settings = WorkSettings::with_limits(&config.work);
        let source = GitFetcher::new(temp_dir("fault-scratch"));
        let worker =
            Arc::new(Worker::new(config.accept.clone(), settings, source, store, pipeline.clone(), flags, secrets()));
        let (queue, receiver) = InProcessQueue::new(4096);
        let service = Arc::new(AcceptService::new(config.accept.clone(), queue, secrets(), PagureWebhooks));
        tokio::spawn(pagure_ci_bridge::serve(listener, service, std::future::pending()));
        Rig {
            repos,
            pagure,
            moto,
            s3,
            stop_at_upload,
            bridge_url,
            dead_git,
            queue: receiver,
            worker,
            pipeline,
            rows: Vec::new(),
            mark: Instant::now(),
        }
    }

    fn git_url(&self, path: &str) -> String {
        self.repos.server.url(path)
    }

    /// A JSON trigger; the HTTP status.
    async fn json(&self, project: &str, body: serde_json::Value) -> u16 {
        e2e_tests::http()
            .post(format!("{}/trigger/{project}", self.bridge_url))
            .header("authorization", format!("token {TRIGGER_TOKEN}"))
            .json(&body)
            .send()
            .await
            .expect("trigger")
            .status()
            .as_u16()
    }

    /// pagure-ci's call; the HTTP status.
    async fn jenkins(&self, project: &str, cause: &str, repo: &str, branch: &str, branch_to: &str) -> u16 {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("cause", cause)
            .append_pair("REPO", repo)
            .append_pair("BRANCH", branch)
            .append_pair("BRANCH_TO", branch_to)
            .append_pair("token", TRIGGER_TOKEN)
            .finish();
        e2e_tests::http()
            .post(format!("{}/job/{project}/buildWithParameters?{query}", self.bridge_url))
            .send()
            .await
            .expect("trigger")
            .status()
            .as_u16()
    }

    /// Everything the queue holds now.
    fn queued(&mut self) -> Vec<BuildRequest> {
        let mut out = Vec::new();
        while let Ok(request) = self.queue.try_recv() {
            out.push(request);
        }
        out
    }

    /// Delivers `request` as SQS would until it is done or dead-lettered; `between` runs
    /// after each failed delivery (to repair a fault).
    async fn settle(&self, request: &BuildRequest, mut between: impl AsyncFnMut()) -> (Final, u32) {
        for attempt in 1..=MAX_ATTEMPTS {
            match self.worker.handle(request, attempt == MAX_ATTEMPTS).await {
                Disposition::Done(ending) => return (Final::Ended(ending), attempt),
                Disposition::Retry(reason) if attempt == MAX_ATTEMPTS => return (Final::DeadLetter(reason), attempt),
                Disposition::Retry(_) => between().await,
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Records a scenario: every queued request must have exactly one final state.
    fn record(&mut self, fault: &'static str, sent: usize, answered_2xx: usize, ends: Vec<(BuildRequest, Final, u32)>) {
        let mut finals = BTreeMap::new();
        for (request, end, attempts) in ends {
            let previous = finals.insert(request.request_id.clone(), (end, attempts));
            assert!(previous.is_none(), "{fault}: request {} ended twice", request.request_id);
        }
        assert_eq!(answered_2xx, finals.len(), "{fault}: every accepted trigger was queued and ended");
        assert!(self.queue.try_recv().is_err(), "{fault}: nothing left on the queue");
        self.rows.push(Row { fault, sent, answered_2xx, finals, seconds: self.mark.elapsed().as_secs_f64() });
        self.mark = Instant::now();
    }

    /// Settles everything queued, with no repair between attempts.
    async fn settle_all(&mut self) -> Vec<(BuildRequest, Final, u32)> {
        let mut ends = Vec::new();
        for request in self.queued() {
            let (end, attempts) = self.settle(&request, async || {}).await;
            ends.push((request, end, attempts));
        }
        ends
    }

    /// Error flags on the fake Pagure, by uid.
    fn error_flags(&self) -> BTreeMap<String, String> {
        self.pagure.flags().into_iter().filter(|f| f.status == "error").map(|f| (f.uid, f.comment)).collect()
    }

    /// The cross-check: what the ledger says against what the outside saw.
    fn check_ledger(&self) {
        let runs: Vec<String> = self
            .pipeline
            .runs()
            .values()
            .map(|run| run.variables.get("PAGURE_REQUEST_ID").cloned().expect("request id variable"))
            .collect();
        let errors = self.error_flags();
        let mut started = 0;
        for row in &self.rows {
            for (id, (end, _)) in &row.finals {
                let runs_of_id = runs.iter().filter(|r| *r == id).count();
                let flagged = errors.get(&bridge_core::report::flag_uid(id));
                match end {
                    Final::Ended(Ending::Started { .. }) => {
                        assert_eq!(runs_of_id, 1, "{}: {id} started exactly one run", row.fault);
                        started += 1;
                    }
                    Final::Ended(Ending::Failed { flagged: true, reason }) | Final::DeadLetter(reason) => {
                        assert_eq!(runs_of_id, 0, "{}: {id} started nothing", row.fault);
                        let comment = flagged.unwrap_or_else(|| panic!("{}: {id} has an error flag", row.fault));
                        assert!(
                            comment.contains(reason.as_str()) || reason.contains(comment.as_str()),
                            "{comment} / {reason}"
                        );
                    }
                    Final::Ended(_) => {
                        assert_eq!(runs_of_id, 0, "{}: {id} started nothing", row.fault);
                        assert!(flagged.is_none(), "{}: {id} has no error flag", row.fault);
                    }
                }
            }
        }
        assert_eq!(runs.len(), started, "every pipeline run belongs to exactly one started request");
    }

    fn table(&self) -> String {
        let mut out = String::from(
            "| fault | outcome | triggers in | accepted | ended (exactly once) | deliveries | seconds | reason |\n|---|---|---|---|---|---|---|---|\n",
        );
        for row in &self.rows {
            let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
            for (end, _) in row.finals.values() {
                *outcomes.entry(end.label()).or_default() += 1;
            }
            let outcome = if row.finals.is_empty() {
                "refused 503, nothing queued".to_owned()
            } else {
                outcomes.iter().map(|(label, n)| format!("{n} {label}")).collect::<Vec<_>>().join(", ")
            };
            let attempts = row.finals.values().map(|(_, a)| *a).max().unwrap_or(0);
            let reason = row.finals.values().find_map(|(end, _)| end.reason().map(str::to_owned)).unwrap_or_default();
            let reason: String = reason.chars().take(110).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
                row.fault,
                outcome,
                row.sent,
                row.answered_2xx,
                row.finals.len(),
                attempts,
                row.seconds,
                reason.replace('|', "\\|")
            ));
        }
        out
    }
}

#[test]
fn every_fault_ends_in_exactly_one_final_state() {
    let started = Instant::now();
    let (table, logs) = capture_logs(|| {
        // One thread: the TRACE subscriber sees every task (blocking git work aside).
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let mut rig = Rig::start().await;
            rig.mark = Instant::now();
            scenarios(&mut rig).await;
            rig.check_ledger();
            rig.table()
        })
    });
    println!("{table}");
    println!("fault suite: {} scenarios in {:.1} s", table.lines().count() - 2, started.elapsed().as_secs_f64());
    assert!(logs.len() > 10_000, "the suite logged at TRACE ({} bytes)", logs.len());
    for secret in [TRIGGER_TOKEN, PAGURE_TOKEN, REVOKED_TOKEN] {
        assert!(!logs.contains(secret), "a secret is in the TRACE logs");
    }
}
