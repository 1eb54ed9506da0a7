//! `pagure-ci-bridge projects add|list|check|remove` as an admin runs it (the shipped
//! binary, tokens on standard input or in files), in local mode and against a deployment
//! (moto's S3 and Secrets Manager through the `PCB_*` variables), with the fake Pagure
//! answering the project and `whoami` calls; a project it adds is built by the running local
//! server without a restart; a denied S3 read is an error, never "absent"; and a registry of
//! 10,000 rules routes every sampled key to the rule a plain reading of the rules picks.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bridge_aws::{Encryption, S3Registry, S3Store, SecretsManagerEditor};
use bridge_core::model::TriggerKind;
use bridge_core::ports::ArtifactStore as _;
use bridge_core::registry::{
    Deployment, Projects, Registry, RegistryDocument, RegistryError, RegistrySource as _, RegistryStore as _,
    RuleSettings, RuleSource,
};
use e2e_tests::fake_pagure::{FakePagure, Token};
use e2e_tests::{Moto, free_port, temp_dir};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

pub(super) const TRIGGER_TOKEN: &str = "projects-cli-trigger-token-6c1e0b7d";
pub(super) const OTHER_TRIGGER_TOKEN: &str = "projects-cli-other-trigger-token-2a9f";
pub(super) const HOOK_TOKEN: &str = "PROJECTSCLIHOOKKEY0123456789ABCDEFGHIJKL";
pub(super) const API_TOKEN: &str = "PAGUREAPITOKENPROJECTSCLI0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0";
pub(super) const WRONG_API_TOKEN: &str = "PAGUREAPITOKENNOBODYKNOWS0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0";
pub(super) const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands: [make]\n";

/// What a run of the binary gave.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) code: i32,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Run {
    pub(super) fn text(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// No token of the tests ever reaches the terminal.
    pub(super) fn assert_no_token(&self) {
        for token in [TRIGGER_TOKEN, OTHER_TRIGGER_TOKEN, HOOK_TOKEN, API_TOKEN, WRONG_API_TOKEN] {
            assert!(
                !self.stdout.contains(token) && !self.stderr.contains(token),
                "a token was printed: {}",
                self.text()
            );
        }
    }
}

/// `pagure-ci-bridge <args>` with `stdin` piped in and only `env` of the `PCB_*`/`AWS_*`
/// variables set.
pub(super) async fn cli(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(crate::local_pipeline::bridge_binary());
    command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("PCB_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("pagure-ci-bridge");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(text.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command ended within 60 s")
        .expect("output");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    run.assert_no_token();
    run
}

pub(super) async fn fake_pagure(projects: &[&str]) -> FakePagure {
    let fake = FakePagure::start().await;
    for project in projects {
        fake.add_project(project);
    }
    fake.add_token(API_TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    fake.set_token_user(API_TOKEN, "fedora-ci-bot");
    fake
}

pub(super) fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

pub(super) fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A local configuration with a `[registry]` table; `registry_extra` goes into it.
pub(super) fn local_config(dir: &Path, port: u16, registry_extra: &str) -> PathBuf {
    let path = dir.join("bridge.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[secrets]\nfile = \"secrets.json\"\n\
             [work]\nartifacts_dir = \"artifacts\"\nretry_delay_ms = 50\n\
             [registry]\nfile = \"registry.json\"\nttl_seconds = 0\npipeline = \"pcb-trusted\"\n\
             pipeline_prefix = \"pcb-\"\n{registry_extra}"
        ),
    )
    .expect("config");
    path
}

pub(super) async fn serve(config: &Path, port: u16) -> tokio::process::Child {
    let mut child = tokio::process::Command::new(crate::local_pipeline::bridge_binary())
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("PCB_SECRETS_JSON")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not listen within 20 s");
        assert!(child.try_wait().expect("try_wait").is_none(), "the server stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// A push to `main` of `key` through the JSON trigger: the answer's status and body.
pub(super) async fn trigger(base: &str, key: &str, token: &str, repo: &str, sha: &str) -> (u16, Value) {
    let answer = e2e_tests::http()
        .post(format!("{base}/trigger/{key}"))
        .header("authorization", format!("token {token}"))
        .json(&json!({"cause": sha, "repo": repo, "branch": "main", "branch_to": null}))
        .send()
        .await
        .expect("trigger");
    (answer.status().as_u16(), answer.json().await.unwrap_or(Value::Null))
}

/// Triggers until the bridge takes it (it reads the registry and the secrets again).
pub(super) async fn trigger_until_accepted(base: &str, key: &str, token: &str, repo: &str, sha: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = trigger(base, key, token, repo, sha).await;
        if status == 202 {
            return;
        }
        assert!(Instant::now() < deadline, "`{key}` was not accepted within 15 s: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(super) async fn flag_on(fake: &FakePagure, project: &str, sha: &str) -> e2e_tests::fake_pagure::StoredFlag {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(flag) = fake.flags().into_iter().find(|f| f.project == project && f.commit == sha) {
            return flag;
        }
        assert!(Instant::now() < deadline, "no flag on {project} {sha} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The registry bucket and the secret on moto, as a stack makes them.
pub(super) async fn deployment(moto: &Moto) -> (aws_sdk_s3::Client, aws_sdk_secretsmanager::Client) {
    let s3 = moto.versioned_bucket("pcb-registry").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    (s3, secrets)
}

pub(super) fn rule(key: &str) -> RuleSettings {
    RuleSettings { matches: Some(key.into()), ..RuleSettings::default() }
}

pub(super) fn deployment_values() -> Deployment {
    Deployment {
        pagure_url: Some("https://src.example.org/".into()),
        git_url: Some("https://src.example.org".into()),
        pipeline: Some("pcb-trusted".into()),
        untrusted_pipeline: Some("pcb-untrusted".into()),
        pipeline_prefix: Some("pcb-".into()),
        rebuild_phrases: vec!["pretty please pagure-ci rebuild".into()],
    }
}

mod deployed;
mod local;
mod scale;
