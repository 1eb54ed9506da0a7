//! The command on a deployment: the S3 registry and Secrets Manager on moto.

use super::*;

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
        Err(RegistryError::Unavailable(text)) => assert!(text.to_string().contains("AccessDenied"), "{text}"),
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
