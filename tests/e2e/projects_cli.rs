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

const TRIGGER_TOKEN: &str = "projects-cli-trigger-token-6c1e0b7d";
const OTHER_TRIGGER_TOKEN: &str = "projects-cli-other-trigger-token-2a9f";
const HOOK_TOKEN: &str = "PROJECTSCLIHOOKKEY0123456789ABCDEFGHIJKL";
const API_TOKEN: &str = "PAGUREAPITOKENPROJECTSCLI0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0";
const WRONG_API_TOKEN: &str = "PAGUREAPITOKENNOBODYKNOWS0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0";
const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands: [make]\n";

/// What a run of the binary gave.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }

    /// No token of the tests ever reaches the terminal.
    fn assert_no_token(&self) {
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
async fn cli(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
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

async fn fake_pagure(projects: &[&str]) -> FakePagure {
    let fake = FakePagure::start().await;
    for project in projects {
        fake.add_project(project);
    }
    fake.add_token(API_TOKEN, Token { acls: vec!["commit_flag", "pull_request_flag"], project: None, expired: false });
    fake.set_token_user(API_TOKEN, "fedora-ci-bot");
    fake
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("json")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A local configuration with a `[registry]` table; `registry_extra` goes into it.
fn local_config(dir: &Path, port: u16, registry_extra: &str) -> PathBuf {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_add_check_list_remove() {
    let fake = fake_pagure(&["rpms/demo"]).await;
    let dir = temp_dir("projects-local");
    let port = free_port();
    let config =
        local_config(&dir, port, &format!("pagure_url = \"{}\"\ngit_url = \"https://src.example.org\"\n", fake.url));
    let config = config.to_str().expect("utf-8");
    let (registry, secrets) = (dir.join("registry.json"), dir.join("secrets.json"));
    let trigger_file = dir.join("trigger-token");
    std::fs::write(&trigger_file, format!("{TRIGGER_TOKEN}\n")).expect("token file");
    let trigger_file = trigger_file.to_str().expect("utf-8");
    let hook_file = dir.join("hook-key");
    std::fs::write(&hook_file, HOOK_TOKEN).expect("hook key file");
    let hook_file = hook_file.to_str().expect("utf-8");

    // A project Pagure does not have: refused, nothing written.
    let unknown =
        cli(&["projects", "--config", config, "add", "rpms/nothere", "--trigger-token-file", trigger_file], None, &[])
            .await;
    assert_ne!(unknown.code, 0, "{}", unknown.text());
    assert!(unknown.stderr.contains("has no project `rpms/nothere`"), "{}", unknown.text());
    assert!(!registry.exists() && !secrets.exists(), "nothing is written for a refused project");

    // A token Pagure refuses: refused with Pagure's answer, nothing written.
    let wrong = cli(
        &[
            "projects",
            "--config",
            config,
            "add",
            "rpms/demo",
            "--trigger-token-file",
            trigger_file,
            "--pagure-api-token-file",
            "-",
        ],
        Some(WRONG_API_TOKEN),
        &[],
    )
    .await;
    assert_ne!(wrong.code, 0, "{}", wrong.text());
    assert!(wrong.stderr.contains("HTTP 401") && wrong.stderr.contains("EINVALIDTOK"), "{}", wrong.text());
    assert!(!registry.exists() && !secrets.exists(), "nothing is written for a refused token");

    // The real thing: the trigger token and the web-hook key from files (every door is
    // open by default), the API token from standard input.
    let added = cli(
        &[
            "projects",
            "--config",
            config,
            "add",
            "rpms/demo",
            "--trigger-token-file",
            trigger_file,
            "--hook-token-file",
            hook_file,
            "--pagure-api-token-file",
            "-",
        ],
        Some(&format!("{API_TOKEN}\n")),
        &[],
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.text());
    assert!(
        added.stdout.contains(&format!("type `jenkins`, URL http://127.0.0.1:{port}/jenkins/, job name `rpms/demo`")),
        "the Pagure CI settings to paste: {}",
        added.text()
    );
    assert!(added.stdout.contains(&format!("{}rpms/demo/settings", fake.url)), "{}", added.text());
    assert!(added.stderr.contains("belongs to `fedora-ci-bot`"), "{}", added.text());
    assert!(added.stderr.contains("added the rule for `rpms/demo`"), "{}", added.text());
    let whoami = fake.seen().into_iter().filter(|r| r.path == "/api/0/-/whoami").collect::<Vec<_>>();
    assert_eq!(whoami.last().and_then(|r| r.authorization.clone()), Some(format!("token {API_TOKEN}")));
    assert_eq!(whoami.last().map(|r| r.method.as_str()), Some("POST"));
    let document = read_json(&registry);
    assert_eq!(document, json!({"version": 1, "defaults": {}, "rules": [{"match": "rpms/demo"}]}));
    let stored = read_json(&secrets);
    assert_eq!(
        stored,
        json!({"projects": {"rpms/demo": {"trigger_token": TRIGGER_TOKEN, "hook_token": HOOK_TOKEN, "pagure_api_token": API_TOKEN}}})
    );
    assert_eq!(mode(&secrets), 0o600, "the secrets file is the owner's only");
    bridge_core::ports::SecretsDocument::parse(&std::fs::read_to_string(&secrets).expect("secrets"))
        .expect("the bridge reads what the command wrote");

    let check = cli(&["projects", "--config", config, "check", "rpms/demo"], None, &[]).await;
    assert_eq!(check.code, 0, "{}", check.text());
    assert!(check.stdout.contains("is routed by registry rule 0 (`rpms/demo`)"), "{}", check.text());
    assert!(check.stdout.contains("✓ Pagure knows the project and the API token"), "{}", check.text());
    assert!(check.stdout.contains("✓ nothing missing"), "{}", check.text());

    // An update keeps the tokens and changes only what is given.
    let updated =
        cli(&["projects", "--config", config, "add", "rpms/demo", "--buildspec", "ci/buildspec.yml"], None, &[]).await;
    assert_eq!(updated.code, 0, "{}", updated.text());
    assert!(updated.stderr.contains("updated the rule for `rpms/demo`"), "{}", updated.text());
    assert_eq!(read_json(&registry)["rules"], json!([{"match": "rpms/demo", "buildspec": "ci/buildspec.yml"}]));
    assert_eq!(read_json(&secrets), stored, "the tokens are kept");

    // Either door's credential is enough: without the trigger token the web-hook still works.
    std::fs::write(
        &secrets,
        json!({"projects": {"rpms/demo": {"hook_token": HOOK_TOKEN, "pagure_api_token": API_TOKEN}}}).to_string(),
    )
    .expect("secrets");
    let check = cli(&["projects", "--config", config, "check", "rpms/demo"], None, &[]).await;
    assert_eq!(check.code, 0, "{}", check.text());
    // Both removed by hand: check names them and exits 1.
    std::fs::write(&secrets, json!({"projects": {"rpms/demo": {"pagure_api_token": API_TOKEN}}}).to_string())
        .expect("secrets");
    let check = cli(&["projects", "--config", config, "check", "rpms/demo"], None, &[]).await;
    assert_eq!(check.code, 1, "{}", check.text());
    assert!(check.stdout.contains("✗ missing the trigger token"), "{}", check.text());
    assert!(check.stdout.contains("or the web-hook key"), "{}", check.text());
    assert!(!check.stdout.contains("nothing missing"), "{}", check.text());

    let list = cli(&["projects", "--config", config, "list"], None, &[]).await;
    assert_eq!(list.code, 0, "{}", list.text());
    let row = list.stdout.lines().find(|l| l.starts_with("rpms/demo")).unwrap_or_else(|| panic!("{}", list.text()));
    assert!(row.contains("rule 0") && row.contains("pcb-trusted") && row.trim_end().ends_with('1'), "{row}");
    let list = cli(&["projects", "--config", config, "list", "--json"], None, &[]).await;
    assert_eq!(list.code, 0, "{}", list.text());
    let rows: Value = serde_json::from_str(&list.stdout).expect("list --json is JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(
        (&rows[0]["match"], &rows[0]["project"], &rows[0]["pipeline"], &rows[0]["source"]),
        (&json!("rpms/demo"), &json!("rpms/demo"), &json!("pcb-trusted"), &json!("rule 0"))
    );
    assert_eq!(rows[0]["missing"].as_array().map(Vec::len), Some(1), "{rows}");

    let removed = cli(&["projects", "--config", config, "remove", "rpms/demo"], None, &[]).await;
    assert_eq!(removed.code, 0, "{}", removed.text());
    assert_eq!(read_json(&registry)["rules"], json!([]));
    assert_eq!(read_json(&secrets), json!({"projects": {}}), "its tokens went with it");
    let check = cli(&["projects", "--config", config, "check", "rpms/demo", "--skip-pagure-check"], None, &[]).await;
    assert_eq!(check.code, 1, "{}", check.text());
    assert!(check.stdout.contains("no rule matches it"), "{}", check.text());
    let again = cli(&["projects", "--config", config, "remove", "rpms/demo"], None, &[]).await;
    assert_ne!(again.code, 0, "{}", again.text());
    assert!(again.stderr.contains("no rule matches exactly `rpms/demo`"), "{}", again.text());
}

/// `pagure-ci-bridge serve --config <config>` on `port`, until dropped.
async fn serve(config: &Path, port: u16) -> tokio::process::Child {
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
async fn trigger(base: &str, key: &str, token: &str, repo: &str, sha: &str) -> (u16, Value) {
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
async fn trigger_until_accepted(base: &str, key: &str, token: &str, repo: &str, sha: &str) {
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

async fn flag_on(fake: &FakePagure, project: &str, sha: &str) -> e2e_tests::fake_pagure::StoredFlag {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(flag) = fake.flags().into_iter().find(|f| f.project == project && f.commit == sha) {
            return flag;
        }
        assert!(Instant::now() < deadline, "no flag on {project} {sha} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_added_while_the_server_runs_is_built_without_a_restart() {
    let root = temp_dir("projects-git");
    let demo_sha = e2e_tests::git_server::single_commit_repo(&root, "rpms/demo", &[("buildspec.yml", BUILDSPEC)]);
    let other_sha = e2e_tests::git_server::single_commit_repo(&root, "rpms/other", &[("buildspec.yml", BUILDSPEC)]);
    let git = e2e_tests::git_server::GitServer::start(&root).await;
    let fake = fake_pagure(&["rpms/demo", "rpms/other"]).await;
    let dir = temp_dir("projects-serve");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // The local git server is plain http: allowed by the document's defaults (a `[registry]`
    // table has no allow_insecure_git_url).
    let config = local_config(&dir, port, &format!("pagure_url = \"{}\"\n", fake.url));
    let registry = dir.join("registry.json");
    let document =
        json!({"version": 1, "defaults": {"git_url": git.base, "allow_insecure_git_url": true}, "rules": []});
    std::fs::write(&registry, document.to_string()).expect("registry");
    // rpms/other's trigger token and the shared bot token a pattern rule will use.
    std::fs::write(
        dir.join("secrets.json"),
        json!({"projects": {"rpms/other": {"trigger_token": OTHER_TRIGGER_TOKEN}},
               "shared_pagure_api_tokens": {"bot": API_TOKEN}})
        .to_string(),
    )
    .expect("secrets");
    let mut server = serve(&config, port).await;
    let (demo_repo, other_repo) = (git.url("rpms/demo.git"), git.url("rpms/other.git"));

    let (status, body) = trigger(&base, "rpms/demo", TRIGGER_TOKEN, &demo_repo, &demo_sha).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("unknown_project")), "{body}");

    let trigger_file = dir.join("trigger-token");
    std::fs::write(&trigger_file, TRIGGER_TOKEN).expect("token file");
    let added = cli(
        &[
            "projects",
            "--config",
            config.to_str().expect("utf-8"),
            "add",
            "rpms/demo",
            "--triggers",
            "jenkins,json",
            "--trigger-token-file",
            trigger_file.to_str().expect("utf-8"),
            "--pagure-api-token-file",
            "-",
        ],
        Some(API_TOKEN),
        &[],
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.text());
    assert!(added.stdout.contains(&format!("POST {base}/trigger/rpms/demo")), "{}", added.text());

    trigger_until_accepted(&base, "rpms/demo", TRIGGER_TOKEN, &demo_repo, &demo_sha).await;
    let flag = flag_on(&fake, "rpms/demo", &demo_sha).await;
    assert!(flag.url.starts_with(&format!("{base}/runs/local-")), "built in a local run: {}", flag.url);
    let run: Value = e2e_tests::http().get(&flag.url).send().await.expect("run").json().await.expect("json");
    assert_eq!(run["pipeline"], "pcb-trusted");
    assert_eq!(run["variables"]["PAGURE_COMMIT"], demo_sha.as_str());

    // rpms/other was never added: a pattern rule appended to the file routes it.
    let (status, _) = trigger(&base, "rpms/other", OTHER_TRIGGER_TOKEN, &other_repo, &other_sha).await;
    assert_eq!(status, 404, "no rule routes it yet");
    let mut document = RegistryDocument::parse(&std::fs::read_to_string(&registry).expect("registry")).expect("parse");
    document.rules.push(RuleSettings {
        matches: Some("rpms/*".into()),
        shared_pagure_api_token: Some("bot".into()),
        ..RuleSettings::default()
    });
    let partial = dir.join("registry.json.new");
    std::fs::write(&partial, document.to_json()).expect("write");
    std::fs::rename(&partial, &registry).expect("rename");
    trigger_until_accepted(&base, "rpms/other", OTHER_TRIGGER_TOKEN, &other_repo, &other_sha).await;
    let flag = flag_on(&fake, "rpms/other", &other_sha).await;
    assert!(flag.url.starts_with(&format!("{base}/runs/local-")), "{}", flag.url);
    let posted = fake.seen().into_iter().find(|r| r.method == "POST" && r.path.starts_with("/api/0/rpms/other/c/"));
    assert_eq!(posted.and_then(|r| r.authorization), Some(format!("token {API_TOKEN}")), "the shared token");
    let _ = server.kill().await;
}

/// The registry bucket and the secret on moto, as a stack makes them.
async fn deployment(moto: &Moto) -> (aws_sdk_s3::Client, aws_sdk_secretsmanager::Client) {
    let s3 = moto.versioned_bucket("pcb-registry").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    (s3, secrets)
}

async fn object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::get_object::GetObjectOutput {
    s3.get_object().bucket(bucket).key(key).send().await.expect("get object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_registry_and_secrets_editor_on_moto() {
    let moto = Moto::start();
    let (s3, secrets) = deployment(&moto).await;
    let store = S3Registry::new(s3.clone(), "pcb-registry", "registry.json");
    assert_eq!(store.describe(), "s3://pcb-registry/registry.json");
    assert_eq!(store.read().await.expect("read"), None, "no document yet: an empty registry");
    assert_eq!(store.fetch().await.expect("fetch"), None);

    let one = RegistryDocument { rules: vec![rule("rpms/a")], ..RegistryDocument::default() }.to_json();
    store.write(&one, None).await.expect("the first write (If-None-Match)");
    let again = store.write(&one, None).await;
    assert!(matches!(again, Err(RegistryError::Conflict(_))), "a second first write loses: {again:?}");
    let v1 = store.read().await.expect("read").expect("stored");
    assert_eq!(v1.text, one);
    assert!(!v1.version.is_empty());
    let stored = object(&s3, "pcb-registry", "registry.json").await;
    assert_eq!(stored.server_side_encryption(), Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256));
    assert_eq!(stored.content_type(), Some("application/json"));

    let two = RegistryDocument { rules: vec![rule("rpms/a"), rule("rpms/b")], ..RegistryDocument::default() }.to_json();
    store.write(&two, Some(&v1.version)).await.expect("a write at the version read (If-Match)");
    let stale = store.write(&one, Some(&v1.version)).await;
    assert!(matches!(stale, Err(RegistryError::Conflict(_))), "a stale version loses: {stale:?}");
    let v2 = store.read().await.expect("read").expect("stored");
    assert_eq!(v2.text, two, "the stale write changed nothing");
    assert_ne!(v2.version, v1.version);
    assert_eq!(store.fetch().await.expect("fetch").as_deref(), Some(two.as_str()));

    // The stages' cached view reads it through the same object.
    let projects = Projects::loaded(store.clone(), Duration::ZERO, BTreeMap::new(), deployment_values());
    assert!(projects.get("rpms/b").await.expect("registry").is_some());

    // A bucket that does not exist is an error, not an empty registry.
    let missing = S3Registry::new(s3.clone(), "no-such-bucket", "registry.json").read().await;
    assert!(matches!(missing, Err(RegistryError::Unavailable(_))), "{missing:?}");

    // Secrets Manager: a secret without a value yet reads as none; writes are whole versions.
    secrets.create_secret().name("pcb-empty").send().await.expect("secret without a value");
    let editor = SecretsManagerEditor::new(secrets.clone(), "pcb-empty");
    assert_eq!(editor.read().await.expect("read"), None);
    let text = json!({"projects": {"rpms/a": {"trigger_token": TRIGGER_TOKEN}}}).to_string();
    editor.write(&text).await.expect("write");
    assert_eq!(editor.read().await.expect("read").as_deref(), Some(text.as_str()));
    let text2 = json!({"projects": {}}).to_string();
    editor.write(&text2).await.expect("write");
    assert_eq!(editor.read().await.expect("read").as_deref(), Some(text2.as_str()));
    let previous = secrets
        .get_secret_value()
        .secret_id("pcb-empty")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .expect("previous version");
    assert_eq!(previous.secret_string(), Some(text.as_str()), "the previous version is kept");
    let absent = SecretsManagerEditor::new(secrets, "pcb-no-such-secret").read().await;
    let error = absent.expect_err("a secret that does not exist is an error");
    assert!(error.contains("pcb-no-such-secret") && !error.contains(TRIGGER_TOKEN), "{error}");
}

fn rule(key: &str) -> RuleSettings {
    RuleSettings { matches: Some(key.into()), ..RuleSettings::default() }
}

fn deployment_values() -> Deployment {
    Deployment {
        pagure_url: Some("https://src.example.org/".into()),
        git_url: Some("https://src.example.org".into()),
        pipeline: Some("pcb-trusted".into()),
        untrusted_pipeline: Some("pcb-untrusted".into()),
        pipeline_prefix: Some("pcb-".into()),
        rebuild_phrases: vec!["pretty please pagure-ci rebuild".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_add_check_remove_through_pcb_variables() {
    let moto = Moto::start();
    let (s3, secrets) = deployment(&moto).await;
    secrets
        .create_secret()
        .name("pcb-secrets")
        .secret_string(json!({"projects": {}}).to_string())
        .send()
        .await
        .expect("secret");
    let fake = fake_pagure(&["rpms/demo"]).await;
    let dir = temp_dir("projects-aws");
    let trigger_file = dir.join("trigger-token");
    std::fs::write(&trigger_file, TRIGGER_TOKEN).expect("token file");
    let env = [
        ("PCB_REGISTRY_BUCKET", "pcb-registry"),
        ("PCB_SECRET_ID", "pcb-secrets"),
        ("PCB_PAGURE_URL", fake.url.as_str()),
        ("PCB_GIT_URL", "https://src.example.org"),
        ("PCB_PIPELINE", "pcb-trusted"),
        ("PCB_UNTRUSTED_PIPELINE", "pcb-untrusted"),
        ("PCB_SECRET_SHARDS", "1"),
        ("PCB_PIPELINE_PREFIX", "pcb-"),
        ("PCB_BRIDGE_URL", "https://abc123.lambda-url.us-east-1.on.aws/"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials"),
    ];
    let secret_value = || async {
        let text = secrets.get_secret_value().secret_id("pcb-secrets").send().await.expect("secret");
        serde_json::from_str::<Value>(text.secret_string().expect("string")).expect("json")
    };

    let wrong =
        cli(&["projects", "add", "rpms/demo", "--pagure-api-token-file", "-"], Some(WRONG_API_TOKEN), &env).await;
    assert_ne!(wrong.code, 0, "{}", wrong.text());
    assert!(wrong.stderr.contains("EINVALIDTOK"), "{}", wrong.text());
    let none = s3.get_object().bucket("pcb-registry").key("registry.json").send().await;
    assert!(none.is_err(), "nothing written for a refused token");

    let added = cli(
        &[
            "projects",
            "add",
            "rpms/demo",
            "--triggers",
            "jenkins,json",
            "--trigger-token-file",
            trigger_file.to_str().expect("utf-8"),
            "--pagure-api-token-file",
            "-",
        ],
        Some(API_TOKEN),
        &env,
    )
    .await;
    assert_eq!(added.code, 0, "{}", added.text());
    assert!(
        added.stdout.contains("URL https://abc123.lambda-url.us-east-1.on.aws/jenkins/, job name `rpms/demo`"),
        "{}",
        added.text()
    );
    assert!(added.stderr.contains("s3://pcb-registry/registry.json"), "{}", added.text());
    let stored = object(&s3, "pcb-registry", "registry.json").await;
    let text = String::from_utf8(stored.body.collect().await.expect("body").into_bytes().to_vec()).expect("utf-8");
    let document = RegistryDocument::parse(&text).expect("the stages read what the command wrote");
    assert_eq!(
        document.rules,
        [RuleSettings { triggers: Some(vec![TriggerKind::Jenkins, TriggerKind::Json]), ..rule("rpms/demo") }]
    );
    assert_eq!(
        secret_value().await,
        json!({"projects": {"rpms/demo": {"trigger_token": TRIGGER_TOKEN, "pagure_api_token": API_TOKEN}}})
    );

    let check = cli(&["projects", "check", "rpms/demo"], None, &env).await;
    assert_eq!(check.code, 0, "{}", check.text());
    assert!(check.stdout.contains("trusted builds: pcb-trusted; untrusted builds: pcb-untrusted"), "{}", check.text());
    let list = cli(&["projects", "list", "--json"], None, &env).await;
    assert_eq!(list.code, 0, "{}", list.text());
    let rows: Value = serde_json::from_str(&list.stdout).expect("json");
    assert_eq!(rows[0]["missing"], json!([]), "{rows}");

    let removed = cli(&["projects", "remove", "rpms/demo"], None, &env).await;
    assert_eq!(removed.code, 0, "{}", removed.text());
    assert_eq!(secret_value().await, json!({"projects": {}}));
    let check = cli(&["projects", "check", "rpms/demo"], None, &env).await;
    assert_eq!(check.code, 1, "{}", check.text());

    // Without the registry variable the command says which one is missing.
    let unset = cli(&["projects", "list"], None, &env[1..]).await;
    assert_ne!(unset.code, 0, "{}", unset.text());
    assert!(unset.stderr.contains("PCB_REGISTRY_BUCKET"), "{}", unset.text());
}

/// An S3 stand-in answering every request with `status` and an S3 error `code`.
async fn s3_refusing(status: u16, code: &'static str) -> (String, tokio::sync::oneshot::Sender<()>) {
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut stopped => return,
                accepted = listener.accept() => accepted.expect("accept"),
            };
            tokio::spawn(async move {
                let handler = service_fn(move |request: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>refused by the test</Message>\
                         <Resource>{}</Resource><RequestId>4442587FB7D0A2F9</RequestId><HostId>test</HostId></Error>",
                        request.uri().path()
                    );
                    let response = hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/xml")
                        .header("x-amz-request-id", "4442587FB7D0A2F9")
                        .body(Full::new(bytes::Bytes::from(body)))
                        .expect("response");
                    Ok::<_, Infallible>(response)
                });
                let _ = http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), handler).await;
            });
        }
    });
    (url, stop)
}

async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let sdk = e2e_tests::sdk_config_for(endpoint).await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_s3_read_is_an_error_never_absent() {
    let (denied, _stop) = s3_refusing(403, "AccessDenied").await;
    let s3 = s3_client(&denied).await;
    let registry = S3Registry::new(s3.clone(), "pcb-registry", "registry.json");
    let read = registry.read().await;
    match &read {
        Err(RegistryError::Unavailable(text)) => assert!(text.contains("AccessDenied"), "{text}"),
        other => panic!("a denied registry read must be an error: {other:?}"),
    }
    assert!(registry.fetch().await.is_err());
    let projects = Projects::loaded(registry.clone(), Duration::ZERO, BTreeMap::new(), deployment_values());
    assert!(projects.get("rpms/demo").await.is_err(), "an unreadable registry is not an empty one");
    let write = registry.write("{}", None).await;
    assert!(matches!(write, Err(RegistryError::Unavailable(_))), "a denied write is no conflict: {write:?}");

    let store = S3Store::new(s3, "pcb-sources", Encryption::S3Managed);
    let marker = store.marker("markers/abc/.started").await;
    assert!(marker.is_err(), "a denied marker read must be an error: {marker:?}");
    assert!(store.create_marker("markers/abc/.started", "x").await.is_err());

    // Control: the same stand-in saying NoSuchKey is "absent" for both, so the errors above
    // come from the 403 and not from an answer the SDK could not read.
    let (missing, _stop) = s3_refusing(404, "NoSuchKey").await;
    let s3 = s3_client(&missing).await;
    assert_eq!(S3Registry::new(s3.clone(), "pcb-registry", "registry.json").read().await.expect("absent"), None);
    let store = S3Store::new(s3.clone(), "pcb-sources", Encryption::S3Managed);
    assert_eq!(store.marker("markers/abc/.started").await.expect("absent"), None);
    // Any other 404 (the bucket is gone) is an error too.
    let (no_bucket, _stop) = s3_refusing(404, "NoSuchBucket").await;
    let s3 = s3_client(&no_bucket).await;
    assert!(S3Registry::new(s3.clone(), "pcb-registry", "registry.json").read().await.is_err());
    assert!(S3Store::new(s3, "pcb-sources", Encryption::S3Managed).marker("markers/abc/.started").await.is_err());
}

// ----- 10,000 rules: the right rule wins -----

const NAMESPACES: [&str; 5] = ["rpms", "modules", "containers", "flatpaks", "tests"];

/// 5,000 exact rules then 5,000 patterns, some overlapping on purpose (an exact rule inside a
/// pattern's range, patterns that shadow later ones, patterns with a glob first segment).
fn big_document() -> RegistryDocument {
    let mut rules = Vec::new();
    for i in 0..5_000 {
        let mut r = rule(&format!("{}/python3-pkg{i:05}", NAMESPACES[i % 5]));
        if i % 13 == 0 {
            r.pipeline = Some(format!("pcb-exact-{i}"));
        }
        rules.push(r);
    }
    for i in 0..5_000 {
        let matches = match i % 10 {
            3 => format!("*/stem{i:05}-*"),
            7 => format!("{}/*-stem{i:05}", NAMESPACES[i % 5]),
            // Broad patterns late in the document: everything under the namespace that no
            // earlier rule took, e.g. exact-looking names.
            9 if i >= 4_950 => format!("{}/*", NAMESPACES[(i / 10) % 5]),
            _ => format!("{}/stem{i:05}-*", NAMESPACES[i % 5]),
        };
        rules.push(RuleSettings { pipeline: Some(format!("pcb-pattern-{i}")), ..rule(&matches) });
    }
    RegistryDocument { rules, ..RegistryDocument::default() }
}

/// `*` over one segment, written plainly (recursion), as a reference.
fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && reference_glob(rest, &text[1..]),
    }
}

/// The rule a plain reading of the document picks: an exact `match`, else the first pattern
/// in document order whose segments all match.
fn reference(document: &RegistryDocument, key: &str) -> Option<usize> {
    let rules = &document.rules;
    let matches = |i: usize| rules[i].matches.as_deref().expect("match");
    if let Some(i) = (0..rules.len()).find(|&i| !matches(i).contains('*') && matches(i) == key) {
        return Some(i);
    }
    let key_segments: Vec<&str> = key.split('/').collect();
    (0..rules.len()).find(|&i| {
        let pattern: Vec<&str> = matches(i).split('/').collect();
        matches(i).contains('*')
            && pattern.len() == key_segments.len()
            && pattern.iter().zip(&key_segments).all(|(p, k)| reference_glob(p.as_bytes(), k.as_bytes()))
    })
}

#[test]
fn ten_thousand_rules_route_each_key_to_the_rule_that_should_win() {
    let document = big_document();
    let text = document.to_json();
    let parsed = RegistryDocument::parse(&text).expect("parse");
    let registry = Registry::compile(&BTreeMap::new(), Some(&parsed), &deployment_values()).expect("compile");
    assert_eq!(registry.len(), 10_000);

    let mut keys = Vec::new();
    for i in (0..5_000).step_by(37).chain([0, 4_999]) {
        let ns = NAMESPACES[i % 5];
        keys.push(format!("{ns}/python3-pkg{i:05}")); // an exact rule
        keys.push(format!("{ns}/stem{i:05}-extras")); // a pattern (or a broad one, or none)
        keys.push(format!("{}/stem{i:05}-x", NAMESPACES[(i + 1) % 5])); // another namespace
        keys.push(format!("{ns}/x-stem{i:05}")); // a suffix pattern
        keys.push(format!("epel/stem{i:05}-y")); // only a `*/…` pattern can take it
        keys.push(format!("{ns}/python3-pkg{i:05}x")); // near an exact key
    }
    keys.extend(["rpms/zz-nothing", "epel/zz-nothing", "rpms/a/b", "rpms", "rpms/*"].map(String::from));
    let (mut exact, mut pattern, mut none) = (0, 0, 0);
    for key in &keys {
        let expected = reference(&document, key).filter(|_| bridge_core::config::is_project_key(key));
        let found = registry.lookup(key);
        match (expected, &found) {
            (None, None) => none += 1,
            (Some(index), Some((project, RuleSource::Rule { index: got, .. }))) => {
                assert_eq!(*got, index, "`{key}`: rule {got} won, rule {index} should have");
                let wanted = document.rules[index].pipeline.clone().unwrap_or_else(|| "pcb-trusted".into());
                assert_eq!(project.pipeline, wanted, "`{key}`: the winning rule's settings");
                assert_eq!(project.repo.fullname(), *key, "the key is the full name");
                if index < 5_000 { exact += 1 } else { pattern += 1 }
            }
            _ => panic!("`{key}`: expected rule {expected:?}, found {found:?}"),
        }
    }
    assert!(
        exact > 100 && pattern > 300 && none > 50,
        "a real mix was checked: {exact} exact, {pattern} pattern, {none} none"
    );
}

/// A forge past one secret's 64 KiB: the Lambdas' reader merges every shard (a shard not
/// made yet is empty), the editor writes only where it read and makes shards on demand, and
/// an edit that raced another is refused, not merged over it.
#[tokio::test]
async fn secret_shards_are_merged_by_readers_and_made_by_the_editor() {
    use bridge_core::ports::SecretSource as _;
    let moto = Moto::start();
    let (_, secrets) = deployment(&moto).await;
    let base = json!({"projects": {"rpms/a": {"trigger_token": TRIGGER_TOKEN}}, "shared_pagure_api_tokens": {"bot": API_TOKEN}});
    secrets.create_secret().name("pcb-tokens").secret_string(base.to_string()).send().await.expect("base");
    let second = json!({"projects": {"rpms/b": {"hook_token": HOOK_TOKEN}}});
    secrets.create_secret().name("pcb-tokens-shard-2").secret_string(second.to_string()).send().await.expect("shard 2");

    let reader = bridge_aws::SecretsManagerSource::new(secrets.clone(), "pcb-tokens").sharded(3);
    let document = bridge_core::ports::SecretsDocument::parse(&reader.fetch().await.expect("merged")).expect("doc");
    assert!(document.project("rpms/a").and_then(|p| p.trigger_token.as_ref()).is_some());
    assert!(document.project("rpms/b").and_then(|p| p.hook_token.as_ref()).is_some(), "shard 1 absent, shard 2 read");
    assert_eq!(document.pagure_api_token("rpms/b", Some("bot")).map(|t| t.expose()), Some(API_TOKEN));

    // A project in two shards is refused by the reader, naming it, never a value.
    let twice = json!({"projects": {"rpms/a": {"trigger_token": "another-value"}}});
    secrets.create_secret().name("pcb-tokens-shard-1").secret_string(twice.to_string()).send().await.expect("dup");
    let error = reader.fetch().await.expect_err("ambiguous").to_string();
    assert!(error.contains("rpms/a") && !error.contains("another-value") && !error.contains(TRIGGER_TOKEN), "{error}");
    secrets
        .delete_secret()
        .secret_id("pcb-tokens-shard-1")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("rm");

    // The editor: shard 1 does not exist; a write there creates it.
    let editor = SecretsManagerEditor::new(secrets.clone(), "pcb-tokens").sharded(3);
    let shards = editor.read_shards().await.expect("shards");
    assert_eq!(
        shards.iter().map(|s| (s.id.as_str(), s.text.is_some())).collect::<Vec<_>>(),
        [("pcb-tokens", true), ("pcb-tokens-shard-1", false), ("pcb-tokens-shard-2", true)]
    );
    let made = json!({"projects": {"rpms/c": {"trigger_token": TRIGGER_TOKEN}}}).to_string();
    editor.write_shard(&shards[1], &made).await.expect("created on demand");
    let stored = secrets.get_secret_value().secret_id("pcb-tokens-shard-1").send().await.expect("made");
    assert_eq!(stored.secret_string(), Some(made.as_str()));
    // A stale read loses: shard 2 changed since `shards` was read.
    secrets
        .put_secret_value()
        .secret_id("pcb-tokens-shard-2")
        .secret_string(second.to_string())
        .send()
        .await
        .expect("rotate");
    let stale = editor.write_shard(&shards[2], "{}").await.expect_err("changed since read");
    assert!(stale.contains("changed while it was being edited"), "{stale}");
    let kept = secrets.get_secret_value().secret_id("pcb-tokens-shard-2").send().await.expect("kept");
    assert_eq!(kept.secret_string(), Some(second.to_string().as_str()), "the stale write changed nothing");
}
