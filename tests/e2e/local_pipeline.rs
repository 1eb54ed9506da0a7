//! The whole local path: a trigger over HTTP, the worker fetching over smart HTTP from
//! `git http-backend`, the default branch's buildspec injected, the archive on disk. Also
//! redelivery (one pipeline start per request) and terminal failures reported.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bridge_core::accept::AcceptService;
use bridge_core::config::LocalConfig;
use bridge_core::fakes::{FakeForge, FakePipelines};
use bridge_core::forge::{FlagOn, FlagStatus};
use bridge_core::model::BuildRequest;
use bridge_core::work::{Disposition, Ending, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{DirectoryStore, InProcessQueue, StaticSecrets};
use bridge_pagure::PagureWebhooks;
use e2e_tests::git_server::{DemoRepos, demo_repos};
use e2e_tests::temp_dir;

/// The `error` flags posted so far: (uid, comment).
fn errors(forge: &FakeForge) -> Vec<(String, String)> {
    forge.errors().into_iter().map(|f| (f.uid, f.comment)).collect()
}

/// Pipeline starts and flags go to in-memory fakes; every PR is open, by a committer, from
/// the project itself (`FakeForge`'s default): these tests are about the build path
/// (trust.rs is about trust).
type TestWorker = Worker<GitFetcher, DirectoryStore, FakePipelines, FakeForge, StaticSecrets>;

const TOKEN: &str = "local-test-token";

fn config(repos: &DemoRepos, artifacts: &Path) -> LocalConfig {
    let text = format!(
        r#"
[secrets]
file = "unused.json"
[work]
artifacts_dir = "{artifacts}"
[projects.demo]
pagure_url = "http://127.0.0.1:5600/"
git_url = "{git}"
project = "demo"
pipeline = "demo-ci"
allow_insecure_git_url = true
[projects.nospec]
pagure_url = "http://127.0.0.1:5600/"
git_url = "{git}"
project = "nospec"
pipeline = "nospec-ci"
allow_insecure_git_url = true
[projects.badspec]
pagure_url = "http://127.0.0.1:5600/"
git_url = "{git}"
project = "badspec"
pipeline = "badspec-ci"
allow_insecure_git_url = true
"#,
        artifacts = artifacts.display(),
        git = repos.server.base
    );
    LocalConfig::parse(&text, Path::new("/")).expect("config")
}

fn secrets() -> StaticSecrets {
    let doc = format!(
        r#"{{"projects": {{"demo": {{"trigger_token": "{TOKEN}"}}, "nospec": {{"trigger_token": "{TOKEN}"}}, "badspec": {{"trigger_token": "{TOKEN}"}}}}}}"#
    );
    StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(&doc).expect("secrets"))
}

struct Running {
    url: String,
    pipelines: FakePipelines,
    forge: FakeForge,
    worker: Arc<TestWorker>,
    artifacts: PathBuf,
    config: LocalConfig,
}

async fn start(repos: &DemoRepos) -> Running {
    let artifacts = temp_dir("artifacts");
    let config = config(repos, &artifacts);
    let (pipelines, forge) = (FakePipelines::default(), FakeForge::default());
    let worker = Arc::new(Worker::new(
        config.accept.clone(),
        WorkSettings::default(),
        GitFetcher::new(temp_dir("scratch")),
        DirectoryStore::new(&config.work.artifacts_dir),
        pipelines.clone(),
        forge.clone(),
        secrets(),
    ));
    let (queue, receiver) = InProcessQueue::new(16);
    let service = Arc::new(AcceptService::new(config.accept.clone(), queue, secrets(), PagureWebhooks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(pagure_ci_bridge::serve(listener, service, std::future::pending()));
    tokio::spawn(pagure_ci_bridge::consume(receiver, worker.clone(), 3, Duration::from_millis(50)));
    Running { url, pipelines, forge, worker, artifacts, config }
}

async fn trigger(bridge_url: &str, project: &str, body: serde_json::Value) -> String {
    let response = e2e_tests::http()
        .post(format!("{bridge_url}/trigger/{project}"))
        .header("authorization", format!("token {TOKEN}"))
        .json(&body)
        .send()
        .await
        .expect("trigger");
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.expect("json");
    body["request_id"].as_str().expect("request id").to_owned()
}

async fn wait_for(path: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} did not appear within 20 s", path.display());
}

fn entry(zip: &mut zip::ZipArchive<std::fs::File>, name: &str) -> (String, Option<u32>, bool) {
    let mut file = zip.by_name(name).unwrap_or_else(|_| panic!("{name} in the archive"));
    let mut text = String::new();
    file.read_to_string(&mut text).expect("read entry");
    (text, file.unix_mode(), file.is_symlink())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_pull_request_becomes_an_archive_with_the_default_branch_buildspec() {
    let repos = demo_repos().await;
    let running = start(&repos).await;
    let fork = repos.server.url("forks/bob/demo.git");
    let id = trigger(
        &running.url,
        "demo",
        serde_json::json!({"cause": 2, "repo": fork, "branch": "bob-fix", "branch_to": "rawhide"}),
    )
    .await;
    let base = running.artifacts.join("sources/demo").join(&id);
    wait_for(&base.with_extension("started")).await;

    let mut zip = zip::ZipArchive::new(std::fs::File::open(base.with_extension("zip")).expect("zip")).expect("archive");
    let names: Vec<String> = zip.file_names().map(|n| n.expect("name").into_owned()).collect();
    assert!(!names.iter().any(|n| n.starts_with(".git")), "{names:?}");
    let (spec, _, _) = entry(&mut zip, "buildspec.yml");
    let spec: yaml_serde::Value = yaml_serde::from_str(&spec).expect("buildspec yaml");
    assert_eq!(spec["phases"]["build"]["commands"][0], "make", "rawhide's buildspec");
    let vars = &spec["env"]["variables"];
    assert_eq!(vars["PAGURE_PR_ID"], "2");
    assert_eq!(vars["PAGURE_COMMIT"], repos.shas["bob"].as_str());
    assert_eq!(vars["PAGURE_REPO"], fork.as_str());
    assert_eq!(vars["PAGURE_BRANCH_TO"], "rawhide");
    assert_eq!(vars["PAGURE_REQUEST_ID"], id.as_str());
    assert_eq!(entry(&mut zip, "bob.txt").0, "bob\n");
    assert_eq!(entry(&mut zip, "run.sh").1.map(|m| m & 0o777), Some(0o755));
    assert_eq!(entry(&mut zip, "link-out"), ("/etc/passwd".to_owned(), entry(&mut zip, "link-out").1, true));

    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(base.with_extension("zip.json")).expect("metadata"))
            .expect("json");
    assert_eq!(metadata["metadata"]["pagure-commit"], repos.shas["bob"].as_str());
    assert!(metadata["revision_summary"].as_str().expect("summary").starts_with("demo PR #2 bob-fix -> rawhide"));

    let starts = running.pipelines.starts();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].pipeline, "demo-ci");
    assert!(starts[0].variables.iter().all(|(_, v)| !v.is_empty()), "pipeline variables are never empty");
    let names: Vec<&str> = starts[0].variables.iter().map(|(name, _)| *name).collect();
    assert_eq!(names.len(), bridge_core::buildspec::PIPELINE_VARIABLES.len(), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_starts_nothing_and_terminal_failures_are_reported() {
    let repos = demo_repos().await;
    let running = start(&repos).await;
    let target = repos.server.url("demo.git");
    let id = trigger(
        &running.url,
        "demo",
        serde_json::json!({"cause": repos.shas["f1"], "repo": target, "branch": "feature", "branch_to": null}),
    )
    .await;
    wait_for(&running.artifacts.join("sources/demo").join(&id).with_extension("started")).await;

    // The same message delivered again (SQS is at-least-once).
    let request = BuildRequest {
        request_id: id.clone(),
        ..build_request(&running.config, "demo", &repos.shas["f1"], target.clone(), "feature", None)
    };
    assert_eq!(
        running.worker.handle(&request, false).await,
        Disposition::Done(Ending::Started { execution_id: "exec-1".into() })
    );
    assert_eq!(running.pipelines.starts().len(), 1, "one pipeline start per request");

    let nospec = repos.server.url("nospec.git");
    let id = trigger(
        &running.url,
        "nospec",
        serde_json::json!({"cause": 1, "repo": nospec, "branch": "x", "branch_to": "main"}),
    )
    .await;
    let gone = trigger(
        &running.url,
        "demo",
        serde_json::json!({"cause": repos.shas["f1"], "repo": target, "branch": "deleted", "branch_to": null}),
    )
    .await;
    let badspec = repos.server.url("badspec.git");
    let bad = trigger(
        &running.url,
        "badspec",
        serde_json::json!({"cause": 1, "repo": badspec, "branch": "x", "branch_to": "main"}),
    )
    .await;
    for _ in 0..200 {
        if errors(&running.forge).len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        errors(&running.forge),
        vec![
            (id, "no buildspec.yml or buildspec.yaml on the default branch `main` of `nospec`".into()),
            (gone, "branch `deleted` does not exist (any more) in the repository".into()),
            (bad, "`buildspec.yml` on the default branch `main`: the buildspec is not valid YAML at line 5: while parsing a flow sequence, expected ',' or ']'".into()),
        ]
    );
    assert_eq!(running.pipelines.starts().len(), 1);
}

fn sqs_event(records: &[(&str, String, u32)]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(id, body, count)| {
            serde_json::json!({
                "messageId": id, "receiptHandle": "rh", "body": body,
                "attributes": {"ApproximateReceiveCount": count.to_string(), "SentTimestamp": "1795291200000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:pcb-builds", "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({"Records": records})).expect("SQS event")
}

fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batches_report_only_the_records_to_retry() {
    let repos = demo_repos().await;
    let running = start(&repos).await;
    let normalise = |cause: &str, repo: String, branch: &str, to: Option<&str>| {
        build_request(&running.config, "demo", cause, repo, branch, to)
    };
    let good = normalise("2", repos.server.url("forks/bob/demo.git"), "bob-fix", Some("rawhide"));
    let gone = normalise("9", repos.server.url("demo.git"), "x", Some("rawhide"));
    let response = bridge_lambda::work::handle_batch(
        &running.worker,
        sqs_event(&[
            ("m-good", good.to_json(), 1),
            ("m-garbage", "{not json".into(), 1),
            ("m-gone", gone.to_json(), 1),
        ]),
        5,
    )
    .await;
    assert_eq!(failed_ids(&response), ["m-garbage"]);
    assert_eq!(running.pipelines.starts().len(), 1);
    assert_eq!(errors(&running.forge).len(), 1, "the missing PR is reported");
    let flags = running.forge.flags();
    let queued: Vec<_> = flags.iter().filter(|f| f.status == FlagStatus::Pending).collect();
    assert_eq!(queued.len(), 1, "the started build is flagged pending");
    assert_eq!(queued[0].uid, good.request_id);
    assert_eq!(queued[0].comment, bridge_core::work::QUEUED_COMMENT);
    assert_eq!(queued[0].url, "https://pipelines.example.org/demo-ci/exec-1");
    // A fork PR: flagged on the built commit of the target project.
    assert_eq!(queued[0].target.project_path, "demo");
    assert_eq!(queued[0].target.on, FlagOn::Commit(repos.shas["bob"].clone()));

    repos.server.set_fault(e2e_tests::git_server::Fault::Status(500));
    let flaky = normalise("1", repos.server.url("demo.git"), "feature", Some("rawhide"));
    let response =
        bridge_lambda::work::handle_batch(&running.worker, sqs_event(&[("m-try", flaky.to_json(), 1)]), 5).await;
    assert_eq!(failed_ids(&response), ["m-try"]);
    assert_eq!(errors(&running.forge).len(), 1, "not reported before the last delivery");
    let response =
        bridge_lambda::work::handle_batch(&running.worker, sqs_event(&[("m-last", flaky.to_json(), 5)]), 5).await;
    assert_eq!(failed_ids(&response), ["m-last"], "the last delivery still fails, so SQS moves it to the DLQ");
    let errors = errors(&running.forge);
    assert_eq!(errors.len(), 2);
    assert!(errors[1].1.starts_with("the build could not be started after several attempts"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_uploads_to_s3_and_the_object_unzips_to_the_tree() {
    let repos = demo_repos().await;
    let moto = e2e_tests::Moto::start();
    let s3 = moto.versioned_bucket("sources").await;
    let config = config(&repos, &temp_dir("unused"));
    let pipelines = FakePipelines::default();
    let worker = Worker::new(
        config.accept.clone(),
        WorkSettings::default(),
        GitFetcher::new(temp_dir("scratch")),
        bridge_aws::S3Store::new(s3.clone(), "sources", bridge_aws::Encryption::S3Managed),
        pipelines.clone(),
        FakeForge::default(),
        secrets(),
    );
    let request =
        build_request(&config, "demo", &repos.shas["f4"], repos.server.url("demo.git"), "feature", Some("None"));
    assert!(matches!(worker.handle(&request, false).await, Disposition::Done(Ending::Started { .. })));

    let key = format!("sources/demo/{}.zip", request.request_id);
    let object = s3.get_object().bucket("sources").key(&key).send().await.expect("uploaded");
    assert_eq!(object.metadata().expect("metadata")["pagure-commit"], repos.shas["f4"].as_str());
    let path = temp_dir("download").join("source.zip");
    std::fs::write(&path, object.body.collect().await.expect("body").into_bytes()).expect("write");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).expect("zip")).expect("archive");
    let spec: yaml_serde::Value = yaml_serde::from_str(&entry(&mut zip, "buildspec.yml").0).expect("yaml");
    assert_eq!(spec["env"]["variables"]["PAGURE_COMMIT"], repos.shas["f4"].as_str());
    assert_eq!(spec["env"]["variables"]["PAGURE_BRANCH_TO"], "");
    assert_eq!(spec["env"]["variables"]["PAGURE_PR_ID"], "");
    assert_eq!(entry(&mut zip, "f4").0, "f4");
    assert_eq!(entry(&mut zip, "run.sh").1.map(|m| m & 0o777), Some(0o755));
    let (target, _, is_link) = entry(&mut zip, "link-in");
    assert_eq!((target.as_str(), is_link), ("README", true));
    let starts = pipelines.starts();
    assert_eq!(starts[0].artifact.key, key, "the pipeline is started on exactly this object");
    assert!(
        s3.get_object()
            .bucket("sources")
            .key(format!("sources/demo/{}.started", request.request_id))
            .send()
            .await
            .is_ok()
    );
}

/// The shipped binary. `cargo test --workspace` builds it (the CLI's own tests run it); a
/// test run of this crate alone builds it here. Building it unconditionally would rebuild
/// with other unified features and cost a minute.
/// A build request for `project` of `config`, as pagure-ci's call would make it.
pub(crate) fn build_request(
    config: &LocalConfig,
    project: &str,
    cause: &str,
    repo: String,
    branch: &str,
    branch_to: Option<&str>,
) -> BuildRequest {
    bridge_core::trigger::normalise(
        &config.accept.projects[project],
        bridge_core::trigger::RawTrigger {
            cause: cause.into(),
            repo,
            branch: branch.into(),
            branch_to: branch_to.map(String::from),
            rebuild: false,
        },
        bridge_core::model::TriggerKind::Jenkins,
        time::OffsetDateTime::now_utc(),
    )
    .expect("request")
}

/// The shipped binary serving `config` on a free loopback port, once it listens.
pub(crate) async fn serve_binary(
    config: &Path,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (tokio::process::Child, u16) {
    let port = e2e_tests::free_port();
    let child = tokio::process::Command::new(bridge_binary())
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, port)
}

pub(crate) fn bridge_binary() -> PathBuf {
    let binary = e2e_tests::root().join("target/debug/pagure-ci-bridge");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "--locked", "-p", "pagure-ci-bridge"])
            .current_dir(e2e_tests::root())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building pagure-ci-bridge");
    }
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_stores_archives_in_s3_when_a_bucket_is_configured() {
    let repos = demo_repos().await;
    let moto = e2e_tests::Moto::start();
    let s3 = moto.versioned_bucket("local-sources").await;
    let dir = temp_dir("local-s3");
    std::fs::write(dir.join("secrets.json"), format!(r#"{{"projects": {{"demo": {{"trigger_token": "{TOKEN}"}}}}}}"#))
        .expect("secrets");
    std::fs::write(
        dir.join("bridge.toml"),
        format!(
            // No Pagure listens at `pagure_url`: the PR's author is unknown, so the PR is
            // untrusted and builds in the untrusted pipeline.
            "[work]\ns3_bucket = \"local-sources\"\ns3_endpoint = \"{}\"\n[secrets]\nfile = \"secrets.json\"\n[projects.demo]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"demo-ci\"\nuntrusted_pipeline = \"demo-untrusted\"\nallow_insecure_git_url = true\n",
            moto.endpoint, repos.server.base
        ),
    )
    .expect("config");
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("RUST_LOG", "warn"),
    ];
    let (mut child, port) = serve_binary(&dir.join("bridge.toml"), &env, std::process::Stdio::inherit()).await;
    let id = trigger(&format!("http://127.0.0.1:{port}"), "demo", serde_json::json!({"cause": 1, "repo": repos.server.url("demo.git"), "branch": "feature", "branch_to": "rawhide"})).await;
    let marker = format!("sources/demo/{id}.started");
    let mut started = false;
    for _ in 0..400 {
        if s3.get_object().bucket("local-sources").key(&marker).send().await.is_ok() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill().await;
    assert!(started, "the archive and its marker reached the bucket");
    let object =
        s3.get_object().bucket("local-sources").key(format!("sources/demo/{id}.zip")).send().await.expect("zip");
    let path = dir.join("downloaded.zip");
    std::fs::write(&path, object.body.collect().await.expect("body").into_bytes()).expect("write");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).expect("zip")).expect("archive");
    let spec: yaml_serde::Value = yaml_serde::from_str(&entry(&mut zip, "buildspec.yml").0).expect("yaml");
    assert_eq!(spec["env"]["variables"]["PAGURE_PR_ID"], "1");
    assert_eq!(spec["env"]["variables"]["PAGURE_COMMIT"], repos.shas["f4"].as_str());
}

/// A private repository: the server wants HTTP Basic credentials, which the worker takes
/// from the project's `git_username` / `git_password` in the secret. Wrong credentials end
/// in a terminal error that says access was refused; the password is in no log line.
#[test]
fn private_repositories_are_fetched_with_the_credentials_from_the_secret() {
    const PASSWORD: &str = "git-password-9f86d081884c7d65";
    let ((right, wrong, starts), logs) = e2e_tests::capture_logs(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let repos = demo_repos().await;
            repos.server.set_fault(e2e_tests::git_server::Fault::RequireBasic("ci-bot".into(), PASSWORD.into()));
            let artifacts = temp_dir("private");
            let config = config(&repos, &artifacts);
            let pipelines = FakePipelines::default();
            let worker = |password: &str| {
                let doc = format!(
                    r#"{{"projects": {{"demo": {{"trigger_token": "{TOKEN}", "git_username": "ci-bot", "git_password": "{password}"}}}}}}"#
                );
                Worker::new(
                    config.accept.clone(),
                    WorkSettings::default(),
                    GitFetcher::new(temp_dir("scratch")),
                    DirectoryStore::new(&artifacts),
                    pipelines.clone(),
                    FakeForge::default(),
                    StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(&doc).expect("secrets")),
                )
            };
            let request =
                |cause: &str| build_request(&config, "demo", cause, repos.server.url("demo.git"), "feature", None);
            let right = worker(PASSWORD).handle(&request(&repos.shas["f4"]), false).await;
            let wrong = worker("not-the-password").handle(&request(&repos.shas["f3"]), false).await;
            (right, wrong, pipelines.starts().len())
        })
    });
    assert!(matches!(right, Disposition::Done(Ending::Started { .. })), "{right:?}");
    assert_eq!(starts, 1);
    assert!(
        matches!(&wrong, Disposition::Done(Ending::Failed { reason, .. }) if reason.contains("refused the credentials in the secret")),
        "{wrong:?}"
    );
    assert!(!logs.is_empty() && !logs.contains(PASSWORD), "the git password is in no log line");
}
