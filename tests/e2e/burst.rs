//! A burst of 1,000 identical triggers at the shipped binary in local mode: every one is
//! answered 202, and exactly one build starts (the others are merged into it by the
//! dedupe claim). The git server holds the first fetch until the whole burst is answered, so
//! every trigger is accepted before that build's pipeline starts, which is what makes a
//! trigger mergeable (a later one is a rebuild and builds again), however slow the machine. Prints how long answering and settling took, and the server's peak RSS.

use std::time::{Duration, Instant};

use e2e_tests::git_server::demo_repos;
use e2e_tests::temp_dir;

const TOKEN: &str = "burst-trigger-token-6bc1bee22e409f96";
const BURST: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_identical_triggers_starts_exactly_one_build() {
    let repos = demo_repos().await;
    let dir = temp_dir("burst");
    std::fs::write(dir.join("secrets.json"), format!(r#"{{"projects": {{"demo": {{"trigger_token": "{TOKEN}"}}}}}}"#))
        .expect("secrets");
    std::fs::write(
        dir.join("bridge.toml"),
        format!(
            "[server]\nqueue_capacity = {BURST}\n[secrets]\nfile = \"secrets.json\"\n[projects.demo]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"demo-ci\"\nallow_insecure_git_url = true\n",
            repos.server.base
        ),
    )
    .expect("config");
    let log_path = dir.join("bridge.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let (mut child, port) =
        crate::local_pipeline::serve_binary(&dir.join("bridge.toml"), &[("RUST_LOG", "info")], log.into()).await;

    let body =
        serde_json::json!({"cause": repos.shas["f4"], "repo": repos.server.url("demo.git"), "branch": "feature"});
    let client = e2e_tests::http();
    repos.server.set_fault(e2e_tests::git_server::Fault::Hold);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let started = Instant::now();
    let mut answers = tokio::task::JoinSet::new();
    for _ in 0..BURST {
        let (client, body, gate) = (client.clone(), body.clone(), gate.clone());
        answers.spawn(async move {
            let _permit = gate.acquire().await.expect("gate");
            client
                .post(format!("http://127.0.0.1:{port}/trigger/demo"))
                .header("authorization", format!("token {TOKEN}"))
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let mut accepted = 0;
    while let Some(answer) = answers.join_next().await {
        accepted += usize::from(answer.expect("task").expect("answered") == 202);
    }
    let answered_in = started.elapsed();
    repos.server.set_fault(e2e_tests::git_server::Fault::None);
    assert_eq!(accepted, BURST, "every trigger of the burst is answered 202");

    // Settled: each request logs exactly one final line.
    let count =
        |text: &str, message: &str| text.lines().filter(|l| l.contains(&format!("\"message\":\"{message}"))).count();
    let mut log = String::new();
    for _ in 0..1200 {
        log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if count(&log, "pipeline started") + count(&log, "same build already asked for") >= BURST {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settled_in = started.elapsed();
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", child.id().expect("pid")))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        .unwrap_or(0);
    let _ = child.kill().await;
    assert_eq!(count(&log, "pipeline started"), 1, "exactly one build for {BURST} identical triggers");
    assert_eq!(count(&log, "same build already asked for"), BURST - 1, "the others merged into it");
    let runs = std::fs::read_dir(dir.join("artifacts/sources/demo"))
        .expect("artifacts")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "started")))
        .count();
    assert_eq!(runs, 1, "one archive started");
    println!(
        "burst: {BURST} identical triggers answered 202 in {:.2} s, settled in {:.2} s, 1 build; server peak RSS {:.1} MiB",
        answered_in.as_secs_f64(),
        settled_in.as_secs_f64(),
        peak_rss as f64 / 1024.0
    );
}
