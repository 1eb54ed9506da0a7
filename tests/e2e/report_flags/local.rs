//! The report side outside the Lambda: the `report` command flagging from inside a build
//! (CodeBuild's environment), and local mode flagging a fork PR from trigger to result.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge_core::config::LocalConfig;
use serde_json::{Value, json};

use super::{SHA, TOKEN, UID, codebuild_event, pagure, run_variables};

/// `pagure-ci-bridge report <args>` with only `env` as its environment.
async fn run_report(args: &[&str], env: &BTreeMap<String, String>) -> std::process::Output {
    tokio::process::Command::new(crate::local_pipeline::bridge_binary())
        .arg("report")
        .args(args)
        .env_clear()
        .envs(env)
        .output()
        .await
        .expect("run report")
}

#[tokio::test]
async fn the_report_command_flags_from_inside_a_build() {
    let fake = pagure().await;
    let env: BTreeMap<String, String> = [
        ("PAGURE_REQUEST_ID", UID),
        ("PAGURE_PROJECT", "demo"),
        ("PAGURE_REPO", "https://pagure.example.org/forks/bob/demo.git"),
        ("PAGURE_CAUSE", "2"),
        ("PAGURE_PR_ID", "2"),
        ("PAGURE_COMMIT", SHA),
        ("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:123456789012:build/demo-build:8745a7a9"),
        ("CODEBUILD_BUILD_NUMBER", "12"),
        ("CODEBUILD_BUILD_SUCCEEDING", "1"),
        ("PAGURE_API_TOKEN", TOKEN),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let output = run_report(&["--from-codebuild-env", "--pagure-url", &fake.url], &env).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token is not logged");
    let flags = fake.flags();
    assert_eq!(flags.len(), 1);
    assert_eq!(
        (flags[0].project.as_str(), flags[0].commit.as_str(), flags[0].status.as_str(), flags[0].uid.as_str()),
        ("demo", SHA, "success", UID)
    );
    // Without the token variable: a clear error, nothing posted.
    let mut no_token = env.clone();
    no_token.remove("PAGURE_API_TOKEN");
    let output = run_report(&["--status", "failure", "--pagure-url", &fake.url], &no_token).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PAGURE_API_TOKEN is not set"));
    assert_eq!(fake.posts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_flags_a_fork_pr_from_trigger_to_result() {
    let repos = e2e_tests::git_server::demo_repos().await;
    let fake = pagure().await;
    // A fork PR by someone who may commit to its target: trusted, built in `pipeline`.
    fake.set_pull_author("demo", 2, "bob", "rawhide");
    fake.add_committer("demo", "bob", Some(&["rawhide"]));
    let dir = e2e_tests::temp_dir("local-report");
    std::fs::write(
        dir.join("secrets.json"),
        format!(r#"{{"projects": {{"demo": {{"trigger_token": "trigger-me", "pagure_api_token": "{TOKEN}"}}}}}}"#),
    )
    .expect("secrets");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nfile = \"secrets.json\"\n[report]\nflag_username = \"Local CI\"\n\
         [projects.demo]\npagure_url = \"{}\"\ngit_url = \"{}\"\nproject = \"demo\"\npipeline = \"demo-ci\"\nallow_insecure_git_url = true\n",
        fake.url, repos.server.base
    );
    let config = LocalConfig::parse(&text, &dir).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let bridge = format!("http://{}", listener.local_addr().expect("addr"));
    let (app, worker, receiver) = pagure_ci_bridge::build_local(&config, &format!("{bridge}/")).await.expect("local");
    tokio::spawn(pagure_ci_bridge::serve(listener, std::sync::Arc::new(app), std::future::pending()));
    tokio::spawn(pagure_ci_bridge::consume(receiver, std::sync::Arc::new(worker), 3, Duration::from_millis(50)));

    let http = e2e_tests::http();
    let accepted = http
        .post(format!("{bridge}/trigger/demo"))
        .header("authorization", "token trigger-me")
        .json(&json!({"cause": "2", "repo": repos.server.url("forks/bob/demo.git"), "branch": "bob-fix", "branch_to": "rawhide"}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(accepted.status(), 202);
    let mut queued = None;
    for _ in 0..200 {
        if let Some(flag) = fake.flags().first().cloned() {
            queued = Some(flag);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = queued.expect("the pending flag was posted");
    assert_eq!(
        (
            queued.project.as_str(),
            queued.commit.as_str(),
            queued.status.as_str(),
            queued.comment.as_str(),
            queued.username.as_str()
        ),
        ("demo", repos.shas["bob"].as_str(), "pending", bridge_core::work::QUEUED_COMMENT, "Local CI"),
        "the built head of the fork PR, on the target"
    );
    // The flag links to the local run, which lists what the pipeline would get.
    assert!(queued.url.starts_with(&format!("{bridge}/runs/local-")), "{}", queued.url);
    let run: Value = http.get(&queued.url).send().await.expect("run").json().await.expect("run json");
    let variables = run_variables(&run);
    assert_eq!(run["pipeline"], json!("demo-ci"));

    // CodeBuild runs it: its events carry the PAGURE_* values as environment variables.
    let pairs: Vec<(&str, &str)> = variables.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for status in ["IN_PROGRESS", "SUCCEEDED"] {
        let answer = http
            .post(format!("{bridge}/events"))
            .json(&codebuild_event(status, None, &pairs))
            .send()
            .await
            .expect("event");
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("answer");
        assert_eq!(body["outcome"], json!("posted"), "{body}");
    }
    let posted: Vec<(String, String)> = fake
        .seen()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let body: Value = serde_json::from_str(&r.body).expect("json");
            (
                body["status"].as_str().unwrap_or_default().to_owned(),
                body["comment"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        posted,
        [
            ("pending".to_owned(), bridge_core::work::QUEUED_COMMENT.to_owned()),
            ("pending".to_owned(), "Build #12 running".to_owned()),
            ("success".to_owned(), "Build #12 succeeded".to_owned()),
        ]
    );
    let flags = fake.flags();
    assert_eq!(flags.len(), 1, "one flag, updated in place");
    assert_eq!((flags[0].status.as_str(), flags[0].percent.as_deref()), ("success", Some("100")));
    let not_json = http.post(format!("{bridge}/events")).body("nope").send().await.expect("bad event");
    assert_eq!(not_json.status(), 400);
}
