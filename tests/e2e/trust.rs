//! The trust boundary end to end: local mode (the real accept doors, work stage, Pagure
//! client and report stage) against the contract-faithful fake Pagure and `git
//! http-backend`. Each request is driven through the worker and judged by what the outside
//! saw: which pipeline ran (`/runs/<id>`), the archive's `pagure-trust` metadata, the flags
//! and the `hascommit` calls the fake Pagure received.
//!
//! Projects (all the same Pagure project `demo`, each with its own pipelines):
//! - `open`: `untrusted_pipeline = "open-untrusted"`;
//! - `gated`: `approval_phrase = "/ok-to-test"`;
//! - `closed`: neither;
//! - `far`: an `untrusted_pipeline`, and a `pagure_url` where nothing listens.
//!
//! People: `pingou` commits to every branch, `carol` too, `alice` only to `sandbox`;
//! `mallory` and `eve` to nothing. PR 1 (same project, head `f4`) is pingou's; PR 2 (from
//! bob's fork, head `bob`) is mallory's; both target `rawhide`. PRs 3 to 5 are pingou's, to
//! `rawhide`, from sources he does or does not control (see
//! `a_committers_access_vouches_only_for_sources_they_control`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bridge_core::auth::{Secret, sign256};
use bridge_core::config::LocalConfig;
use bridge_core::model::{Approval, BuildRequest, TriggerKind};
use bridge_core::report::flag_uid;
use bridge_core::work::{Disposition, Ending};
use e2e_tests::fake_pagure::{FakePagure, PullSource, StoredFlag, Token};
use e2e_tests::git_server::{DemoRepos, demo_repos, git};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const PAGURE_TOKEN: &str = "PAGUREAPITOKEN0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789AB";
const TRIGGER_TOKEN: &str = "trust-trigger-token";
const HOOK_TOKEN: &str = "trust-hook-token";

struct Rig {
    repos: DemoRepos,
    pagure: FakePagure,
    bridge: String,
    worker: Arc<pagure_ci_bridge::LocalWorker>,
    queue: mpsc::Receiver<BuildRequest>,
    artifacts: PathBuf,
}

/// What became of one request.
#[derive(Debug)]
struct Outcome {
    request: BuildRequest,
    ending: Ending,
    /// The pipeline that ran, if one did.
    pipeline: Option<String>,
    /// The archive's `pagure-trust`, if one was stored.
    trust: Option<String>,
    /// This request's flag on the fake Pagure (one per request), if posted.
    flag: Option<StoredFlag>,
}

impl Rig {
    async fn start() -> Rig {
        let repos = demo_repos().await;
        let pagure = FakePagure::start().await;
        pagure.add_project("demo");
        pagure.add_project("fork/bob/demo");
        pagure.add_token(
            PAGURE_TOKEN,
            Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false },
        );
        pagure.set_pull("demo", 1, &repos.shas["f4"]);
        pagure.set_pull_author("demo", 1, "pingou", "rawhide");
        pagure.set_pull("demo", 2, &repos.shas["bob"]);
        pagure.set_pull_author("demo", 2, "mallory", "rawhide");
        pagure.set_pull_source("demo", 2, PullSource::Fork("bob".into()));
        pagure.add_committer("demo", "pingou", None);
        pagure.add_committer("demo", "carol", None);
        pagure.add_committer("demo", "alice", Some(&["sandbox"]));

        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead_pagure = format!("http://{}/", dead.local_addr().expect("addr"));
        drop(dead); // Nothing listens there now: connections are refused.

        let dir = e2e_tests::temp_dir("trust");
        let artifacts = dir.join("artifacts");
        let mut projects = serde_json::Map::new();
        for key in ["open", "gated", "closed", "far"] {
            projects.insert(
                key.into(),
                json!({"trigger_token": TRIGGER_TOKEN, "hook_token": HOOK_TOKEN, "pagure_api_token": PAGURE_TOKEN}),
            );
        }
        std::fs::write(dir.join("secrets.json"), json!({ "projects": projects }).to_string()).expect("secrets");
        let project = |key: &str, pagure_url: &str, extra: &str| {
            format!(
                "[projects.{key}]\npagure_url = \"{pagure_url}\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"{key}-ci\"\nallow_insecure_git_url = true\n{extra}",
                repos.server.base
            )
        };
        let text = [
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nfile = \"secrets.json\"\n[work]\nartifacts_dir = \"{}\"\n[report]\npagure_attempts = 2\npagure_timeout_seconds = 2\n",
                artifacts.display()
            ),
            project("open", &pagure.url, "untrusted_pipeline = \"open-untrusted\"\n"),
            project("gated", &pagure.url, "approval_phrase = \"/ok-to-test\"\n"),
            project("closed", &pagure.url, ""),
            project("far", &dead_pagure, "untrusted_pipeline = \"far-untrusted\"\n"),
        ]
        .concat();
        let config = LocalConfig::parse(&text, &dir).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let bridge = format!("http://{}", listener.local_addr().expect("addr"));
        let (app, worker, queue) = pagure_ci_bridge::build_local(&config, &format!("{bridge}/")).await.expect("local");
        tokio::spawn(pagure_ci_bridge::serve(listener, Arc::new(app), std::future::pending()));
        Rig { repos, pagure, bridge, worker: Arc::new(worker), queue, artifacts }
    }

    fn sha(&self, name: &str) -> String {
        self.repos.shas[name].clone()
    }

    fn repo(&self, path: &str) -> String {
        self.repos.server.url(path)
    }

    /// A JSON trigger; the request it queued.
    async fn json(&mut self, project: &str, body: Value) -> BuildRequest {
        let response = e2e_tests::http()
            .post(format!("{}/trigger/{project}", self.bridge))
            .header("authorization", format!("token {TRIGGER_TOKEN}"))
            .json(&body)
            .send()
            .await
            .expect("trigger");
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
        self.queued().await
    }

    /// A signed `pull-request.comment.added` web-hook for PR 2 of `project`: `comment` by
    /// `author`, when the PR's head was `commit_stop`. The HTTP status and its body.
    async fn comment(&self, project: &str, author: &str, comment: &str, commit_stop: &str) -> (u16, Value) {
        let body = json!({"topic": "pull-request.comment.added", "msg": {
            "agent": author, "project_fullname": "demo",
            "pullrequest": {
                "id": 2, "branch": "rawhide", "branch_from": "bob-fix", "status": "Open",
                "project": {"fullname": "demo"}, "repo_from": {"fullname": "forks/bob/demo"}, "remote_git": null,
                "commit_stop": commit_stop, "user": {"name": "mallory"},
                "comments": [
                    {"id": 1, "comment": "**1 new commit added**", "notification": true, "user": {"name": "mallory"}},
                    {"id": 2, "comment": comment, "notification": false, "user": {"name": author}}
                ]
            }
        }});
        let body = serde_json::to_vec(&body).expect("json");
        let response = e2e_tests::http()
            .post(format!("{}/webhook/{project}", self.bridge))
            .header("content-type", "application/json")
            .header("x-pagure", &self.pagure.url)
            .header("x-pagure-topic", "pull-request.comment.added")
            .header("x-pagure-signature-256", sign256(&body, &Secret::new(HOOK_TOKEN)))
            .body(body)
            .send()
            .await
            .expect("web-hook");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json answer"))
    }

    async fn queued(&mut self) -> BuildRequest {
        tokio::time::timeout(Duration::from_secs(5), self.queue.recv()).await.expect("queued within 5 s").expect("open")
    }

    /// Works `request` as its last delivery and gathers what the outside saw.
    async fn work(&self, request: BuildRequest) -> Outcome {
        let Disposition::Done(ending) = self.worker.handle(&request, true).await else {
            panic!("{request:?}: not done")
        };
        let pipeline = match &ending {
            Ending::Started { execution_id } => {
                let run: Value = e2e_tests::http()
                    .get(format!("{}/runs/{execution_id}", self.bridge))
                    .send()
                    .await
                    .expect("run")
                    .json()
                    .await
                    .expect("run json");
                run["pipeline"].as_str().map(String::from)
            }
            _ => None,
        };
        let stored = self.artifacts.join(format!("sources/{}/{}.zip.json", request.project.key, request.request_id));
        let trust = std::fs::read_to_string(&stored)
            .ok()
            .map(|text| serde_json::from_str::<Value>(&text).expect("metadata json"))
            .and_then(|meta| meta["metadata"]["pagure-trust"].as_str().map(String::from));
        let uid = flag_uid(&request.request_id);
        let flag = self.pagure.flags().into_iter().find(|f| f.uid == uid);
        Outcome { request, ending, pipeline, trust, flag }
    }

    fn hascommit_queries(&self) -> Vec<String> {
        self.pagure.hascommit_calls().into_iter().map(|(_, query)| query).collect()
    }
}

fn started_in(outcome: &Outcome, pipeline: &str, trust: &str) {
    assert!(matches!(outcome.ending, Ending::Started { .. }), "{outcome:?}");
    assert_eq!(outcome.pipeline.as_deref(), Some(pipeline), "{outcome:?}");
    assert_eq!(outcome.trust.as_deref(), Some(trust), "{outcome:?}");
}

/// Nothing ran and nothing was stored; the request's flag on `commit` says `status` and
/// contains every one of `words`.
fn flagged_only(outcome: &Outcome, commit: &str, status: &str, words: &[&str]) {
    assert_eq!((outcome.pipeline.as_deref(), outcome.trust.as_deref()), (None, None), "{outcome:?}");
    let flag = outcome.flag.as_ref().unwrap_or_else(|| panic!("no flag: {outcome:?}"));
    assert_eq!((flag.project.as_str(), flag.commit.as_str(), flag.status.as_str()), ("demo", commit, status));
    for word in words {
        assert!(flag.comment.contains(word), "`{word}` not in the flag: {}", flag.comment);
    }
}

fn pr_json(rig: &Rig, id: u64, repo: &str, branch: &str, branch_to: &str) -> Value {
    json!({"cause": id, "repo": rig.repo(repo), "branch": branch, "branch_to": branch_to})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_pull_requests_build_where_their_trust_allows() {
    let mut rig = Rig::start().await;

    // A push to the project's own repository: trusted, and Pagure is not even asked.
    let body = json!({"cause": rig.sha("f4"), "repo": rig.repo("demo.git"), "branch": "feature"});
    let push = rig.json("closed", body).await;
    let outcome = rig.work(push).await;
    started_in(&outcome, "closed-ci", "trusted");
    assert_eq!(outcome.flag.as_ref().map(|f| f.status.as_str()), Some("pending"), "queued");
    assert!(rig.pagure.seen().iter().all(|r| r.method == "POST"), "no Pagure read for a push");

    // A push to a fork: untrusted, whoever pushed.
    let body = json!({"cause": rig.sha("bob"), "repo": rig.repo("forks/bob/demo.git"), "branch": "bob-fix"});
    let fork_push = rig.json("open", body.clone()).await;
    started_in(&rig.work(fork_push).await, "open-untrusted", "untrusted");
    let fork_push = rig.json("closed", body).await;
    let outcome = rig.work(fork_push).await;
    assert!(matches!(&outcome.ending, Ending::Failed { flagged: true, .. }), "{outcome:?}");
    // A fork's push is flagged on the fork.
    let flag = outcome.flag.as_ref().expect("error flag");
    assert_eq!((flag.project.as_str(), flag.status.as_str()), ("fork/bob/demo", "error"));
    assert!(
        flag.comment.contains("untrusted push to the fork of bob") && flag.comment.contains("untrusted_pipeline"),
        "{}",
        flag.comment
    );

    // A PR by a committer: trusted, asked about the PR's own target branch.
    let pr = rig.json("closed", pr_json(&rig, 1, "demo.git", "feature", "rawhide")).await;
    started_in(&rig.work(pr).await, "closed-ci", "trusted");
    assert_eq!(rig.hascommit_queries(), ["user=pingou&branch=rawhide"]);

    // A fork PR by someone who may not commit.
    let bob = rig.sha("bob");
    let pr = rig.json("open", pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    started_in(&rig.work(pr).await, "open-untrusted", "untrusted");
    let pr = rig.json("gated", pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    let outcome = rig.work(pr).await;
    assert!(matches!(&outcome.ending, Ending::Awaiting { flagged: true, .. }), "{outcome:?}");
    flagged_only(
        &outcome,
        &bob,
        "pending",
        &["Waiting for a committer to comment `/ok-to-test` (untrusted pull request from mallory)"],
    );
    assert_eq!(
        outcome.flag.as_ref().map(|f| f.url.clone()),
        Some(format!("{}demo/pull-request/2", rig.pagure.url)),
        "the awaiting flag links to the PR, where the approval is given"
    );
    let pr = rig.json("closed", pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    let outcome = rig.work(pr).await;
    assert!(matches!(&outcome.ending, Ending::Failed { flagged: true, .. }), "{outcome:?}");
    flagged_only(
        &outcome,
        &bob,
        "error",
        &["untrusted pull request from mallory", "`closed`", "untrusted_pipeline", "approval_phrase"],
    );

    // The trigger's `branch_to` is the caller's word: Pagure's `branch` decides. alice may
    // commit to `sandbox` only; her PR targets `rawhide`, whatever the trigger says.
    rig.pagure.set_pull_author("demo", 1, "alice", "rawhide");
    let pr = rig.json("closed", pr_json(&rig, 1, "demo.git", "feature", "sandbox")).await;
    let outcome = rig.work(pr).await;
    assert!(matches!(&outcome.ending, Ending::Failed { .. }), "{outcome:?}");
    flagged_only(&outcome, &rig.sha("f4"), "error", &["untrusted pull request from alice"]);
    assert_eq!(rig.hascommit_queries().last().map(String::as_str), Some("user=alice&branch=rawhide"));
    rig.pagure.set_pull_author("demo", 1, "pingou", "rawhide");

    // Pagure unreachable: the PR's author is unknown, so it is untrusted.
    let pr = rig.json("far", pr_json(&rig, 1, "demo.git", "feature", "rawhide")).await;
    let outcome = rig.work(pr).await;
    started_in(&outcome, "far-untrusted", "untrusted");

    // Builds of the untrusted pipeline are reported like the others: the report stage finds
    // the request through the pipeline's name.
    let mut request = rig.json("open", pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    request.rebuild = true; // not merged into the untrusted build of the same head above
    let outcome = rig.work(request).await;
    started_in(&outcome, "open-untrusted", "untrusted");
    let Ending::Started { execution_id } = &outcome.ending else { unreachable!() };
    let run: Value = e2e_tests::http()
        .get(format!("{}/runs/{execution_id}", rig.bridge))
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("run json");
    let variables = crate::report_flags::run_variables(&run);
    let pairs: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut event = crate::report_flags::codebuild_event("SUCCEEDED", None, &pairs);
    event["detail"]["additional-information"]["initiator"] = json!("codepipeline/open-untrusted");
    let answer: Value = e2e_tests::http()
        .post(format!("{}/events", rig.bridge))
        .json(&event)
        .send()
        .await
        .expect("event")
        .json()
        .await
        .expect("answer");
    assert_eq!(answer["outcome"], json!("posted"), "{answer}");
    let uid = flag_uid(&outcome.request.request_id);
    let flag = rig.pagure.flags().into_iter().find(|f| f.uid == uid).expect("flag");
    assert_eq!((flag.commit.as_str(), flag.status.as_str()), (bob.as_str(), "success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_covers_one_head_and_only_a_committers_counts() {
    let mut rig = Rig::start().await;
    let bob = rig.sha("bob");

    // A committer approves the current head: built in the trusted pipeline.
    let (status, answer) = rig.comment("gated", "carol", " /ok-to-test ", &bob).await;
    assert_eq!(status, 202, "{answer}");
    let approval = rig.queued().await;
    assert_eq!(approval.approval, Some(Approval { by: "carol".into(), commit: bob.clone() }));
    assert_eq!(approval.trigger, TriggerKind::Webhook);
    let outcome = rig.work(approval).await;
    started_in(&outcome, "gated-ci", "approved");
    assert_eq!(
        rig.hascommit_queries(),
        ["user=mallory&branch=rawhide", "user=carol&branch=rawhide"],
        "the author first, then the approver"
    );

    // Someone who may not commit "approves": still untrusted, and the flag says why.
    let (status, _) = rig.comment("gated", "eve", "/ok-to-test", &bob).await;
    assert_eq!(status, 202);
    let request = rig.queued().await;
    let outcome = rig.work(request).await;
    assert!(matches!(&outcome.ending, Ending::Awaiting { .. }), "{outcome:?}");
    flagged_only(&outcome, &bob, "pending", &["`/ok-to-test`", "eve may not commit", "from mallory"]);

    // Approved, then the author pushes again before the build: the approval covered the old
    // head, and the flag asks for a new one.
    let (status, _) = rig.comment("gated", "carol", "/ok-to-test", &bob).await;
    assert_eq!(status, 202);
    let approval = rig.queued().await;
    let target = rig.repos.server.root.join("demo.git");
    let tree = git(&target, &["rev-parse", &format!("{bob}^{{tree}}")]);
    let moved = git(&target, &["commit-tree", &tree, "-p", &bob, "-m", "one more push"]);
    git(&target, &["update-ref", "refs/pull/2/head", &moved]);
    rig.pagure.set_pull("demo", 2, &moved);
    let outcome = rig.work(approval).await;
    assert!(matches!(&outcome.ending, Ending::Awaiting { .. }), "{outcome:?}");
    flagged_only(
        &outcome,
        &moved,
        "pending",
        &[
            "comment `/ok-to-test` again",
            &format!("head moved to {}", &moved[..12]),
            &format!("carol approved {}", &bob[..12]),
        ],
    );
    // A new approval of the new head builds it.
    let (status, _) = rig.comment("gated", "carol", "/ok-to-test", &moved).await;
    assert_eq!(status, 202);
    let request = rig.queued().await;
    started_in(&rig.work(request).await, "gated-ci", "approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_signed_web_hook_door_can_approve() {
    let mut rig = Rig::start().await;
    let bob = rig.sha("bob");

    // JSON: no such field; the trigger is refused.
    let mut body = pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide");
    body["approval"] = json!({"by": "carol", "commit": bob});
    let response = e2e_tests::http()
        .post(format!("{}/trigger/gated", rig.bridge))
        .header("authorization", format!("token {TRIGGER_TOKEN}"))
        .json(&body)
        .send()
        .await
        .expect("trigger");
    assert_eq!(response.status(), 400);
    assert!(rig.queue.try_recv().is_err(), "nothing queued");

    // Jenkins: parameters it does not declare are ignored, so the build is a plain one.
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("cause", "2")
        .append_pair("REPO", &rig.repo("forks/bob/demo.git"))
        .append_pair("BRANCH", "bob-fix")
        .append_pair("BRANCH_TO", "rawhide")
        .append_pair("approval", &bob)
        .append_pair("approved_by", "carol")
        .append_pair("token", TRIGGER_TOKEN)
        .finish();
    let response = e2e_tests::http()
        .post(format!("{}/job/gated/buildWithParameters?{query}", rig.bridge))
        .send()
        .await
        .expect("jenkins");
    assert_eq!(response.status(), 201);
    let request = rig.queued().await;
    assert_eq!(request.approval, None);
    let outcome = rig.work(request).await;
    assert!(matches!(&outcome.ending, Ending::Awaiting { .. }), "{outcome:?}");

    // A queue message from another door that carries an approval anyway is not believed.
    for door in [TriggerKind::Json, TriggerKind::Jenkins] {
        let body = pr_json(&rig, 2, "forks/bob/demo.git", "bob-fix", "rawhide");
        let mut forged = rig.json("gated", body).await.approved(Approval { by: "carol".into(), commit: bob.clone() });
        forged.trigger = door;
        let outcome = rig.work(forged).await;
        assert!(matches!(&outcome.ending, Ending::Awaiting { .. }), "{door:?}: {outcome:?}");
        assert_eq!(outcome.pipeline, None);
    }
    assert!(
        !rig.hascommit_queries().iter().any(|q| q.starts_with("user=carol")),
        "a forged approver is not even looked up: {:?}",
        rig.hascommit_queries()
    );

    // The web-hook door with a bad signature approves nothing either.
    let body = br#"{"topic": "pull-request.comment.added", "msg": {}}"#.to_vec();
    let response = e2e_tests::http()
        .post(format!("{}/webhook/gated", rig.bridge))
        .header("content-type", "application/json")
        .header("x-pagure", &rig.pagure.url)
        .header("x-pagure-topic", "pull-request.comment.added")
        .header("x-pagure-signature-256", sign256(&body, &Secret::new("not-the-hook-token")))
        .body(body)
        .send()
        .await
        .expect("web-hook");
    assert_eq!(response.status(), 401);
    assert!(rig.queue.try_recv().is_err(), "nothing queued");
}

/// A committer's access vouches for heads they control: a PR from the project itself or
/// from their own fork. A remote PR (any git URL) or one from someone else's fork is
/// untrusted whoever opened it: every later head of that source is its owner's choice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committers_access_vouches_only_for_sources_they_control() {
    let mut rig = Rig::start().await;
    let target = rig.repos.server.root.join("demo.git");
    let (f4, bob) = (rig.sha("f4"), rig.sha("bob"));
    let sources = [
        (3, &bob, PullSource::Remote("https://git.example.org/mallory/demo.git".into())),
        (4, &bob, PullSource::Fork("bob".into())),
        (5, &f4, PullSource::Fork("pingou".into())),
    ];
    for (id, head, source) in sources {
        git(&target, &["update-ref", &format!("refs/pull/{id}/head"), head]);
        rig.pagure.set_pull("demo", id, head);
        rig.pagure.set_pull_author("demo", id, "pingou", "rawhide");
        rig.pagure.set_pull_source("demo", id, source);
    }

    // Same-project branch PR by a committer (PR 1): trusted.
    let pr = rig.json("open", pr_json(&rig, 1, "demo.git", "feature", "rawhide")).await;
    started_in(&rig.work(pr).await, "open-ci", "trusted");
    // From his own fork: trusted.
    let pr = rig.json("open", pr_json(&rig, 5, "forks/pingou/demo.git", "fix", "rawhide")).await;
    started_in(&rig.work(pr).await, "open-ci", "trusted");
    assert_eq!(rig.hascommit_queries(), ["user=pingou&branch=rawhide", "user=pingou&branch=rawhide"]);

    // His remote PR: untrusted, though he may commit.
    let pr = rig.json("open", pr_json(&rig, 3, "demo.git", "remote-fix", "rawhide")).await;
    started_in(&rig.work(pr).await, "open-untrusted", "untrusted");
    let pr = rig.json("gated", pr_json(&rig, 3, "demo.git", "remote-fix", "rawhide")).await;
    let outcome = rig.work(pr).await;
    assert!(matches!(&outcome.ending, Ending::Awaiting { flagged: true, .. }), "{outcome:?}");
    flagged_only(
        &outcome,
        &bob,
        "pending",
        &[
            "`/ok-to-test`",
            "untrusted: a remote pull request from pingou; its source is not the project or the author's fork",
        ],
    );

    // His PR from bob's fork: untrusted too.
    let pr = rig.json("open", pr_json(&rig, 4, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    started_in(&rig.work(pr).await, "open-untrusted", "untrusted");
    let pr = rig.json("closed", pr_json(&rig, 4, "forks/bob/demo.git", "bob-fix", "rawhide")).await;
    let outcome = rig.work(pr).await;
    assert!(matches!(&outcome.ending, Ending::Failed { flagged: true, .. }), "{outcome:?}");
    flagged_only(
        &outcome,
        &bob,
        "error",
        &["a pull request from pingou out of `forks/bob/demo`; its source is not the project or the author's fork"],
    );
    let queries = rig.hascommit_queries();
    assert!(queries.len() == 6 && queries.iter().all(|q| q == "user=pingou&branch=rawhide"), "{queries:?}");
}
