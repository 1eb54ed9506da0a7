//! The real python-jenkins client (the version Pagure pins) against local mode over HTTP,
//! called exactly as Pagure's `pagure/api/ci/jenkins.py` calls it.

use e2e_tests::{CAPTURE_CI_TOKEN, CAPTURE_HOOK_TOKEN, CAPTURE_PROJECT_TOML, LocalBridge, capture_project_as, venv};

/// pagure/api/ci/jenkins.py:253-260, with the values as arguments.
const PAGURE_TRIGGER: &str = r#"
import sys, jenkins
url, job, token, user, password, cause, repo, branch, branch_to = sys.argv[1:10]
data = {"cause": cause, "REPO": repo, "BRANCH": branch, "BRANCH_TO": branch_to}
server = jenkins.Jenkins(url, username=user or None, password=password or None)
print(server.build_job(name=job, parameters=data, token=token))
"#;

async fn bridge() -> LocalBridge {
    let secrets = serde_json::json!({"projects": {
        "demo-job": {"trigger_token": CAPTURE_CI_TOKEN, "hook_token": CAPTURE_HOOK_TOKEN},
        "folder/secured": {"trigger_token": CAPTURE_CI_TOKEN, "jenkins_username": "pagure", "jenkins_password": "ci-p4ss"},
    }});
    LocalBridge::start(
        &format!("{CAPTURE_PROJECT_TOML}{}", capture_project_as("folder/secured", "")),
        &secrets.to_string(),
    )
    .await
}

/// Runs the trigger; returns (exit ok, stdout, stderr).
async fn pagure_calls(
    url: &str,
    job: &str,
    token: &str,
    auth: (&str, &str),
    params: [&str; 4],
) -> (bool, String, String) {
    let output = tokio::process::Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(PAGURE_TRIGGER)
        .args([url, job, token, auth.0, auth.1])
        .args(params)
        .output()
        .await
        .expect("run python-jenkins");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_job_gets_a_queue_number() {
    let mut bridge = bridge().await;
    let sha = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
    for ci_url in [bridge.url("/jenkins/"), bridge.url("/jenkins"), bridge.url("/")] {
        let (ok, stdout, stderr) = pagure_calls(
            &ci_url,
            "demo-job",
            CAPTURE_CI_TOKEN,
            ("", ""),
            [sha, "git://127.0.0.1:5602/demo.git", "feature-1", "None"],
        )
        .await;
        assert!(ok, "{ci_url}: {stderr}");
        let queued = bridge.next_queued().await;
        assert_eq!(stdout, queued.queue_item_number().to_string(), "build_job returns the queue item of the request");
        assert_eq!(queued.cause.as_trigger_value(), sha);
        assert_eq!(queued.branch_to, None);
    }
    let (ok, stdout, stderr) = pagure_calls(
        &bridge.url("/jenkins/"),
        "demo-job",
        CAPTURE_CI_TOKEN,
        ("", ""),
        ["2", "git://127.0.0.1:5602/forks/bob/demo.git", "bob-fix", "main"],
    )
    .await;
    assert!(ok, "{stderr}");
    let queued = bridge.next_queued().await;
    assert_eq!(stdout.parse::<u64>().expect("a number"), queued.queue_item_number());
    assert_eq!(queued.project.fork_user.as_deref(), Some("bob"));
    assert_eq!(queued.repo_url, "git://127.0.0.1:5602/forks/bob/demo.git");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_and_basic_auth_as_pagure_sends_them() {
    let mut bridge = bridge().await;
    let params = ["1", "git://127.0.0.1:5602/demo.git", "feature-1", "main"];
    let url = bridge.url("/jenkins/");
    let (ok, stdout, stderr) =
        pagure_calls(&url, "folder/secured", CAPTURE_CI_TOKEN, ("pagure", "ci-p4ss"), params).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout, bridge.next_queued().await.queue_item_number().to_string());

    let (ok, _, stderr) = pagure_calls(&url, "folder/secured", CAPTURE_CI_TOKEN, ("", ""), params).await;
    assert!(!ok && stderr.contains("401"), "without Basic credentials: {stderr}");
    let (ok, _, stderr) = pagure_calls(&url, "demo-job", "WRONGTOKEN", ("", ""), params).await;
    assert!(!ok && stderr.contains("401"), "wrong token: {stderr}");
    let (ok, _, stderr) = pagure_calls(&url, "no-such-job", CAPTURE_CI_TOKEN, ("", ""), params).await;
    assert!(!ok, "unknown job: {stderr}");
    assert!(bridge.nothing_queued());
}
