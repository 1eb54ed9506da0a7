//! One schema, two sources: the same setting read, defaulted and refused alike from the file
//! and the environment, each error naming the key as its source spells it.

use super::*;
use crate::config::source::Key;

/// A valid file with `[table] name = value` added (`value` in TOML).
fn file_with(key: &str, value: &str) -> String {
    let mut document: toml::Table =
        toml::from_str(&format!("[secrets]\nfile = \"s.json\"\n[projects.a]\n{PROJECT}")).expect("base");
    let value = toml::from_str::<toml::Table>(&format!("v = {value}")).expect("value")["v"].clone();
    match key.split_once('.') {
        Some((table, name)) => {
            let table = document.entry(table).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table.as_table_mut().expect("table").insert(name.to_owned(), value);
        }
        None => {
            document.insert(key.to_owned(), value);
        }
    }
    toml::to_string(&document).expect("toml")
}

/// The work Lambda reads every setting the two sources share.
fn env_with(extra: &[(&'static str, &str)]) -> Result<WorkLambdaConfig, ConfigError> {
    let mut vars: BTreeMap<&str, String> = [
        (env::SECRET_ID, "pcb".to_owned()),
        (env::PROJECTS, format!("[a]\n{PROJECT}")),
        (env::BUCKET, "pcb-sources".to_owned()),
    ]
    .into_iter()
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    WorkLambdaConfig::from_env(|k| vars.get(k).cloned())
}

fn refused(result: Result<impl std::fmt::Debug, ConfigError>, what: &str) -> (String, String) {
    match result.expect_err(what) {
        ConfigError::Invalid { key, message } => (key, message),
        other => panic!("{what}: {other}"),
    }
}

/// A value against a setting's rule: refused by both sources, with the same message, each
/// naming the key its own way.
#[test]
fn the_same_rule_refuses_a_value_from_either_source() {
    // (the setting, its value in the file, in the environment)
    let cases: [(Key, &str, &str); 16] = [
        (schema::MAX_BODY_BYTES.key, "1", "1"),
        (schema::MAX_ATTEMPTS.key, "0", "0"),
        (schema::RETRY_FIRST.key, "43201000", "43201"),
        (schema::RETRY_MAX.key, "43201000", "43201"),
        (schema::COMPRESSION_LEVEL.key, "10", "10"),
        (schema::CODEBUILD_BUILDSPEC.key, "\"ci/../buildspec.yml\"", "ci/../buildspec.yml"),
        (schema::PAGURE_ATTEMPTS.key, "11", "11"),
        (schema::PAGURE_TIMEOUT.key, "0", "0"),
        (schema::SWEEP_AFTER.key, "59", "59"),
        // Checked as the one rule a deployment's registry could hold.
        (schema::PAGURE_URL.key, "\"ftp://pagure.io\"", "ftp://pagure.io"),
        (schema::GIT_URL.key, "\"ftp://pagure.io\"", "ftp://pagure.io"),
        (schema::PIPELINE.key, "\"no spaces\"", "no spaces"),
        (schema::UNTRUSTED_PIPELINE.key, "\"no spaces\"", "no spaces"),
        (schema::PIPELINE_PREFIX.key, "\"no spaces-\"", "no spaces-"),
        // Parsed alike: networks, projects.
        (schema::SOURCE_CIDRS.key, "[\"10.0.0.0/33\"]", "10.0.0.0/33"),
        (schema::REGISTRY_TTL.key, "\"soon\"", "soon"),
    ];
    for (key, file_value, env_value) in cases {
        let (file_key, env_key) = (key.file.expect("file"), key.env.expect("env"));
        let registry = file_key.starts_with("registry.");
        let mut text = file_with(file_key, file_value);
        if registry {
            text = text.replace("[registry]\n", "[registry]\nfile = \"registry.json\"\n");
        }
        let (spelled, file_message) = refused(local(&text), file_key);
        assert_eq!(spelled, file_key, "{file_message}");
        let mut vars = vec![(env_key, env_value)];
        if registry {
            vars.push((env::REGISTRY_BUCKET, "pcb-registry"));
        }
        let (spelled, env_message) = refused(env_with(&vars), env_key);
        assert_eq!(spelled, env_key, "{env_message}");
        if !matches!(file_key, "accept.source_cidrs" | "registry.ttl_seconds") {
            assert_eq!(file_message, env_message, "{file_key} and {env_key}: one rule");
        }
    }
}

/// A value of the wrong type names the key too (it was once a whole-file serde error).
#[test]
fn wrong_types_in_the_file_name_the_key() {
    for (key, value, words) in [
        ("accept.max_body_bytes", "\"lots\"", "must be a whole number, not a string"),
        ("accept.max_body_bytes", "-1", "not a whole number from 0"),
        ("work.compression_level", "300", "not a whole number from 0 to 255"),
        ("accept.rebuild_phrases", "\"one\"", "must be an array"),
        ("accept.rebuild_phrases", "[1]", "must be a string"),
        ("report.flag_username", "true", "must be a string, not a boolean"),
        ("server.listen", "8080", "must be a string"),
        ("projects", "3", "must be a table"),
    ] {
        let (spelled, message) = refused(local(&file_with(key, value)), key);
        assert_eq!(spelled, key);
        assert!(message.contains(words), "{key} = {value}: {message}");
    }
    let (spelled, message) = refused(env_with(&[(env::MAX_BODY_BYTES, "lots")]), "env");
    assert_eq!(spelled, env::MAX_BODY_BYTES);
    assert!(message.contains("`lots` is not a whole number"), "{message}");
}

#[test]
fn unknown_keys_and_tables_are_refused() {
    let (key, message) = refused(local(&file_with("work.colour", "1")), "unknown key");
    assert_eq!(key, "work.colour");
    assert!(
        message.contains("[work] keys are: artifacts_dir,") && message.contains("codebuild_buildspec"),
        "{message}"
    );
    let (key, message) = refused(local(&file_with("colour", "1")), "unknown table");
    assert_eq!(key, "colour");
    assert!(message.contains("accept, projects, registry, report, secrets, server, work"), "{message}");
    let (key, message) = refused(local(&file_with("work", "3")), "not a table");
    assert_eq!((key.as_str(), message.as_str()), ("work", "must be a table, [work]"));
    // An environment-only setting has no key in the file.
    let (key, _) = refused(local(&file_with("secrets.id", "\"pcb\"")), "env only");
    assert_eq!(key, "secrets.id");
    let err = local("[secrets\n").expect_err("syntax");
    assert!(matches!(err, ConfigError::Syntax(_)), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn the_projects_table_is_named_inside_each_source() {
    let bad = PROJECT.replace("demo-ci", "demo ci");
    let (key, file_message) = refused(local(&format!("[secrets]\nfile = \"s\"\n[projects.a]\n{bad}")), "file");
    assert_eq!(key, "projects.a.pipeline");
    let (key, env_message) = refused(env_with(&[(env::PROJECTS, &format!("[a]\n{bad}"))]), "env");
    assert_eq!(key, "PCB_PROJECTS (a.pipeline)");
    assert_eq!(file_message, env_message);
    let (key, message) = refused(env_with(&[(env::PROJECTS, &format!("[a]\n{PROJECT}colour = 1\n"))]), "unknown");
    assert_eq!(key, "PCB_PROJECTS (a)");
    assert!(message.contains("colour"), "{message}");
    let (key, _) = refused(env_with(&[(env::PROJECTS, "[a")]), "syntax");
    assert_eq!(key, env::PROJECTS);
    // An untrusted pipeline that another project trusts.
    let two = format!("[a]\n{PROJECT}untrusted_pipeline = \"b-ci\"\n[b]\n{}", PROJECT.replace("demo-ci", "b-ci"));
    let (key, message) = refused(env_with(&[(env::PROJECTS, &two)]), "trusted");
    assert_eq!(key, "PCB_PROJECTS (a.untrusted_pipeline)");
    assert!(message.contains("`b-ci` is a trusted pipeline"), "{message}");
    let file = format!("[secrets]\nfile = \"s\"\n[projects]\n{}", two.replace('[', "[projects."));
    assert_eq!(refused(local(&file), "trusted").0, "projects.a.untrusted_pipeline");
    // Neither projects nor a registry.
    let (key, message) = refused(env_with(&[(env::PROJECTS, "")]), "none");
    assert_eq!(
        (key.as_str(), message.as_str()),
        ("PCB_PROJECTS", "configure at least one project, or a project registry (PCB_REGISTRY_BUCKET)")
    );
    let (key, message) = refused(local("[secrets]\nfile = \"s\"\n"), "none");
    assert_eq!(
        (key.as_str(), message.as_str()),
        ("projects", "configure at least one project, or a project registry (registry.file)")
    );
}

/// Local mode retries and re-reads its registry quickly; the Lambdas do not.
#[test]
fn defaults_that_differ_by_source() {
    let file = local(&file_with("registry.file", "\"r.json\"")).expect("file");
    let lambda = env_with(&[(env::REGISTRY_BUCKET, "pcb-registry")]).expect("env");
    assert_eq!((file.work.retry_delay, lambda.work.retry_delay), (Duration::from_secs(1), Duration::from_secs(30)));
    assert_eq!(file.work.retry_max, lambda.work.retry_max);
    let ttl = |accept: &AcceptConfig| accept.registry.as_ref().expect("registry").ttl;
    assert_eq!(
        (ttl(&file.accept), ttl(&lambda.accept)),
        (Duration::from_secs(2), crate::registry::DEFAULT_REGISTRY_TTL)
    );
    assert_eq!(
        file.accept.registry.as_ref().map(|r| &r.location),
        Some(&RegistryLocation::File("/etc/pcb/r.json".into()))
    );
    assert_eq!(
        lambda.accept.registry.as_ref().map(|r| &r.location),
        Some(&RegistryLocation::S3 { bucket: "pcb-registry".into(), key: "registry.json".into() })
    );
    // Everything else is the same.
    let (file, lambda) = (local(&file_with("work.max_attempts", "5")).expect("file"), env_with(&[]).expect("env"));
    assert_eq!(file.report, lambda.report);
    assert_eq!(file.accept.max_body_bytes, lambda.accept.max_body_bytes);
    assert_eq!(file.accept.rebuild_phrases, lambda.accept.rebuild_phrases);
    let same = |w: &WorkConfig| WorkConfig {
        artifacts_dir: PathBuf::new(),
        retry_delay: Duration::ZERO,
        s3_bucket: None,
        ..w.clone()
    };
    assert_eq!(same(&file.work), same(&lambda.work));
}

/// Settings only the environment has.
#[test]
fn environment_only_settings() {
    let accept = |extra: &[(&'static str, &str)]| {
        let mut vars: BTreeMap<&str, String> = [
            (env::QUEUE_URL, "https://sqs/q".to_owned()),
            (env::SECRET_ID, "pcb".to_owned()),
            (env::PROJECTS, format!("[a]\n{PROJECT}")),
        ]
        .into_iter()
        .collect();
        for (k, v) in extra {
            vars.insert(k, (*v).to_owned());
        }
        AcceptLambdaConfig::from_env(|k| vars.get(k).cloned())
    };
    let cfg = accept(&[]).expect("defaults");
    assert_eq!((cfg.queue_url.as_str(), cfg.secret_id.as_str(), cfg.secret_shards), ("https://sqs/q", "pcb", 1));
    assert_eq!(cfg.secrets_ttl, Duration::from_secs(300));
    let cfg = accept(&[(env::SECRETS_TTL_SECONDS, "60"), (env::SECRET_SHARDS, "3")]).expect("set");
    assert_eq!((cfg.secrets_ttl, cfg.secret_shards), (Duration::from_secs(60), 3));
    for (vars, key, words) in [
        (&[(env::QUEUE_URL, " ")][..], env::QUEUE_URL, "is required and not set"),
        (&[(env::SECRET_ID, "")][..], env::SECRET_ID, "is required and not set"),
        (&[(env::SECRETS_TTL_SECONDS, "soon")][..], env::SECRETS_TTL_SECONDS, "not a whole number"),
        (&[(env::SECRET_SHARDS, "0")][..], env::SECRET_SHARDS, "must be 1 to 200"),
        (&[(env::SECRET_SHARDS, "201")][..], env::SECRET_SHARDS, "must be 1 to 200"),
        (
            &[(env::SECRET_SHARDS, "2"), (env::SECRET_ID, "arn:aws:secretsmanager:eu-west-1:1:secret:pcb")][..],
            env::SECRET_ID,
            "not its ARN, when PCB_SECRET_SHARDS is above 1",
        ),
    ] {
        let (spelled, message) = refused(accept(vars), key);
        assert_eq!(spelled, key);
        assert!(message.contains(words), "{key}: {message}");
    }

    let cfg = env_with(&[]).expect("work");
    assert_eq!(
        (cfg.bucket.as_str(), cfg.key_prefix.as_str(), cfg.source_action.as_str()),
        ("pcb-sources", "sources", "Source")
    );
    assert_eq!((cfg.kms_key_id.as_deref(), cfg.queue_url.as_deref()), (None, None));
    assert_eq!(cfg.work.artifacts_dir, Path::new("/tmp/artifacts"), "file-only: its default");
    let cfg = env_with(&[
        (env::KEY_PREFIX, "p"),
        (env::KMS_KEY_ID, "k"),
        (env::SOURCE_ACTION, "Src"),
        (env::REGISTRY_BUCKET, "r"),
        (env::REGISTRY_KEY, "projects.json"),
    ])
    .expect("set");
    assert_eq!(
        (cfg.key_prefix.as_str(), cfg.kms_key_id.as_deref(), cfg.source_action.as_str()),
        ("p", Some("k"), "Src")
    );
    let location = cfg.accept.registry.map(|r| r.location);
    assert_eq!(location, Some(RegistryLocation::S3 { bucket: "r".into(), key: "projects.json".into() }));
    let (key, _) = refused(env_with(&[(env::BUCKET, "")]), "bucket");
    assert_eq!(key, env::BUCKET);

    // The CLI against a deployment needs every deployment value.
    let full: BTreeMap<&str, String> = [
        (env::SECRET_ID, "pcb"),
        (env::SECRET_SHARDS, "1"),
        (env::REGISTRY_BUCKET, "r"),
        (env::PAGURE_URL, "https://pagure.io/"),
        (env::GIT_URL, "https://pagure.io"),
        (env::PIPELINE, "pcb-trusted"),
        (env::UNTRUSTED_PIPELINE, "pcb-untrusted"),
        (env::PIPELINE_PREFIX, "pcb-"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    assert!(AdminConfig::from_env(|k| full.get(k).cloned()).is_ok());
    for missing in full.keys().filter(|k| **k != env::SECRET_ID) {
        let err = AdminConfig::from_env(|k| if k == *missing { None } else { full.get(k).cloned() });
        assert_eq!(refused(err, missing), (missing.to_string(), "is required and not set".to_owned()));
    }
}

/// Settings only the file has.
#[test]
fn file_only_settings() {
    let cfg = local(&file_with("work.s3_endpoint", "\"http://127.0.0.1:5000\"")).expect("file");
    assert_eq!(cfg.work.s3_endpoint.as_deref(), Some("http://127.0.0.1:5000"));
    assert_eq!(cfg.work.artifacts_dir, Path::new("/etc/pcb/artifacts"), "relative to the file");
    assert_eq!(
        local(&file_with("work.artifacts_dir", "\"/srv/a\"")).expect("abs").work.artifacts_dir,
        Path::new("/srv/a")
    );
    assert_eq!(local(&file_with("work.s3_bucket", "\"\"")).expect("blank").work.s3_bucket, None);
    assert_eq!(local(&file_with("server.queue_capacity", "7")).expect("capacity").queue_capacity, 7);
    for (key, value, message) in [
        ("server.queue_capacity", "0", "must be at least 1"),
        ("server.listen", "\"nope\"", "`nope` is not an address such as 127.0.0.1:8080"),
        ("registry.ttl_seconds", "5", "is required in [registry]"),
    ] {
        let expected = if key.starts_with("registry") { "registry.file" } else { key };
        assert_eq!(refused(local(&file_with(key, value)), key), (expected.to_owned(), message.to_owned()));
    }
    let (key, message) = refused(local(&format!("[projects.a]\n{PROJECT}")), "secrets");
    assert_eq!((key.as_str(), message.as_str()), ("secrets.file", "is required and not set"));
}

/// Every setting is spelled in at least one source, each spelling once. (A blank variable is
/// unset, so `report.flag_username = ""` is refused but an empty `PCB_FLAG_USERNAME` is its
/// default.)
#[test]
fn the_schema_spells_every_key_once() {
    let mut seen = std::collections::BTreeSet::new();
    for key in schema::ALL {
        assert!(key.file.is_some() || key.env.is_some(), "{key:?}");
        if let Some(file) = key.file {
            assert!(file == "projects" || file.split('.').count() == 2, "{file}");
            assert!(seen.insert(file), "{file} twice");
        }
        if let Some(env) = key.env {
            assert!(env.starts_with("PCB_") && env.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{env}");
            assert!(seen.insert(env), "{env} twice");
        }
    }
}
