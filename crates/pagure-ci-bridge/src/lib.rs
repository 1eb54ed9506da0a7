//! Local mode: the accept handler served over plain HTTP with an in-process queue, the
//! work stage consuming it, archives stored in a folder, and the report stage taking
//! simulated CodeBuild/CodePipeline events: the bridge on one machine with nothing but a
//! configuration file.
//!
//! Besides the accept routes, the local server answers `GET /runs/<execution-id>` (what a
//! local "pipeline run" would have built: the flags link there) and, from loopback only,
//! `POST /events` (an EventBridge event, handled as the report Lambda would).
//!
//! The secrets file is read again when it changes (looked at at most once a second); the
//! local runs are kept in `<artifacts_dir>/runs/`, so `/runs/<id>` outlives a restart.

pub mod command_line;
pub mod projects;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bridge_core::accept::{AcceptService, TriggerHttpRequest};
use bridge_core::config::LocalConfig;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{ArtifactMetadata, ArtifactStore, Queue, Secrets, StoreError, StoredArtifact, StoredMarker};
use bridge_core::report::ReportService;
use bridge_core::work::{Disposition, SourceFetcher, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{DirectoryStore, InProcessQueue, LocalPipeline, StaticSecrets};
use bridge_pagure::PagureClient;
use bridge_pagure::{PagureForge, PagureWebhooks};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The service local mode runs.
pub type LocalAcceptService = AcceptService<InProcessQueue, StaticSecrets>;

/// Local mode posts flags like the Lambdas (or logs them for a project without a token).
pub type LocalFlags = PagureForge<StaticSecrets>;

/// The work stage local mode runs.
pub type LocalWorker = Worker<GitFetcher, LocalStore, LocalPipeline, LocalFlags, StaticSecrets>;

/// The report stage local mode runs: its pipeline lookups read the local runs.
pub type LocalReportService = ReportService<LocalFlags, LocalPipeline>;

/// Something the local server can serve.
pub trait HttpApp: Send + Sync + 'static {
    /// Bodies larger than this are refused (413) without being held in memory.
    fn max_body_bytes(&self) -> usize;
    fn handle(&self, request: TriggerHttpRequest) -> impl Future<Output = hyper::Response<Bytes>> + Send;
}

impl<Q: Queue + 'static, S: Secrets + 'static> HttpApp for AcceptService<Q, S> {
    fn max_body_bytes(&self) -> usize {
        self.config().max_body_bytes
    }

    fn handle(&self, request: TriggerHttpRequest) -> impl Future<Output = hyper::Response<Bytes>> + Send {
        AcceptService::handle(self, request)
    }
}

/// Local mode's server: the accept routes, plus `/runs/<id>` and `/events`.
#[derive(Debug)]
pub struct LocalApp {
    pub accept: LocalAcceptService,
    pub pipeline: LocalPipeline,
    pub report: LocalReportService,
}

impl HttpApp for LocalApp {
    fn max_body_bytes(&self) -> usize {
        self.accept.config().max_body_bytes
    }

    async fn handle(&self, request: TriggerHttpRequest) -> hyper::Response<Bytes> {
        use bridge_core::error::{Rejection, json_response};
        use hyper::{Method, StatusCode};
        if let Some(id) = request.path.strip_prefix("/runs/") {
            return match (&request.method, self.pipeline.run(id)) {
                (&Method::GET, Some(run)) => {
                    json_response(StatusCode::OK, &serde_json::to_value(run).unwrap_or_default())
                }
                (&Method::GET, None) => {
                    Rejection::new(StatusCode::NOT_FOUND, "not_found", format!("no local run `{id}`")).into_response()
                }
                _ => Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET")
                    .with_header(hyper::header::ALLOW, "GET")
                    .into_response(),
            };
        }
        if request.path != "/events" {
            return self.accept.handle(request).await;
        }
        if request.method != Method::POST {
            return Rejection::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "POST an EventBridge event")
                .with_header(hyper::header::ALLOW, "POST")
                .into_response();
        }
        // Anyone reaching /events could place flags with the projects' tokens.
        if !request.source_ip.is_some_and(|ip| ip.is_loopback()) {
            return Rejection::new(
                StatusCode::FORBIDDEN,
                "loopback_only",
                "/events only takes events from this machine",
            )
            .into_response();
        }
        let event: serde_json::Value = match serde_json::from_slice(&request.body) {
            Ok(event) => event,
            Err(e) => return Rejection::invalid("invalid_json", format!("the event is not JSON: {e}")).into_response(),
        };
        match bridge_core::report::invoke::handle(&self.report, event).await {
            Ok(answer) => json_response(StatusCode::OK, &answer),
            Err(bridge_core::report::invoke::HandleError::Event(e)) => {
                Rejection::invalid("invalid_event", e.to_string()).into_response()
            }
            Err(bridge_core::report::invoke::HandleError::Report(e)) => {
                Rejection::new(StatusCode::BAD_GATEWAY, "report_failed", e.to_string()).into_response()
            }
        }
    }
}

/// Local mode stores archives in a folder, or in S3 when `work.s3_bucket` is set.
#[derive(Debug)]
pub enum LocalStore {
    Directory(DirectoryStore),
    S3(bridge_aws::S3Store),
}

impl LocalStore {
    /// The store the configuration asks for.
    pub async fn from_config(work: &bridge_core::config::WorkConfig) -> Self {
        let Some(bucket) = &work.s3_bucket else {
            return LocalStore::Directory(DirectoryStore::new(&work.artifacts_dir));
        };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &work.s3_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let sdk = loader.load().await;
        // Emulators answer on path-style URLs only.
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
        LocalStore::S3(bridge_aws::S3Store::new(s3, bucket, bridge_aws::Encryption::S3Managed))
    }
}

impl ArtifactStore for LocalStore {
    async fn put_archive(
        &self,
        key: &str,
        path: &Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        match self {
            LocalStore::Directory(store) => store.put_archive(key, path, metadata).await,
            LocalStore::S3(store) => store.put_archive(key, path, metadata).await,
        }
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        match self {
            LocalStore::Directory(store) => store.put_marker(key, content).await,
            LocalStore::S3(store) => store.put_marker(key, content).await,
        }
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self {
            LocalStore::Directory(store) => store.marker(key).await,
            LocalStore::S3(store) => store.marker(key).await,
        }
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        match self {
            LocalStore::Directory(store) => store.create_marker(key, content).await,
            LocalStore::S3(store) => store.create_marker(key, content).await,
        }
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        match self {
            LocalStore::Directory(store) => store.replace_marker(key, content, seen).await,
            LocalStore::S3(store) => store.replace_marker(key, content, seen).await,
        }
    }
}

/// Builds the local services from a configuration file: the server, the worker, and the
/// queue's receiving end. `public_url` is where the server is reached (run links use it).
pub async fn build_local(
    config: &LocalConfig,
    public_url: &str,
) -> anyhow::Result<(LocalApp, LocalWorker, mpsc::Receiver<BuildRequest>)> {
    let secrets = match std::env::var("PCB_SECRETS_JSON") {
        Ok(text) if !text.trim().is_empty() => {
            StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(&text).context("PCB_SECRETS_JSON")?)
        }
        _ => StaticSecrets::from_file(&config.secrets_file)
            .with_context(|| format!("secrets file {} (set secrets.file)", config.secrets_file.display()))?,
    };
    let (queue, receiver) = InProcessQueue::new(config.queue_capacity);
    let work = &config.work;
    let settings = WorkSettings::with_limits(work);
    // The flags link to /runs/<id>: keep the runs next to the archives, so that the links
    // still answer after a restart.
    let runs_dir = work.artifacts_dir.join("runs");
    let pipeline = LocalPipeline::new(public_url)
        .kept_in(&runs_dir)
        .with_context(|| format!("local runs in {} (work.artifacts_dir)", runs_dir.display()))?;
    let accept = projects::with_registry(&config.accept);
    let flags = PagureForge::from_config(&config.report, accept.projects.clone(), secrets.clone())?;
    let worker = Worker::new(
        accept.clone(),
        settings,
        GitFetcher::default(),
        LocalStore::from_config(work).await,
        pipeline.clone(),
        flags.clone(),
        secrets.clone(),
    );
    let app = LocalApp {
        accept: AcceptService::new(accept.clone(), queue, secrets, PagureWebhooks),
        report: ReportService::new(accept, flags, pipeline.clone()),
        pipeline,
    };
    Ok((app, worker, receiver))
}

/// After a body is found too large, up to this much more is read and thrown away (for at
/// most [`DRAIN_TIME`]) so that the client, still sending, gets to read the 413 instead of a
/// connection reset.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads at most `limit + 1` bytes of a body: enough to tell the handler it is too large
/// without holding an arbitrarily large upload in memory. The flag says whether the body was
/// read to its end (if not, the connection cannot carry another request).
async fn read_capped(mut body: Incoming, limit: usize) -> (Bytes, bool) {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return (collected.freeze(), false);
        };
        if let Ok(data) = frame.into_data() {
            let room = limit + 1 - collected.len();
            collected.extend_from_slice(&data[..data.len().min(room)]);
            if collected.len() > limit {
                let drained = tokio::time::timeout(DRAIN_TIME, drain(&mut body)).await.unwrap_or(false);
                return (collected.freeze(), drained);
            }
        }
    }
    (collected.freeze(), true)
}

/// Discards the rest of a body; true when it ended within [`DRAIN_BYTES`].
async fn drain(body: &mut Incoming) -> bool {
    let mut discarded = 0usize;
    while let Some(frame) = body.frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(data)) => discarded += data.len(),
            Ok(Err(_)) => {}
            Err(_) => return false,
        }
        if discarded > DRAIN_BYTES {
            return false;
        }
    }
    true
}

async fn answer<A: HttpApp>(
    service: Arc<A>,
    peer: SocketAddr,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let (body, complete) = read_capped(body, service.max_body_bytes()).await;
    let request = TriggerHttpRequest {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        method: parts.method,
        headers: parts.headers,
        body,
        source_ip: Some(peer.ip()),
        scheme: "http",
    };
    let mut response = service.handle(request).await;
    if !complete {
        // The rest of the body is still on the wire: the connection cannot carry another
        // request, so tell the client instead of letting its next request fail.
        response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    }
    Ok(response.map(Full::new))
}

/// Serves `service` on `listener` until `shutdown` completes. Each connection is HTTP/1.1
/// with keep-alive, handled on its own task.
pub async fn serve<A: HttpApp>(listener: TcpListener, service: Arc<A>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request| answer(service.clone(), peer, request));
            if let Err(error) = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}

/// Local mode's consumer: each request through the worker, one at a time; a transient
/// failure is tried again after a delay that doubles, up to `max_attempts` deliveries, as
/// SQS would redeliver it.
pub async fn consume<Src, St, P, R, S>(
    mut receiver: mpsc::Receiver<BuildRequest>,
    worker: Arc<Worker<Src, St, P, R, S>>,
    max_attempts: u32,
    first_delay: std::time::Duration,
) where
    Src: SourceFetcher,
    St: bridge_core::ports::ArtifactStore,
    P: bridge_core::ports::PipelineStarter,
    R: bridge_core::forge::Forge,
    S: Secrets,
{
    while let Some(request) = receiver.recv().await {
        // The request's span, as the work Lambda's (ERROR level: enabled at any log level).
        let span = tracing::error_span!(
            "work",
            request_id = %request.request_id,
            project = %request.project.key,
            cause = %request.cause.as_trigger_value(),
        );
        let attempts = async {
            let mut delay = first_delay;
            for attempt in 1..=max_attempts {
                match worker.handle(&request, attempt == max_attempts).await {
                    Disposition::Done(_) => break,
                    Disposition::Retry(reason) if attempt == max_attempts => {
                        tracing::error!(%reason, attempts = attempt, "dead letter: gave up");
                    }
                    Disposition::Retry(_) => {
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2);
                    }
                }
            }
        };
        tracing::Instrument::instrument(attempts, span).await;
    }
}

/// Reads and checks local mode's configuration file; relative paths in it are relative to
/// its folder.
pub fn load_config(path: &Path) -> anyhow::Result<LocalConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    let base_dir = path.parent().unwrap_or(Path::new("."));
    LocalConfig::parse(&text, base_dir).with_context(|| format!("configuration file {}", path.display()))
}

/// `pagure-ci-bridge serve`: everything local mode runs, until Ctrl-C.
pub async fn run_serve(config_path: &Path, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut config = load_config(config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {} (server.listen)", config.listen))?;
    let addr = listener.local_addr()?;
    let (service, worker, receiver) = build_local(&config, &format!("http://{addr}/")).await?;
    tracing::info!(
        %addr,
        projects = ?config.accept.projects.inline_keys(),
        registry = ?config.accept.registry.as_ref().map(|r| &r.location),
        artifacts = %config.work.s3_bucket.as_ref().map_or_else(|| config.work.artifacts_dir.display().to_string(), |b| format!("s3://{b}")),
        runs_loaded = service.pipeline.runs().len(),
        "pagure-ci-bridge local mode listening"
    );
    let consumer = tokio::spawn(consume(receiver, Arc::new(worker), config.work.max_attempts, config.work.retry_delay));
    serve(listener, Arc::new(service), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    consumer.abort();
    tracing::info!("stopped");
    Ok(())
}

/// `pagure-ci-bridge report`'s options.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// `None`: from `CODEBUILD_BUILD_SUCCEEDING`.
    pub status: Option<bridge_core::forge::FlagStatus>,
    pub comment: Option<String>,
    pub url: Option<String>,
    pub pagure_url: String,
    /// Name of the variable holding the token.
    pub token_env: String,
    pub username: String,
}

/// Posts one flag from a build's environment (`env`: the process's variables).
pub async fn run_report(request: ReportRequest, env: std::collections::BTreeMap<String, String>) -> anyhow::Result<()> {
    let (target, flag) = bridge_core::report::flag_from_build_env(
        &env,
        request.status,
        request.comment.as_deref(),
        request.url.as_deref(),
        &request.username,
    )
    .map_err(anyhow::Error::msg)?;
    let token = env
        .get(&request.token_env)
        .filter(|t| !t.trim().is_empty())
        .map(|t| bridge_core::auth::Secret::new(t.trim()))
        .with_context(|| {
            format!("{} is not set: map it to the token in the buildspec's env.secrets-manager", request.token_env)
        })?;
    let mut pagure_url = url::Url::parse(&request.pagure_url).context("--pagure-url / PAGURE_URL")?;
    if !pagure_url.path().ends_with('/') {
        let path = format!("{}/", pagure_url.path());
        pagure_url.set_path(&path);
    }
    let client = PagureClient::new(bridge_core::forge::RetryPolicy::default())?;
    let posted = client.post_flag(&pagure_url, &target, &flag, &token).await?;
    tracing::info!(%target, uid = %posted.uid, status = flag.status.as_str(), updated = posted.updated, "flag posted");
    Ok(())
}

/// Logs as JSON lines (the default) or human-readable text, on stderr. A line inside a
/// request carries its span's fields (`request_id`, `project`, `cause`; in JSON under
/// `span` when it is the innermost, and under `spans` with the spans it is in). Metric events (`bridge_core::metrics`) are log lines like the others here
/// (`RUST_LOG=bridge_core::metrics=off` leaves them out).
pub fn init_tracing(pretty: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    if pretty {
        builder.init();
    } else {
        builder.json().with_current_span(true).with_span_list(true).init();
    }
}
