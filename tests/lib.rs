//! Test harness: a moto server on a free loopback port, the project's Python venv, the
//! Pagure captures, and local mode started in-process on an ephemeral port.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_core::config::LocalConfig;
use bridge_core::model::BuildRequest;
use tokio::sync::{mpsc, oneshot};

pub mod fake_pagure;
pub mod git_server;
pub mod lambda;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_owned()
}

/// The venv `scripts/setup-test-env` made (`$PCB_VENV` or `.venv`). Tests that need it fail
/// with a message saying how to make it: they are never skipped.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("PCB_VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv"));
    assert!(
        venv.join("bin/moto_server").exists(),
        "{} has no moto_server: run scripts/setup-test-env (scripts/test does)",
        venv.display()
    );
    venv
}

pub fn fixture(relative: &str) -> Vec<u8> {
    let path = root().join("tests/fixtures/pagure").join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Pagure web-hook capture: exact body bytes, headers and the hook token that signed them.
#[derive(Debug)]
pub struct WebhookCapture {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub hook_token: String,
}

pub fn webhook_capture(topic: &str) -> WebhookCapture {
    let meta: serde_json::Value =
        serde_json::from_slice(&fixture(&format!("webhooks/{topic}.headers.json"))).expect("headers json");
    let headers = meta["headers"]
        .as_object()
        .expect("headers")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("header value").to_owned()))
        .collect();
    WebhookCapture {
        body: fixture(&format!("webhooks/{topic}.body.json")),
        headers,
        hook_token: meta["hook_token"].as_str().expect("hook_token").to_owned(),
    }
}

/// Every request pagure-ci made to a Jenkins-style endpoint, in order.
pub fn jenkins_captures() -> Vec<serde_json::Value> {
    String::from_utf8(fixture("ci-triggers/requests.jsonl"))
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("jsonl"))
        .collect()
}

/// The hook token of the captures' Pagure project `demo`, and its Pagure CI token.
pub const CAPTURE_HOOK_TOKEN: &str = "UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7";
pub const CAPTURE_CI_TOKEN: &str = "MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9P";

/// The project the captures come from, as configuration (`[projects.demo-job]`).
pub const CAPTURE_PROJECT_TOML: &str = include_str!("fixtures/capture-project.toml");

/// The capture project under another key, with extra settings appended (e.g. `triggers`).
pub fn capture_project_as(key: &str, extra: &str) -> String {
    format!("{}{extra}\n", CAPTURE_PROJECT_TOML.replace("[projects.demo-job]", &format!("[projects.\"{key}\"]")))
}

pub fn capture_secrets_json() -> String {
    serde_json::json!({"projects": {"demo-job": {
        "trigger_token": CAPTURE_CI_TOKEN,
        "hook_token": CAPTURE_HOOK_TOKEN,
        "pagure_api_token": "PAGUREAPITOKEN0000000000000000000000000000000000000000000000000"
    }}})
    .to_string()
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `moto_server` on 127.0.0.1, stopped (killed) when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        Moto { child: Self::spawn(port), endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Kills the server: calls fail with a connection error until [`Moto::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A new, empty server on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        self.child = Self::spawn(port);
    }

    fn spawn(port: u16) -> Child {
        let child = Command::new(venv().join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// An S3 client on this server, with a new versioned bucket (as CodePipeline's S3
    /// source needs).
    pub async fn versioned_bucket(&self, bucket: &str) -> aws_sdk_s3::Client {
        use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
        let sdk = self.sdk_config().await;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        s3.create_bucket().bucket(bucket).send().await.expect("bucket");
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build(),
            )
            .send()
            .await
            .expect("versioning");
        s3
    }

    /// The SDK configuration a Lambda would have, pointed at this server.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint).await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "tests"))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(5)).build())
        .load()
        .await
}

/// Local mode running in this process on an ephemeral port, with the queue's receiving end
/// kept by the test instead of the log consumer.
#[derive(Debug)]
pub struct LocalBridge {
    pub addr: SocketAddr,
    pub queued: mpsc::Receiver<BuildRequest>,
    stop: Option<oneshot::Sender<()>>,
    /// The configuration's folder (its secrets file), removed with the bridge.
    _folder: tempfile::TempDir,
}

impl LocalBridge {
    /// `config` is a local configuration file's text without `[secrets]` (added here).
    pub async fn start(config: &str, secrets_json: &str) -> LocalBridge {
        let folder = tempfile::Builder::new().prefix("pcb-test-").tempdir().expect("temp dir");
        std::fs::write(folder.path().join("secrets.json"), secrets_json).expect("write secrets");
        let text = format!("[server]\nlisten = \"127.0.0.1:0\"\n[secrets]\nfile = \"secrets.json\"\n{config}");
        let config = LocalConfig::parse(&text, folder.path()).expect("test config");
        let listener = tokio::net::TcpListener::bind(config.listen).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (service, _worker, queued) =
            pagure_ci_bridge::build_local(&config, &format!("http://{addr}/")).await.expect("local service");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(pagure_ci_bridge::serve(listener, Arc::new(service), async {
            let _ = stopped.await;
        }));
        LocalBridge { addr, queued, stop: Some(stop), _folder: folder }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits briefly for the next queued request.
    pub async fn next_queued(&mut self) -> BuildRequest {
        tokio::time::timeout(Duration::from_secs(5), self.queued.recv())
            .await
            .expect("a request was queued within 5 s")
            .expect("queue open")
    }

    pub fn nothing_queued(&mut self) -> bool {
        self.queued.try_recv().is_err()
    }
}

impl Drop for LocalBridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Every test process logs at TRACE, as JSON lines, to `target/test-logs/e2e-<pid>.jsonl`;
/// after the tests, `scripts/check-test-logs` searches those files for every secret the
/// tests use. Called by the harness's common entry points, so every test is covered; a test
/// that captures its own logs (`capture_logs`) asserts on them itself.
pub fn trace_to_file() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let dir = root().join("target/test-logs");
        std::fs::create_dir_all(&dir).expect("test log folder");
        let file = std::fs::File::create(dir.join(format!("e2e-{}.jsonl", std::process::id()))).expect("test log");
        // All of TRACE but the SDK's request-body chunks (archive bytes, 16 MB of log per
        // multipart upload, which slow it past the SDK's timeouts).
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::TRACE)
            .with_target("aws_runtime::content_encoding", tracing::Level::DEBUG);
        let subscriber = tracing_subscriber::layer::SubscriberExt::with(
            tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(std::sync::Mutex::new(file))
                .finish(),
            filter,
        );
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// A fresh empty folder under the system temp folder, `pcb-<label>-<random>`. It outlives
/// the test (servers a test started may still read it); a test that wants it gone removes it.
pub fn temp_dir(label: &str) -> PathBuf {
    trace_to_file();
    tempfile::Builder::new().prefix(&format!("pcb-{label}-")).tempdir().expect("temp dir").keep()
}

/// Captures everything logged (at TRACE) while `f` runs on this thread.
pub fn capture_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    use std::sync::Mutex;
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
    (result, text)
}

/// A request for the handler, built field by field in tests.
pub fn trigger_request(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> bridge_core::accept::TriggerHttpRequest {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    bridge_core::accept::TriggerHttpRequest {
        method: method.parse().expect("method"),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: map,
        body: bytes::Bytes::copy_from_slice(body),
        source_ip: Some("127.0.0.1".parse().expect("ip")),
        scheme: "http",
    }
}

/// The handler with an in-process queue and static secrets, from configuration text
/// (without `[secrets]`) and a secrets document.
pub fn local_service(
    config: &str,
    secrets_json: &str,
) -> (pagure_ci_bridge::LocalAcceptService, mpsc::Receiver<BuildRequest>) {
    let text = format!("[secrets]\nfile = \"unused.json\"\n{config}");
    let config = LocalConfig::parse(&text, Path::new("/nonexistent")).expect("test config");
    let secrets = bridge_local::StaticSecrets::new(
        bridge_core::ports::SecretsDocument::parse(secrets_json).expect("secrets json"),
    );
    let (queue, receiver) = bridge_local::InProcessQueue::new(config.queue_capacity);
    (bridge_core::accept::AcceptService::new(config.accept, queue, secrets, bridge_pagure::PagureWebhooks), receiver)
}

/// Headers Pagure sends with a web-hook, signed with `hook_token`.
pub fn webhook_headers(topic: &str, body: &[u8], hook_token: &str) -> Vec<(String, String)> {
    let key = bridge_core::auth::Secret::new(hook_token);
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-Pagure".into(), "http://127.0.0.1:5600/".into()),
        ("X-Pagure-project".into(), "demo".into()),
        ("X-Pagure-Topic".into(), topic.into()),
        ("X-Pagure-Signature".into(), bridge_core::auth::sign1(body, &key)),
        ("X-Pagure-Signature-256".into(), bridge_core::auth::sign256(body, &key)),
    ]
}

/// libgit2's connect and I/O timeouts for every test of the process: 6 s, so that a git
/// host that hangs fails a fetch quickly, yet a server packing 50 MB while the other tests
/// load both cores is not taken for a hang. Process-wide C globals: set once, before any fetch.
pub fn libgit2_timeouts() {
    static TIMEOUTS: std::sync::Once = std::sync::Once::new();
    TIMEOUTS.call_once(|| bridge_git::init_libgit2(Duration::from_secs(6), Duration::from_secs(6)).expect("timeouts"));
}

/// An HTTP client for tests. reqwest is built without a default TLS provider (the bridge
/// brings rustls on aws-lc-rs itself), so install that one for the process first.
pub fn http() -> reqwest::Client {
    trace_to_file();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::new()
}
