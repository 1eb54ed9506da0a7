//! The command on local mode's files, and a project added while the server runs.

use super::*;

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
