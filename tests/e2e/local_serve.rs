//! `pagure-ci-bridge serve` as an admin runs it, over its files: the secrets file edited
//! while the server runs (a new token works, the old one is refused, a broken edit keeps
//! the last good secrets, and no token reaches the log), and a restart after which the
//! `/runs/<id>` links of the flags already posted still answer.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::fake_pagure::{FakePagure, Token};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const OLD_TOKEN: &str = "old-trigger-token-5f0c2d9a";
const NEW_TOKEN: &str = "new-trigger-token-8b71e4c3";
const BROKEN_TOKEN: &str = "broken-trigger-token-c19d07aa";
const API_TOKEN: &str = "PAGUREAPITOKENLOCALSERVE0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01";

/// The shipped binary serving `config` on `port`, its log lines collected as they come.
async fn serve(config: &Path, port: u16) -> (tokio::process::Child, Arc<Mutex<Vec<String>>>) {
    let mut child = tokio::process::Command::new(crate::local_pipeline::bridge_binary())
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "debug")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            sink.lock().expect("log lines").push(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not listen within 20 s: {:?}", lines.lock().expect("log"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, lines)
}

/// Replaces a file the way editors and config tools do: a new file renamed over the old.
fn replace(path: &Path, text: &str) {
    let partial = path.with_extension("json.new");
    std::fs::write(&partial, text).expect("write");
    std::fs::rename(&partial, path).expect("rename");
}

fn secrets(trigger_token: &str) -> String {
    format!(r#"{{"projects": {{"demo": {{"trigger_token": "{trigger_token}", "pagure_api_token": "{API_TOKEN}"}}}}}}"#)
}

fn config(dir: &Path, pagure_url: &str, git_url: &str) -> std::path::PathBuf {
    let path = dir.join("bridge.toml");
    std::fs::write(
        &path,
        format!(
            "[secrets]\nfile = \"secrets.json\"\n[work]\nartifacts_dir = \"artifacts\"\nretry_delay_ms = 50\n\
             [projects.demo]\npagure_url = \"{pagure_url}\"\ngit_url = \"{git_url}\"\nproject = \"demo\"\n\
             pipeline = \"demo-ci\"\nallow_insecure_git_url = true\n"
        ),
    )
    .expect("config");
    path
}

/// A push to rawhide, through the JSON trigger with `token`: the answer's status and body.
async fn trigger(base: &str, token: &str, repo: &str, sha: &str) -> (u16, Value) {
    let answer = e2e_tests::http()
        .post(format!("{base}/trigger/demo"))
        .header("authorization", format!("token {token}"))
        .json(&json!({"cause": sha, "repo": repo, "branch": "rawhide", "branch_to": null}))
        .send()
        .await
        .expect("trigger");
    (answer.status().as_u16(), answer.json().await.expect("json answer"))
}

async fn fake_pagure() -> FakePagure {
    let fake = FakePagure::start().await;
    fake.add_project("demo");
    fake.add_token(API_TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    fake
}

fn count(lines: &Mutex<Vec<String>>, message: &str) -> usize {
    lines.lock().expect("log").iter().filter(|line| line.contains(message)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_secrets_file_is_used_without_a_restart() {
    let repos = e2e_tests::git_server::demo_repos().await;
    let fake = fake_pagure().await;
    let dir = e2e_tests::temp_dir("serve-secrets");
    let secrets_file = dir.join("secrets.json");
    std::fs::write(&secrets_file, secrets(OLD_TOKEN)).expect("secrets");
    let port = e2e_tests::free_port();
    let (mut child, lines) = serve(&config(&dir, &fake.url, &repos.server.base), port).await;
    let base = format!("http://127.0.0.1:{port}");
    let (repo, sha) = (repos.server.url("demo.git"), repos.shas["rawhide"].clone());

    assert_eq!(trigger(&base, OLD_TOKEN, &repo, &sha).await.0, 202);
    assert_eq!(trigger(&base, NEW_TOKEN, &repo, &sha).await.0, 401);

    // The admin replaces the token (Pagure CI switched off and on made a new one).
    replace(&secrets_file, &secrets(NEW_TOKEN));
    let deadline = Instant::now() + Duration::from_secs(15);
    while trigger(&base, NEW_TOKEN, &repo, &sha).await.0 != 202 {
        assert!(Instant::now() < deadline, "the new token was not accepted within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, refused) = trigger(&base, OLD_TOKEN, &repo, &sha).await;
    assert_eq!((status, refused["error"].as_str()), (401, Some("invalid_token")), "{refused}");
    assert_eq!(count(&lines, "secrets file changed; reloaded"), 1);

    // A broken edit (a JSON error) is reported and changes nothing.
    replace(&secrets_file, &format!(r#"{{"projects": {{"demo": {{"trigger_token": "{BROKEN_TOKEN}""#));
    let deadline = Instant::now() + Duration::from_secs(15);
    while count(&lines, "secrets file changed but is not usable") == 0 {
        assert!(Instant::now() < deadline, "the broken file was not reported within 15 s");
        // Asking for the secrets is what makes the server look at the file.
        let _ = trigger(&base, NEW_TOKEN, &repo, &sha).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(trigger(&base, NEW_TOKEN, &repo, &sha).await.0, 202, "the last good secrets still serve");
    assert_eq!(trigger(&base, BROKEN_TOKEN, &repo, &sha).await.0, 401);
    assert_eq!(trigger(&base, OLD_TOKEN, &repo, &sha).await.0, 401);

    let _ = child.kill().await;
    let lines = lines.lock().expect("log").clone();
    let broken = lines.iter().find(|l| l.contains("secrets file changed but is not usable")).expect("reported");
    assert!(broken.contains("secrets.json") && broken.contains("line 1"), "says which file and where: {broken}");
    for secret in [OLD_TOKEN, NEW_TOKEN, BROKEN_TOKEN, API_TOKEN] {
        assert!(!lines.iter().any(|l| l.contains(secret)), "a token reached the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_links_in_flags_answer_after_a_restart() {
    let repos = e2e_tests::git_server::demo_repos().await;
    let fake = fake_pagure().await;
    let dir = e2e_tests::temp_dir("serve-runs");
    std::fs::write(dir.join("secrets.json"), secrets(OLD_TOKEN)).expect("secrets");
    let config = config(&dir, &fake.url, &repos.server.base);
    let port = e2e_tests::free_port();
    let (mut child, _) = serve(&config, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let sha = repos.shas["rawhide"].clone();
    assert_eq!(trigger(&base, OLD_TOKEN, &repos.server.url("demo.git"), &sha).await.0, 202);

    // The pending flag links to the local run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let flag = loop {
        if let Some(flag) = fake.flags().into_iter().find(|f| f.commit == sha) {
            break flag;
        }
        assert!(Instant::now() < deadline, "no flag within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(flag.url.starts_with(&format!("{base}/runs/local-")), "{}", flag.url);
    let before: Value = e2e_tests::http().get(&flag.url).send().await.expect("run").json().await.expect("json");
    assert_eq!(before["pipeline"], "demo-ci");
    assert_eq!(before["variables"]["PAGURE_COMMIT"], sha.as_str());

    // Killed (no clean shutdown) and started again on the same address.
    child.kill().await.expect("kill");
    let (mut child, lines) = serve(&config, port).await;
    let answer = e2e_tests::http().get(&flag.url).send().await.expect("run after restart");
    assert_eq!(answer.status(), 200);
    let after: Value = answer.json().await.expect("json");
    assert_eq!(after, before, "the same run, as it was");
    let unknown = e2e_tests::http().get(format!("{base}/runs/local-0123")).send().await.expect("unknown run");
    assert_eq!(unknown.status(), 404);
    let _ = child.kill().await;
    let listening = lines.lock().expect("log").iter().find(|l| l.contains("local mode listening")).cloned();
    assert!(listening.is_some_and(|l| l.contains(r#""runs_loaded":1"#)), "the start log counts the runs kept");
}
