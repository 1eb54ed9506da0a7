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

/// The whole secret: `{"projects": {"<key>": {…}}, "shared_pagure_api_tokens": {"<name>": …}}`.
/// One Secrets Manager secret holds it in Lambda; a JSON file (or the `PCB_SECRETS_JSON`
/// variable) holds it in local mode.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsDocument {
    #[serde(default)]
    pub projects: BTreeMap<String, ProjectSecrets>,
    /// Pagure API tokens several projects share (one bot account for many projects), by the
    /// name registry rules give them in `shared_pagure_api_token`.
    #[serde(default)]
    pub shared_pagure_api_tokens: BTreeMap<String, Secret>,
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

    /// The token flags for `key` are posted with: its own, else the shared one named.
    pub fn pagure_api_token(&self, key: &str, shared: Option<&str>) -> Option<&Secret> {
        self.project(key)
            .and_then(|p| p.pagure_api_token.as_ref())
            .or_else(|| shared.and_then(|name| self.shared_pagure_api_tokens.get(name)))
    }
}

/// The id of shard `index` of the secrets document: the base secret itself, then secrets
/// named `<base>-shard-<i>`. One Secrets Manager secret holds at most 64 KiB (about 380
/// projects' tokens); a forge spreads its projects over several, and readers merge them.
pub fn shard_secret_id(base: &str, index: u32) -> String {
    if index == 0 { base.to_owned() } else { format!("{base}-shard-{index}") }
}

/// Merges the shards' JSON texts (`None`: a shard not created yet) into one document's text.
/// Each project must be in one shard only, and `shared_pagure_api_tokens` in the first: a
/// document that says otherwise is refused rather than read in some order. Errors name the
/// shard, never a value.
pub fn merge_secret_shards(shards: &[(String, Option<String>)]) -> Result<String, SecretsError> {
    use serde_json::{Map, Value};
    let mut projects = Map::new();
    let mut merged = Map::new();
    for (index, (id, text)) in shards.iter().enumerate() {
        let Some(text) = text else { continue };
        // Each shard is checked as a whole document first (its errors never quote it).
        SecretsDocument::parse(text).map_err(|e| SecretsError::Malformed(format!("secret `{id}`: {e}")))?;
        let Ok(Value::Object(mut shard)) = serde_json::from_str::<Value>(text) else {
            return Err(SecretsError::Malformed(format!("secret `{id}` is not a JSON object")));
        };
        if let Some(Value::Object(entries)) = shard.remove("projects") {
            for (key, entry) in entries {
                if projects.insert(key.clone(), entry).is_some() {
                    return Err(SecretsError::Malformed(format!(
                        "project `{key}` is in more than one secret shard (again in `{id}`)"
                    )));
                }
            }
        }
        if let Some(shared) = shard.remove("shared_pagure_api_tokens") {
            if index > 0 {
                return Err(SecretsError::Malformed(format!(
                    "secret `{id}`: shared_pagure_api_tokens belong in the first secret"
                )));
            }
            merged.insert("shared_pagure_api_tokens".into(), shared);
        }
    }
    merged.insert("projects".into(), Value::Object(projects));
    Ok(Value::Object(merged).to_string())
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

/// Local mode's secrets: fixed at start ([`StaticSecrets::new`]), or read from a file and
/// read again when it changes ([`StaticSecrets::from_file`]).
#[derive(Debug, Clone)]
pub struct StaticSecrets(Arc<LocalSecrets>);

#[derive(Debug)]
enum LocalSecrets {
    Fixed(Arc<SecretsDocument>),
    File(SecretsFile),
}

/// How often, at most, local mode looks at its secrets file again.
pub const SECRETS_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A secrets file, looked at again at most every `check_every` (when secrets are asked for).
#[derive(Debug)]
struct SecretsFile {
    path: std::path::PathBuf,
    check_every: Duration,
    state: std::sync::Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    checked: Instant,
    /// SHA-256 of the text last read, used or refused: unchanged text is not parsed again,
    /// and a malformed text is reported once.
    seen: [u8; 32],
    /// The last reading failed (reported once, until the file can be read again).
    unreadable: bool,
    /// The last good document: what is served until a new good one is read.
    document: Arc<SecretsDocument>,
}

impl StaticSecrets {
    pub fn new(document: SecretsDocument) -> Self {
        StaticSecrets(Arc::new(LocalSecrets::Fixed(Arc::new(document))))
    }

    /// Reads a JSON file with the secrets document's layout, and reads it again when its
    /// text changes (checked at most every [`SECRETS_FILE_CHECK_INTERVAL`]). A changed file
    /// that cannot be read or parsed is logged (where and what kind of error, never the
    /// text) and the last good document keeps serving.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SecretsError> {
        Self::from_file_checked_every(path, SECRETS_FILE_CHECK_INTERVAL)
    }

    /// [`StaticSecrets::from_file`], looking at the file at most every `check_every`.
    pub fn from_file_checked_every(path: &std::path::Path, check_every: Duration) -> Result<Self, SecretsError> {
        let bytes = read_secrets_file(path)?;
        let document = parse_secrets_bytes(&bytes)?;
        Ok(StaticSecrets(Arc::new(LocalSecrets::File(SecretsFile {
            path: path.to_owned(),
            check_every,
            state: std::sync::Mutex::new(FileState {
                checked: Instant::now(),
                seen: <sha2::Sha256 as sha2::Digest>::digest(&bytes).into(),
                unreadable: false,
                document: Arc::new(document),
            }),
        }))))
    }
}

fn read_secrets_file(path: &std::path::Path) -> Result<Vec<u8>, SecretsError> {
    std::fs::read(path).map_err(|e| SecretsError::Unavailable(format!("{}: {e}", path.display())))
}

fn parse_secrets_bytes(bytes: &[u8]) -> Result<SecretsDocument, SecretsError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| SecretsError::Malformed(format!("byte {}: the file is not UTF-8", e.valid_up_to())))?;
    SecretsDocument::parse(text)
}

impl SecretsFile {
    fn current(&self) -> Arc<SecretsDocument> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.checked.elapsed() < self.check_every {
            return state.document.clone();
        }
        state.checked = Instant::now();
        let path = self.path.display().to_string();
        let bytes = match read_secrets_file(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                if !state.unreadable {
                    state.unreadable = true;
                    tracing::warn!(%path, %error, "secrets file unreadable; keeping the secrets last read");
                }
                return state.document.clone();
            }
        };
        state.unreadable = false;
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&bytes).into();
        if digest == state.seen {
            return state.document.clone();
        }
        state.seen = digest;
        match parse_secrets_bytes(&bytes) {
            Ok(document) => {
                tracing::info!(%path, projects = document.projects.len(), "secrets file changed; reloaded");
                state.document = Arc::new(document);
            }
            Err(error) => {
                tracing::warn!(%path, %error, "secrets file changed but is not usable; keeping the secrets last read")
            }
        }
        state.document.clone()
    }
}

impl Secrets for StaticSecrets {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        Ok(match &*self.0 {
            LocalSecrets::Fixed(document) => document.clone(),
            LocalSecrets::File(file) => file.current(),
        })
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
    #[test]
    fn secret_shards_merge_and_refuse_ambiguity() {
        use super::{SecretsDocument, merge_secret_shards, shard_secret_id};
        assert_eq!((shard_secret_id("pcb", 0), shard_secret_id("pcb", 2)), ("pcb".into(), "pcb-shard-2".into()));
        let shard = |id: &str, text: Option<&str>| (id.to_owned(), text.map(str::to_owned));
        let merged = merge_secret_shards(&[
            shard(
                "pcb",
                Some(r#"{"projects": {"a": {"trigger_token": "t1"}}, "shared_pagure_api_tokens": {"bot": "b"}}"#),
            ),
            shard("pcb-shard-1", None),
            shard("pcb-shard-2", Some(r#"{"projects": {"b": {"hook_token": "h2"}}}"#)),
        ])
        .expect("merged");
        let document = SecretsDocument::parse(&merged).expect("a document");
        assert_eq!(document.project("a").and_then(|p| p.trigger_token.as_ref()).map(|t| t.expose()), Some("t1"));
        assert_eq!(document.project("b").and_then(|p| p.hook_token.as_ref()).map(|t| t.expose()), Some("h2"));
        assert_eq!(document.pagure_api_token("b", Some("bot")).map(|t| t.expose()), Some("b"));
        let twice = merge_secret_shards(&[
            shard("pcb", Some(r#"{"projects": {"a": {}}}"#)),
            shard("pcb-shard-1", Some(r#"{"projects": {"a": {"trigger_token": "secret-value"}}}"#)),
        ]);
        let error = twice.expect_err("a project in two shards").to_string();
        assert!(error.contains("`a`") && error.contains("pcb-shard-1") && !error.contains("secret-value"), "{error}");
        let shared_late = merge_secret_shards(&[
            shard("pcb", None),
            shard("pcb-shard-1", Some(r#"{"shared_pagure_api_tokens": {"bot": "b"}}"#)),
        ]);
        assert!(shared_late.is_err());
        let bad = merge_secret_shards(&[shard("pcb", Some(r#"{"projects": {"a": {"colour": "x"}}}"#))]);
        assert!(bad.expect_err("unknown field").to_string().contains("secret `pcb`"));
    }

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

    /// The secrets file read again on change: a new good text replaces the document, a
    /// malformed or missing one keeps the last good document.
    #[tokio::test]
    async fn secrets_file_is_read_again_when_it_changes() {
        let dir = std::env::temp_dir().join(format!("pcb-secrets-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("secrets.json");
        let doc = |token: &str| format!(r#"{{"projects": {{"p": {{"trigger_token": "{token}"}}}}}}"#);
        let token = |d: &SecretsDocument| d.project("p").and_then(|p| p.trigger_token.clone());
        std::fs::write(&path, doc("first")).expect("write");
        let secrets = StaticSecrets::from_file_checked_every(&path, Duration::ZERO).expect("read");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("first")));
        std::fs::write(&path, doc("second")).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")));
        std::fs::write(&path, r#"{"projects": {"p": {"trigger_token": "third""#).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")), "malformed: kept");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("second")), "missing: kept");
        std::fs::write(&path, doc("fourth")).expect("write");
        assert_eq!(token(&secrets.document().await.expect("doc")), Some(Secret::new("fourth")));
        // Within the check interval the file is not looked at.
        let slow = StaticSecrets::from_file_checked_every(&path, Duration::from_secs(3600)).expect("read");
        std::fs::write(&path, doc("fifth")).expect("write");
        assert_eq!(token(&slow.document().await.expect("doc")), Some(Secret::new("fourth")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Runs kept in a folder are there again for a new `LocalPipeline` (a restart).
    #[tokio::test]
    async fn local_runs_kept_in_a_folder_outlive_the_pipeline() {
        let dir = std::env::temp_dir().join(format!("pcb-runs-{}", uuid::Uuid::new_v4().simple()));
        let first = LocalPipeline::new("http://127.0.0.1:1/").kept_in(&dir).expect("dir");
        let artifact = StoredArtifact { key: "sources/p/r.zip".into(), version_id: None };
        let id = first.start("p-ci", &artifact, &[("PAGURE_CAUSE", "1".into())]).await.expect("start");
        std::fs::write(dir.join("local-0a.json"), "not json").expect("junk");
        std::fs::write(dir.join("notes.txt"), "x").expect("other file");
        let second = LocalPipeline::new("http://127.0.0.1:2/").kept_in(&dir).expect("reload");
        assert_eq!(second.runs().len(), 1, "the malformed and foreign files are skipped");
        let run = second.run(&id).expect("the run is back");
        assert_eq!((run.pipeline.as_str(), run.key.as_str()), ("p-ci", "sources/p/r.zip"));
        assert_eq!(run.variables["PAGURE_CAUSE"], "1");
        assert!(second.execution("p-ci", &id).await.expect("lookup").is_some(), "report lookups find it too");
        let _ = std::fs::remove_dir_all(&dir);
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
    /// Up to `max` objects whose keys start with `prefix`, in byte order of their keys, after
    /// `start_after` (S3's ListObjectsV2 order and `StartAfter`), with when each was last
    /// written. The report stage's sweep pages through the `.started` markers with it.
    fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&str>,
        _max: usize,
    ) -> impl Future<Output = Result<Listing, StoreError>> + Send {
        async { Err(StoreError("this store cannot list its objects".into())) }
    }
    /// The `(name, value)` entries stored with the archive at `key` by `put_archive`;
    /// `None` when there is no archive there (expired, or never stored).
    fn archive_metadata(
        &self,
        _key: &str,
    ) -> impl Future<Output = Result<Option<Vec<(String, String)>>, StoreError>> + Send {
        async { Err(StoreError("this store cannot read archive metadata".into())) }
    }
}

/// One object found by [`ArtifactStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: time::OffsetDateTime,
}

/// A page of [`ArtifactStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    /// More keys follow the last one listed.
    pub truncated: bool,
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

    async fn list(&self, prefix: &str, start_after: Option<&str>, max: usize) -> Result<Listing, StoreError> {
        // Walk the folder the prefix names (its part up to the last `/`), then keep the keys
        // S3 would list: everything but the metadata files and half-written markers.
        let folder = prefix.rsplit_once('/').map_or("", |(folder, _)| folder);
        let mut found = Vec::new();
        let mut pending = vec![if folder.is_empty() { self.root.clone() } else { self.path(folder)? }];
        while let Some(dir) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io_error)?;
                let meta = entry.metadata().map_err(io_error)?;
                if meta.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let Ok(relative) = entry.path().strip_prefix(&self.root).map(|p| p.to_string_lossy().into_owned())
                else {
                    continue;
                };
                let key = relative.replace(std::path::MAIN_SEPARATOR, "/");
                let internal =
                    key.ends_with(".zip.json") || key.rsplit('/').next().is_some_and(|n| n.contains(".tmp-"));
                if internal || !key.starts_with(prefix) || start_after.is_some_and(|after| key.as_str() <= after) {
                    continue;
                }
                let modified = meta.modified().map_err(io_error)?;
                found.push(ListedObject { key, last_modified: time::OffsetDateTime::from(modified) });
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = found.len() > max;
        found.truncate(max);
        Ok(Listing { objects: found, truncated })
    }

    async fn archive_metadata(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let target = self.path(key)?;
        let mut sidecar = target.into_os_string();
        sidecar.push(".json");
        let text = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| StoreError(e.to_string()))?;
        let entries = json
            .get("metadata")
            .and_then(|m| m.as_object())
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default();
        Ok(Some(entries))
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
/// `/runs/<id>`. With [`LocalPipeline::kept_in`], each run is also written to a folder and
/// the runs found there are loaded at start, so that the flags' links outlive a restart.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    runs: Arc<std::sync::Mutex<BTreeMap<String, LocalRun>>>,
    link_base: String,
    runs_dir: Option<Arc<std::path::PathBuf>>,
}

/// A recorded local run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
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
        LocalPipeline { runs: Arc::default(), link_base, runs_dir: None }
    }

    /// Keeps runs in `dir` (one `<execution-id>.json` each; the folder is made at the first
    /// run) and loads the runs already there. A file that is not a run is skipped with a
    /// warning.
    pub fn kept_in(mut self, dir: &std::path::Path) -> std::io::Result<Self> {
        let mut loaded = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries.collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_run_id(id) {
                continue;
            }
            match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| {
                crate::json::from_slice::<LocalRun>(&bytes)
                    .map_err(|e| format!("{:?} error at line {}", e.classify(), e.line()))
            }) {
                Ok(run) => {
                    loaded.insert(id.to_owned(), run);
                }
                Err(error) => tracing::warn!(path = %path.display(), %error, "not a local run; skipped"),
            }
        }
        tracing::debug!(dir = %dir.display(), runs = loaded.len(), "local runs loaded");
        self.runs = Arc::new(std::sync::Mutex::new(loaded));
        self.runs_dir = Some(Arc::new(dir.to_owned()));
        Ok(self)
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
        if let Some(dir) = &self.runs_dir {
            // The run is recorded in memory either way: a file that cannot be written only
            // loses the run at the next restart, which does not justify starting it again.
            if let Err(error) = write_run(dir, &id, &run) {
                tracing::warn!(execution_id = %id, dir = %dir.display(), %error, "local run not kept on disk");
            }
        }
        self.runs.lock().map_err(|_| StartError::Transient("run table poisoned".into()))?.insert(id.clone(), run);
        Ok(id)
    }

    fn execution_url(&self, _pipeline: &str, execution_id: &str) -> String {
        format!("{}runs/{execution_id}", self.link_base)
    }
}

/// The ids [`LocalPipeline`] gives: `local-` and hex digits.
fn is_run_id(id: &str) -> bool {
    id.strip_prefix("local-").is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Writes a run to `<dir>/<id>.json` whole or not at all (a temporary file, then a rename).
fn write_run(dir: &std::path::Path, id: &str, run: &LocalRun) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(run).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".{id}.json.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, dir.join(format!("{id}.json")))
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

    async fn execution_state(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionState>, LookupError> {
        // A local run is only recorded: it never ends unless events are posted for it, so it
        // stays in progress (and its flag pending).
        Ok(self.run(execution_id).filter(|run| run.pipeline == pipeline).map(|run| ExecutionState {
            status: "InProgress".into(),
            summary: None,
            variables: run.variables,
            region: String::new(),
            builds: Vec::new(),
        }))
    }

    async fn builds(&self, _build_ids: &[String]) -> Result<Vec<crate::report::CodeBuildChange>, LookupError> {
        Ok(Vec::new())
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

    /// Where an execution is now (the sweep's question): its status, variables, and every
    /// attempt of its CodeBuild actions. `None` when CodePipeline does not know it.
    fn execution_state(
        &self,
        _pipeline: &str,
        _execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionState>, LookupError>> + Send {
        async { Err(LookupError("this lookup cannot tell an execution's state".into())) }
    }

    /// The builds `<project>:<uuid>` as CodeBuild has them now (BatchGetBuilds), as the
    /// state-change event for their current status would say; builds CodeBuild no longer
    /// knows are left out.
    fn builds(
        &self,
        _build_ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::report::CodeBuildChange>, LookupError>> + Send {
        async { Err(LookupError("this lookup cannot read builds".into())) }
    }

    /// Runs the failed actions of `stage` of the execution again (RetryStageExecution,
    /// `FAILED_ACTIONS`). `Ok(false)` when CodePipeline refuses (the stage is not retryable,
    /// a later execution failed there, the execution is gone).
    fn retry_failed_actions(
        &self,
        _pipeline: &str,
        _stage: &str,
        _execution_id: &str,
    ) -> impl Future<Output = Result<bool, LookupError>> + Send {
        async { Ok(false) }
    }
}

/// One lookup shared (the report stage and whoever sets what it answers, in tests).
impl<T: PipelineLookup> PipelineLookup for Arc<T> {
    fn execution(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionFacts>, LookupError>> + Send {
        (**self).execution(pipeline, execution_id)
    }

    fn execution_of_build(
        &self,
        pipeline: &str,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<String>, LookupError>> + Send {
        (**self).execution_of_build(pipeline, build_id)
    }

    fn execution_state(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionState>, LookupError>> + Send {
        (**self).execution_state(pipeline, execution_id)
    }

    fn builds(
        &self,
        build_ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::report::CodeBuildChange>, LookupError>> + Send {
        (**self).builds(build_ids)
    }

    fn retry_failed_actions(
        &self,
        pipeline: &str,
        stage: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<bool, LookupError>> + Send {
        (**self).retry_failed_actions(pipeline, stage, execution_id)
    }
}

/// A pipeline execution as the sweep sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionState {
    /// CodePipeline's status: `InProgress`, `Stopping`, `Stopped`, `Succeeded`,
    /// `Superseded`, `Failed`, `Cancelled`.
    pub status: String,
    pub summary: Option<String>,
    pub variables: BTreeMap<String, String>,
    /// The region of the pipeline (for console links).
    pub region: String,
    /// Every attempt of the execution's CodeBuild actions, newest first.
    pub builds: Vec<BuildAction>,
}

/// One attempt of a CodeBuild action in a pipeline execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildAction {
    pub stage: String,
    pub action: String,
    /// `InProgress`, `Abandoned`, `Succeeded`, `Failed`.
    pub status: String,
    /// The build it started (`<project>:<uuid>`); `None` when CodeBuild refused to start one.
    pub build_id: Option<String>,
    /// What CodePipeline says of the attempt (error details, else the summary).
    pub message: Option<String>,
}

impl ExecutionState {
    /// Whether the execution has ended (CodePipeline will not change it any more).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "Stopped" | "Succeeded" | "Superseded" | "Failed" | "Cancelled")
    }
}

/// Pipeline executions held in memory: the tests' and local tools' [`PipelineLookup`].
/// Executions, builds and refusals are set by the caller; retries are recorded.
#[derive(Debug, Default)]
pub struct InMemoryPipelines {
    /// `(pipeline, execution id)` → state.
    pub executions: std::sync::Mutex<BTreeMap<(String, String), ExecutionState>>,
    /// `<project>:<uuid>` → build.
    pub builds: std::sync::Mutex<BTreeMap<String, crate::report::CodeBuildChange>>,
    /// `(pipeline, stage, execution id)` of each retry asked for.
    pub retries: std::sync::Mutex<Vec<(String, String, String)>>,
    /// Whether retries are accepted.
    pub refuse_retries: std::sync::atomic::AtomicBool,
}

impl InMemoryPipelines {
    pub fn set_execution(&self, pipeline: &str, execution_id: &str, state: ExecutionState) {
        self.executions.lock().expect("executions").insert((pipeline.to_owned(), execution_id.to_owned()), state);
    }

    pub fn set_build(&self, build: crate::report::CodeBuildChange) {
        let id = build.short_build_id().to_owned();
        self.builds.lock().expect("builds").insert(id, build);
    }

    pub fn retries(&self) -> Vec<(String, String, String)> {
        self.retries.lock().expect("retries").clone()
    }
}

impl PipelineLookup for InMemoryPipelines {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(self.execution_state(pipeline, execution_id).await?.map(|state| ExecutionFacts {
            build_ran: state.builds.iter().any(|b| b.build_id.is_some()),
            summary: state.summary,
            variables: state.variables,
        }))
    }

    async fn execution_of_build(&self, pipeline: &str, build_id: &str) -> Result<Option<String>, LookupError> {
        let executions = self.executions.lock().map_err(|_| LookupError("poisoned".into()))?;
        Ok(executions
            .iter()
            .find(|((p, _), state)| {
                p == pipeline && state.builds.iter().any(|b| b.build_id.as_deref() == Some(build_id))
            })
            .map(|((_, id), _)| id.clone()))
    }

    async fn execution_state(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionState>, LookupError> {
        let executions = self.executions.lock().map_err(|_| LookupError("poisoned".into()))?;
        Ok(executions.get(&(pipeline.to_owned(), execution_id.to_owned())).cloned())
    }

    async fn builds(&self, build_ids: &[String]) -> Result<Vec<crate::report::CodeBuildChange>, LookupError> {
        let builds = self.builds.lock().map_err(|_| LookupError("poisoned".into()))?;
        Ok(build_ids.iter().filter_map(|id| builds.get(id).cloned()).collect())
    }

    async fn retry_failed_actions(&self, pipeline: &str, stage: &str, execution_id: &str) -> Result<bool, LookupError> {
        if self.refuse_retries.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        self.retries.lock().map_err(|_| LookupError("poisoned".into()))?.push((
            pipeline.to_owned(),
            stage.to_owned(),
            execution_id.to_owned(),
        ));
        Ok(true)
    }
}
