//! Narrow ports the handlers depend on, and the adapters that need no cloud: an in-process
//! queue and secrets read from a file or the environment. AWS adapters live in `bridge-aws`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};

use crate::auth::Secret;
use crate::model::BuildRequest;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the build queue is full")]
    Full,
    #[error("the build queue is unavailable: {0}")]
    Unavailable(String),
}

/// Where accepted build requests go.
pub trait Queue: Send + Sync {
    fn enqueue(&self, request: &BuildRequest) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// The local mode queue: a bounded channel consumed in the same process.
#[derive(Debug, Clone)]
pub struct InProcessQueue {
    sender: mpsc::Sender<BuildRequest>,
}

impl InProcessQueue {
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<BuildRequest>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (InProcessQueue { sender }, receiver)
    }
}

impl Queue for InProcessQueue {
    async fn enqueue(&self, request: &BuildRequest) -> Result<(), QueueError> {
        self.sender.try_send(request.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Unavailable("the consumer has stopped".into()),
        })
    }
}

/// One project's secrets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSecrets {
    /// The `pagure_ci_token` of the project's "Pagure CI" settings (Jenkins `token=`), also
    /// accepted as `Authorization: token …` on the JSON trigger.
    pub trigger_token: Option<Secret>,
    /// The project's web-hook key (`hook_token`), for `X-Pagure-Signature-256`.
    pub hook_token: Option<Secret>,
    /// A Pagure API token with `commit_flag` and `pull_request_flag`, for reporting.
    pub pagure_api_token: Option<Secret>,
    /// Pagure CI's `ci_username`/`ci_password`: when both are set, Jenkins-style calls must
    /// carry them as HTTP Basic credentials.
    pub jenkins_username: Option<String>,
    pub jenkins_password: Option<Secret>,
    /// HTTP credentials for cloning a private repository.
    pub git_username: Option<String>,
    pub git_password: Option<Secret>,
}

/// The whole secret: `{"projects": {"<key>": {…}}}`. One Secrets Manager secret holds it in
/// Lambda; a JSON file (or the `PCB_SECRETS_JSON` variable) holds it in local mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsDocument {
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSecrets>,
}

impl SecretsDocument {
    /// Parses the document. The error never quotes the text (it holds secrets): only where
    /// and what kind of problem.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        crate::json::from_str(text).map_err(|e| {
            SecretsError::Malformed(format!("line {} column {}: {:?} error", e.line(), e.column(), e.classify()))
        })
    }

    pub fn project(&self, key: &str) -> Option<&ProjectSecrets> {
        self.projects.get(key)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretsError {
    #[error("the secrets could not be read: {0}")]
    Unavailable(String),
    #[error("the secrets document is malformed at {0}")]
    Malformed(String),
}

/// Read access to the secrets document.
pub trait Secrets: Send + Sync {
    fn document(&self) -> impl Future<Output = Result<Arc<SecretsDocument>, SecretsError>> + Send;
}

/// One cache shared by several users (the worker and its flag reporter).
impl<T: Secrets> Secrets for Arc<T> {
    fn document(&self) -> impl Future<Output = Result<Arc<SecretsDocument>, SecretsError>> + Send {
        (**self).document()
    }
}

/// Secrets fixed at start (local mode).
#[derive(Debug, Clone)]
pub struct StaticSecrets(Arc<SecretsDocument>);

impl StaticSecrets {
    pub fn new(document: SecretsDocument) -> Self {
        StaticSecrets(Arc::new(document))
    }

    /// Reads a JSON file with the secrets document's layout.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SecretsError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| SecretsError::Unavailable(format!("{}: {e}", path.display())))?;
        Ok(Self::new(SecretsDocument::parse(&text)?))
    }
}

impl Secrets for StaticSecrets {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        Ok(self.0.clone())
    }
}

/// Where a cached secret comes from (Secrets Manager in Lambda): the raw JSON text.
pub trait SecretSource: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<String, SecretsError>> + Send;
}

/// Caches a [`SecretSource`] for `ttl`. When a refresh fails and an older copy exists, the
/// older copy keeps serving (a Secrets Manager hiccup must not reject every trigger), and
/// the next call tries again.
#[derive(Debug)]
pub struct CachedSecrets<S> {
    source: S,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<SecretsDocument>)>>,
}

impl<S: SecretSource> CachedSecrets<S> {
    pub fn new(source: S, ttl: Duration) -> Self {
        CachedSecrets { source, ttl, cached: Mutex::new(None) }
    }
}

impl<S: SecretSource> Secrets for CachedSecrets<S> {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, doc)) = cached.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(doc.clone());
        }
        match self.source.fetch().await.and_then(|text| SecretsDocument::parse(&text)) {
            Ok(doc) => {
                let doc = Arc::new(doc);
                *cached = Some((Instant::now(), doc.clone()));
                Ok(doc)
            }
            Err(error) => match cached.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(%error, "secrets refresh failed; serving the previous copy");
                    Ok(stale.clone())
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct Counting {
        calls: AtomicUsize,
        fail_after: usize,
    }

    impl SecretSource for Counting {
        async fn fetch(&self) -> Result<String, SecretsError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n >= self.fail_after {
                return Err(SecretsError::Unavailable("down".into()));
            }
            Ok(format!(r#"{{"projects": {{"p{n}": {{"trigger_token": "t"}}}}}}"#))
        }
    }

    #[tokio::test]
    async fn cache_honours_ttl_and_serves_stale_on_failure() {
        let cache =
            CachedSecrets::new(Counting { calls: AtomicUsize::new(0), fail_after: 2 }, Duration::from_millis(40));
        assert!(cache.document().await.expect("first").project("p0").is_some());
        assert!(cache.document().await.expect("cached").project("p0").is_some());
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.document().await.expect("refreshed").project("p1").is_some());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(cache.document().await.expect("stale").project("p1").is_some());
        assert_eq!(cache.source.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn cold_failure_is_an_error() {
        let cache = CachedSecrets::new(Counting { calls: AtomicUsize::new(0), fail_after: 0 }, Duration::from_secs(60));
        assert!(cache.document().await.is_err());
    }

    #[test]
    fn malformed_document_error_does_not_quote_secrets() {
        let err = SecretsDocument::parse(r#"{"projects": {"p": {"trigger_token": "hunter2", "oops": 1}}}"#)
            .expect_err("unknown field");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = SecretsDocument::parse(r#"{"projects": {"p": {"trigger_token": "hunter2"#).expect_err("eof");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn in_process_queue_reports_full() {
        let (queue, mut rx) = InProcessQueue::new(1);
        let req = crate::model::BuildRequest::new(
            crate::model::BuildTarget {
                project: crate::model::ProjectRef {
                    key: "k".into(),
                    namespace: None,
                    name: "n".into(),
                    fork_user: None,
                },
                repo_url: "https://x.org/n.git".into(),
                cause: crate::model::Cause::PullRequest { id: 1 },
                branch: "a".into(),
                branch_to: Some("b".into()),
            },
            crate::model::TriggerKind::Json,
            time::OffsetDateTime::UNIX_EPOCH,
        );
        queue.enqueue(&req).await.expect("first fits");
        assert!(matches!(queue.enqueue(&req).await, Err(QueueError::Full)));
        assert_eq!(rx.recv().await.expect("received"), req);
        drop(rx);
        assert!(matches!(queue.enqueue(&req).await, Err(QueueError::Unavailable(_))));
    }
}

/// What the source archive's object carries besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactMetadata {
    /// `(name, value)`, e.g. `("pagure-commit", "<sha>")`; S3 user metadata in AWS.
    pub entries: Vec<(String, String)>,
    /// One line for CodePipeline's revision summary (≤ 2048 characters).
    pub revision_summary: String,
}

/// Where a stored archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub key: String,
    /// The S3 object version, when the store keeps versions.
    pub version_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("artifact store: {0}")]
pub struct StoreError(pub String);

/// Where source archives go (S3 in AWS, a folder locally), and small markers beside them.
pub trait ArtifactStore: Send + Sync {
    /// Stores the file at `path` under `key`, streaming it.
    fn put_archive(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &ArtifactMetadata,
    ) -> impl Future<Output = Result<StoredArtifact, StoreError>> + Send;
    /// Writes a small marker object.
    fn put_marker(&self, key: &str, content: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Reads a marker, `None` when it does not exist.
    fn marker(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Writes a marker only if `key` has none (`None`); otherwise returns the marker there.
    /// Atomic: of concurrent calls for one key, exactly one creates it.
    fn create_marker(
        &self,
        key: &str,
        content: &str,
    ) -> impl Future<Output = Result<Option<StoredMarker>, StoreError>> + Send;
    /// Overwrites a marker only if it is still the one `seen` (compare and swap); false when
    /// another writer changed it first.
    fn replace_marker(
        &self,
        key: &str,
        content: &str,
        seen: &StoredMarker,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A marker as read, with what identifies this version of it (the S3 ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMarker {
    pub content: String,
    pub version: String,
}

/// Stores archives in a local folder, `<root>/<key>`, with the metadata as `<key>.json`.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: std::path::PathBuf,
    /// Serialises compare-and-swap of markers. Local mode is one process, so a lock in it
    /// is enough; creating is atomic through the file system on its own.
    swap: std::sync::Arc<std::sync::Mutex<()>>,
}

impl DirectoryStore {
    pub fn new(root: impl Into<std::path::PathBuf>) -> Self {
        DirectoryStore { root: root.into(), swap: Default::default() }
    }

    /// Writes `content` beside `target` and moves it into place in one step, so that a
    /// reader never sees half a marker.
    fn write_atomically(target: &std::path::Path, content: &str) -> Result<std::path::PathBuf, StoreError> {
        let staging = target.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&staging, content).map_err(io_error)?;
        Ok(staging)
    }

    fn path(&self, key: &str) -> Result<std::path::PathBuf, StoreError> {
        // Keys are built by the bridge from checked names; refuse anything that could leave
        // the folder all the same.
        if key.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
            return Err(StoreError(format!("refusing key `{key}`")));
        }
        Ok(self.root.join(key))
    }

    /// The path of `key`, with its folder created.
    fn writable(&self, key: &str) -> Result<std::path::PathBuf, StoreError> {
        let target = self.path(key)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        Ok(target)
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError(e.to_string())
}

impl ArtifactStore for DirectoryStore {
    async fn put_archive(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        let target = self.writable(key)?;
        std::fs::copy(path, &target).map_err(io_error)?;
        let meta: serde_json::Map<String, serde_json::Value> =
            metadata.entries.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let json = serde_json::json!({"metadata": meta, "revision_summary": metadata.revision_summary});
        std::fs::write(target.with_extension("zip.json"), json.to_string()).map_err(io_error)?;
        Ok(StoredArtifact { key: key.to_owned(), version_id: None })
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        let target = self.writable(key)?;
        let staging = Self::write_atomically(&target, content)?;
        std::fs::rename(&staging, &target).map_err(io_error)
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        match std::fs::read_to_string(self.path(key)?) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        // Most calls for an existing claim are duplicates: one read answers them, before any
        // folder is made.
        if let Ok(existing) = std::fs::read_to_string(self.path(key)?) {
            return Ok(Some(StoredMarker { version: existing.clone(), content: existing }));
        }
        let target = self.writable(key)?;
        let staging = Self::write_atomically(&target, content)?;
        // A hard link fails if the name exists: the file system decides who created it.
        let linked = std::fs::hard_link(&staging, &target);
        let _ = std::fs::remove_file(&staging);
        match linked {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let content = std::fs::read_to_string(&target).map_err(io_error)?;
                Ok(Some(StoredMarker { version: content.clone(), content }))
            }
            Err(e) => Err(io_error(e)),
        }
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        let target = self.writable(key)?;
        let _guard = self.swap.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A marker's version here is its content: claims carry a request id and a time.
        if std::fs::read_to_string(&target).ok().as_deref() != Some(seen.version.as_str()) {
            return Ok(false);
        }
        let staging = Self::write_atomically(&target, content)?;
        std::fs::rename(&staging, &target).map_err(io_error)?;
        Ok(true)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Throttling, 5xx, network: try again.
    #[error("starting the pipeline failed, will retry: {0}")]
    Transient(String),
    /// The pipeline does not exist or the request is invalid: retrying will not help.
    #[error("the pipeline cannot be started: {0}")]
    Terminal(String),
}

/// Starts a pipeline run on a stored archive, with pipeline variables; returns the run's id.
pub trait PipelineStarter: Send + Sync {
    fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> impl Future<Output = Result<String, StartError>> + Send;

    /// Where a person sees the run (the flag's link while the build is queued).
    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String;
}

/// Local mode has no CodePipeline: "starting" records the run (its variables, for the
/// report stage's lookups) and logs what would start. Links point at the local server's
/// `/runs/<id>`.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    runs: Arc<std::sync::Mutex<BTreeMap<String, LocalRun>>>,
    link_base: String,
}

/// A recorded local run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalRun {
    pub pipeline: String,
    pub key: String,
    pub variables: BTreeMap<String, String>,
}

impl LocalPipeline {
    /// `link_base` is the local server's URL, e.g. `http://127.0.0.1:8080/`.
    pub fn new(link_base: impl Into<String>) -> Self {
        let mut link_base = link_base.into();
        if !link_base.ends_with('/') {
            link_base.push('/');
        }
        LocalPipeline { runs: Arc::default(), link_base }
    }

    pub fn run(&self, execution_id: &str) -> Option<LocalRun> {
        self.runs.lock().ok()?.get(execution_id).cloned()
    }

    /// Every run started so far, by execution id.
    pub fn runs(&self) -> BTreeMap<String, LocalRun> {
        self.runs.lock().map(|runs| runs.clone()).unwrap_or_default()
    }
}

impl PipelineStarter for LocalPipeline {
    async fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> Result<String, StartError> {
        let id = format!("local-{}", uuid::Uuid::new_v4().simple());
        tracing::info!(pipeline, key = %artifact.key, execution_id = %id, variables = variables.len(), "pipeline run (local: not started)");
        let run = LocalRun {
            pipeline: pipeline.to_owned(),
            key: artifact.key.clone(),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        self.runs.lock().map_err(|_| StartError::Transient("run table poisoned".into()))?.insert(id.clone(), run);
        Ok(id)
    }

    fn execution_url(&self, _pipeline: &str, execution_id: &str) -> String {
        format!("{}runs/{execution_id}", self.link_base)
    }
}

impl PipelineLookup for LocalPipeline {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(self.run(execution_id).filter(|run| run.pipeline == pipeline).map(|run| ExecutionFacts {
            variables: run.variables,
            build_ran: false,
            summary: None,
        }))
    }

    async fn execution_of_build(&self, _pipeline: &str, _build_id: &str) -> Result<Option<String>, LookupError> {
        // Local runs have no CodeBuild builds.
        Ok(None)
    }
}

/// What the report stage needs to know of a pipeline execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFacts {
    /// The execution's pipeline variables (the PAGURE_* values the bridge started it with).
    pub variables: BTreeMap<String, String>,
    /// A CodeBuild action of this execution ran (then CodeBuild's events report the build).
    pub build_ran: bool,
    /// Why the execution failed or stopped, as CodePipeline says.
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline lookup failed: {0}")]
pub struct LookupError(pub String);

/// Looks up pipeline executions, to correlate events with build requests.
pub trait PipelineLookup: Send + Sync {
    /// `None` when the execution does not exist.
    fn execution(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionFacts>, LookupError>> + Send;

    /// The execution whose CodeBuild action ran the build `<project>:<uuid>`.
    fn execution_of_build(
        &self,
        pipeline: &str,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<String>, LookupError>> + Send;
}
