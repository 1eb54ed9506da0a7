use super::*;

mod sources;

const PROJECT: &str = r#"
pagure_url = "https://pagure.io"
git_url = "https://pagure.io"
project = "rpms/demo"
pipeline = "demo-ci"
"#;

fn local(text: &str) -> Result<LocalConfig, ConfigError> {
    LocalConfig::parse(text, Path::new("/etc/pcb"))
}

#[test]
fn local_file_with_defaults() {
    let cfg = local(&format!("[secrets]\nfile = \"s.json\"\n[projects.demo-job]\n{PROJECT}")).expect("valid");
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(cfg.secrets_file, Path::new("/etc/pcb/s.json"));
    assert_eq!(cfg.accept.max_body_bytes, 262_144);
    assert_eq!(cfg.accept.rebuild_phrases, vec![DEFAULT_REBUILD_PHRASE]);
    let p = &cfg.accept.projects["demo-job"];
    assert_eq!(p.pagure_url.as_str(), "https://pagure.io/");
    assert_eq!(p.triggers.len(), 3);
    assert_eq!(p.repo.clone_url(None), "https://pagure.io/rpms/demo.git");
    assert_eq!(p.buildspec_paths, ["buildspec.yml", "buildspec.yaml"]);
    assert!(cfg.accept.source_allowed(None));
}

#[test]
fn untrusted_pipeline_and_approval_phrase() {
    let base = format!("[secrets]\nfile = \"s\"\n[projects.a]\n{PROJECT}");
    let cfg = local(&format!("{base}untrusted_pipeline = \"demo-untrusted\"\napproval_phrase = \"  /ok-to-test \"\n"))
        .expect("valid");
    let p = &cfg.accept.projects["a"];
    assert_eq!(p.untrusted_pipeline.as_deref(), Some("demo-untrusted"));
    assert_eq!(p.approval_phrase.as_deref(), Some("/ok-to-test"), "trimmed");
    let cfg = local(&base).expect("valid");
    assert_eq!(
        (cfg.accept.projects["a"].untrusted_pipeline.as_ref(), cfg.accept.projects["a"].approval_phrase.as_ref()),
        (None, None)
    );
    for (extra, words) in [
        ("untrusted_pipeline = \"demo-ci\"\n", "must differ from `pipeline`"),
        ("untrusted_pipeline = \"demo untrusted\"\n", "CodePipeline name"),
        ("untrusted_pipeline = \"\"\n", "CodePipeline name"),
        ("approval_phrase = \"  \"\n", "must not be empty"),
        ("approval_phrase = \"pretty please pagure-ci rebuild\"\n", "also a rebuild phrase"),
    ] {
        let err = local(&format!("{base}{extra}")).expect_err(extra).to_string();
        let key =
            if extra.starts_with("untrusted") { "projects.a.untrusted_pipeline" } else { "projects.a.approval_phrase" };
        assert!(err.contains(&format!("`{key}`")) && err.contains(words), "{extra}: {err}");
    }
    // A custom rebuild phrase is compared too, after trimming.
    let clash = format!("[accept]\nrebuild_phrases = [\" /ok-to-test\"]\n{base}approval_phrase = \"/ok-to-test\"\n");
    assert!(local(&clash).expect_err("clash").to_string().contains("also a rebuild phrase"));
    // The environment names the variable, and the place inside it as it is written there.
    let env = |key: &str| match key {
        env::PROJECTS => Some(format!("[a]\n{PROJECT}approval_phrase = \"pretty please pagure-ci rebuild\"\n")),
        env::QUEUE_URL | env::SECRET_ID => Some("x".to_owned()),
        _ => None,
    };
    let err = AcceptLambdaConfig::from_env(env).expect_err("clash").to_string();
    assert!(err.contains("`PCB_PROJECTS (a.approval_phrase)`") && err.contains("(PCB_REBUILD_PHRASES)"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[secrets]\nfile = \"s\"\n[server]\nlisten = \"nope\"\n[projects.a]\n".to_owned() + PROJECT, "server.listen"),
        (
            "[secrets]\nfile = \"s\"\n[accept]\nsource_cidrs = [\"10.0.0.0/33\"]\n[projects.a]\n".to_owned() + PROJECT,
            "accept.source_cidrs",
        ),
        (
            "[secrets]\nfile = \"s\"\n[accept]\nmax_body_bytes = 1\n[projects.a]\n".to_owned() + PROJECT,
            "accept.max_body_bytes",
        ),
        (
            "[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned()
                + &PROJECT.replace("https://pagure.io\"\nproject", "http://pagure.io\"\nproject"),
            "projects.a.git_url",
        ),
        (
            "[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned() + &PROJECT.replace("rpms/demo", "a/b/c"),
            "projects.a.project",
        ),
        (
            "[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned() + &PROJECT.replace("demo-ci", "demo ci"),
            "projects.a.pipeline",
        ),
        ("[secrets]\nfile = \"s\"\n[projects.\"a b\"]\n".to_owned() + PROJECT, "projects.a b"),
        ("[secrets]\nfile = \"s\"\n".to_owned(), "projects"),
        (
            "[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned() + PROJECT + "buildspec = \"../x.yml\"\n",
            "projects.a.buildspec",
        ),
        ("[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned() + PROJECT + "triggers = []\n", "projects.a.triggers"),
        (
            "[secrets]\nfile = \"s\"\n[work]\ncompression_level = 0\n[projects.a]\n".to_owned() + PROJECT,
            "work.compression_level",
        ),
        (
            "[secrets]\nfile = \"s\"\n[work]\ncodebuild_buildspec = \"ci/../buildspec.yml\"\n[projects.a]\n".to_owned()
                + PROJECT,
            "work.codebuild_buildspec",
        ),
    ];
    for (text, key) in cases {
        let err = local(&text).expect_err(key).to_string();
        assert!(err.contains(&format!("`{key}`")), "{key}: {err}");
    }
    let err =
        local(&("[secrets]\nfile = \"s\"\n[projects.a]\n".to_owned() + PROJECT + "colour = 1\n")).expect_err("unknown");
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn lambda_environment() {
    let vars: BTreeMap<&str, String> = [
        (env::QUEUE_URL, "https://sqs.eu-west-1.amazonaws.com/1/q".to_owned()),
        (env::SECRET_ID, "pcb".to_owned()),
        (env::PROJECTS, format!("[demo-job]\n{PROJECT}")),
        (env::SOURCE_CIDRS, "192.0.2.0/24, 2001:db8::/32".to_owned()),
    ]
    .into_iter()
    .collect();
    let cfg = AcceptLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!(cfg.secrets_ttl, Duration::from_secs(300));
    assert!(cfg.accept.source_allowed(Some("192.0.2.7".parse().expect("ip"))));
    assert!(!cfg.accept.source_allowed(Some("198.51.100.1".parse().expect("ip"))));
    assert!(!cfg.accept.source_allowed(None));

    let missing = AcceptLambdaConfig::from_env(|k| if k == env::QUEUE_URL { None } else { vars.get(k).cloned() });
    assert!(missing.expect_err("missing").to_string().contains("PCB_QUEUE_URL"));
    let bad =
        AcceptLambdaConfig::from_env(
            |k| {
                if k == env::MAX_BODY_BYTES { Some("lots".into()) } else { vars.get(k).cloned() }
            },
        );
    assert!(bad.expect_err("bad").to_string().contains("PCB_MAX_BODY_BYTES"));
}

/// The retry schedule: 30 s, doubling, capped at 900 s by default in Lambda; a local
/// file's `retry_delay_ms`/`retry_max_ms` follow the same rule.
#[test]
fn retry_schedule_doubles_up_to_its_cap() {
    let schedule = RetrySchedule {
        first: Duration::from_secs(DEFAULT_RETRY_FIRST_SECONDS),
        max: Duration::from_secs(DEFAULT_RETRY_MAX_SECONDS),
    };
    let waits: Vec<u64> = (1..=8).map(|attempt| schedule.delay(attempt).as_secs()).collect();
    assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900, 900]);
    assert_eq!(schedule.delay(0), Duration::from_secs(30));
    assert_eq!(schedule.delay(u32::MAX), Duration::from_secs(900));
    // Five deliveries (the queue's maxReceiveCount): four waits, 450 s.
    assert_eq!(schedule.total(5), Duration::from_secs(450));
    assert_eq!(schedule.total(1), Duration::ZERO);

    let mut vars: BTreeMap<&str, String> = [
        (env::SECRET_ID, "pcb".to_owned()),
        (env::PROJECTS, format!("[demo-job]\n{PROJECT}")),
        (env::BUCKET, "pcb-sources".to_owned()),
    ]
    .into_iter()
    .collect();
    let cfg = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!(cfg.work.retry_schedule(), schedule);
    assert_eq!(cfg.queue_url, None);
    vars.insert(env::QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/1/pcb-builds".into());
    vars.insert(env::RETRY_FIRST_SECONDS, "10".into());
    vars.insert(env::RETRY_MAX_SECONDS, "60".into());
    let cfg = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!(cfg.queue_url.as_deref(), Some("https://sqs.us-east-1.amazonaws.com/1/pcb-builds"));
    let waits: Vec<u64> = (1..=4).map(|attempt| cfg.work.retry_schedule().delay(attempt).as_secs()).collect();
    assert_eq!(waits, [10, 20, 40, 60]);
    vars.insert(env::RETRY_MAX_SECONDS, "5".into());
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("max below first");
    assert!(err.to_string().contains("PCB_RETRY_MAX_SECONDS"), "{err}");
    vars.insert(env::RETRY_MAX_SECONDS, "43201".into());
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("above 12 hours");
    assert!(err.to_string().contains("PCB_RETRY_MAX_SECONDS"), "{err}");
    vars.insert(env::RETRY_MAX_SECONDS, "soon".into());
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("not a number");
    assert!(err.to_string().contains("PCB_RETRY_MAX_SECONDS"), "{err}");

    let local = |work: &str| {
        LocalConfig::parse(&format!("[secrets]\nfile = \"s\"\n[work]\n{work}\n[projects.a]\n{PROJECT}"), Path::new("/"))
    };
    let cfg = local("").expect("defaults");
    assert_eq!(
        cfg.work.retry_schedule(),
        RetrySchedule { first: Duration::from_secs(1), max: Duration::from_secs(DEFAULT_RETRY_MAX_SECONDS) }
    );
    let cfg = local("retry_delay_ms = 100\nretry_max_ms = 250").expect("set");
    let waits: Vec<u128> = (1..=4).map(|attempt| cfg.work.retry_schedule().delay(attempt).as_millis()).collect();
    assert_eq!(waits, [100, 200, 250, 250]);
    let err = local("retry_delay_ms = 100\nretry_max_ms = 50").expect_err("max below first");
    assert!(err.to_string().contains("work.retry_max_ms"), "{err}");
}

#[test]
fn work_lambda_environment() {
    let mut vars: BTreeMap<&str, String> = [
        (env::SECRET_ID, "pcb".to_owned()),
        (env::PROJECTS, format!("[demo-job]\n{PROJECT}")),
        (env::BUCKET, "pcb-sources".to_owned()),
    ]
    .into_iter()
    .collect();
    let cfg = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!((cfg.key_prefix.as_str(), cfg.source_action.as_str(), cfg.max_receive_count), ("sources", "Source", 5));
    assert_eq!(cfg.kms_key_id, None);
    assert_eq!(cfg.work.fetch_timeout, Duration::from_secs(300));
    assert_eq!(cfg.work.compression_level, crate::archive::DEFAULT_COMPRESSION_LEVEL);
    vars.insert(env::COMPRESSION_LEVEL, "9".into());
    assert_eq!(WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("9").work.compression_level, 9);
    vars.insert(env::COMPRESSION_LEVEL, "10".into());
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("10");
    assert!(err.to_string().contains("PCB_COMPRESSION_LEVEL"), "{err}");
    vars.remove(env::COMPRESSION_LEVEL);
    assert_eq!(cfg.work.codebuild_buildspec, DEFAULT_CODEBUILD_BUILDSPEC);
    vars.insert(env::CODEBUILD_BUILDSPEC, "ci/buildspec.yml".into());
    let cfg = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("ci/");
    assert_eq!(cfg.work.codebuild_buildspec, "ci/buildspec.yml");
    for bad in ["/buildspec.yml", "ci/", ".GIT/config", "a\\b.yml", "git~1/buildspec.yml", "buildspec.yml;1"] {
        vars.insert(env::CODEBUILD_BUILDSPEC, bad.into());
        let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err(bad);
        assert!(err.to_string().contains("PCB_CODEBUILD_BUILDSPEC"), "{bad}: {err}");
    }
    vars.remove(env::CODEBUILD_BUILDSPEC);
    vars.insert(env::MAX_RECEIVE_COUNT, "0".into());
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("zero");
    assert!(err.to_string().contains("PCB_MAX_RECEIVE_COUNT"), "{err}");
    vars.remove(env::MAX_RECEIVE_COUNT);
    vars.remove(env::BUCKET);
    let err = WorkLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("bucket");
    assert!(err.to_string().contains("PCB_BUCKET"), "{err}");
}

#[test]
fn report_settings_from_the_environment_and_the_file() {
    let mut vars: BTreeMap<&str, String> =
        [(env::SECRET_ID, "pcb".to_owned()), (env::PROJECTS, format!("[demo-job]\n{PROJECT}"))].into_iter().collect();
    let cfg = ReportLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!(cfg.report, ReportConfig::default());
    assert_eq!(cfg.report.flag_username, "AWS CodeBuild");
    vars.insert(env::FLAG_USERNAME, "Fedora CI".into());
    vars.insert(env::PAGURE_ATTEMPTS, "2".into());
    vars.insert(env::PAGURE_TIMEOUT_SECONDS, "3".into());
    let cfg = ReportLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("valid");
    assert_eq!(
        (cfg.report.flag_username.as_str(), cfg.report.retry.attempts, cfg.report.retry.timeout),
        ("Fedora CI", 2, Duration::from_secs(3))
    );
    vars.insert(env::PAGURE_ATTEMPTS, "0".into());
    let err = ReportLambdaConfig::from_env(|k| vars.get(k).cloned()).expect_err("zero attempts");
    assert!(err.to_string().contains("PCB_PAGURE_ATTEMPTS"), "{err}");

    let file =
        format!("[secrets]\nfile = \"s.json\"\n[report]\nflag_username = \"Local\"\n[projects.demo-job]\n{PROJECT}");
    let local = LocalConfig::parse(&file, Path::new("/")).expect("valid");
    assert_eq!(local.report.flag_username, "Local");
    let unknown = file.replace("flag_username", "flag_name");
    let err = LocalConfig::parse(&unknown, Path::new("/")).expect_err("unknown key");
    assert!(err.to_string().contains("flag_name"), "{err}");
}
