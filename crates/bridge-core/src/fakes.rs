//! In-memory adapters of the ports, for tests (unit and end-to-end): no IO, no git, no
//! network. Each is a cheap handle (`Clone` shares its state), so a test keeps one to look
//! at what the stage did after handing another to it.
//!
//! - [`FakeSource`]: a [`SourceFetcher`] that "fetches" a configured commit and buildspec,
//!   records what it was asked, and can fail, take its time, or stop at its deadline.
//! - [`FakeStore`]: an [`ArtifactStore`] of markers and archive records.
//! - [`FakePipelines`]: a [`PipelineStarter`] that records starts (`exec-1`, `exec-2`, …).
//! - [`FakeForge`]: a [`Forge`] that records flags and answers pull-request and
//!   commit-access questions; by default every pull request is open, by `pingou`, from the
//!   project itself, and `pingou` may commit.
//! - [`FakeSecrets`]: a fixed [`Secrets`] document.
//!
//! Failures are queued (`fail_next_…`): each call takes the next one, if any, then they
//! succeed again.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::archive::{ArchiveError, ArchiveLimits, ArchiveStats};
use crate::forge::{FlagStatus, FlagUpdate, Forge, ForgeError, PullRequestFacts};
use crate::model::BuildRequest;
use crate::ports::{
    ArtifactMetadata, ArtifactStore, ListedObject, Listing, PipelineStarter, Secrets, SecretsDocument, SecretsError,
    StartError, StoreError, StoredArtifact, StoredMarker,
};
use crate::work::source::{ArchiveOrder, FetchError, FetchOrder, Fetched, SourceArchive, SourceFetcher};

/// Locks a fake's state; a test that panicked while holding it has failed already.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The commit [`FakeSource::default`] fetches.
pub const FAKE_COMMIT: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";

/// The buildspec [`FakeSource::default`] reads from the default branch.
pub const FAKE_BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - make check\n";

/// One fetch the worker asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchCall {
    pub request_id: String,
    pub target_url: String,
    /// The fetch's deadline: the configured one, or the time left for the request.
    pub deadline: Duration,
    pub buildspec_paths: Vec<String>,
    /// The git user name of the credentials given, if any.
    pub username: Option<String>,
}

/// One archive the worker asked for.
#[derive(Debug, Clone)]
pub struct ArchiveCall {
    pub commit: String,
    /// `(path in the zip, content)`: the injected buildspec.
    pub replacements: Vec<(String, Vec<u8>)>,
    pub compression_level: u8,
    pub limits: ArchiveLimits,
}

#[derive(Debug)]
struct SourceState {
    fetched: Mutex<Fetched>,
    fetch_time: Mutex<Duration>,
    fetch_failures: Mutex<VecDeque<FetchError>>,
    archive_failures: Mutex<VecDeque<ArchiveError>>,
    fetches: Mutex<Vec<FetchCall>>,
    archives: Mutex<Vec<ArchiveCall>>,
    open: AtomicUsize,
}

/// A [`SourceFetcher`] in memory: every fetch finds the commit and buildspec it was made
/// with ([`FakeSource::new`], [`FakeSource::set_commit`], [`FakeSource::set_buildspec`]),
/// the buildspec checked with the worker's check as the git adapter does, unless a failure
/// is queued; archives are recorded, not written.
#[derive(Debug, Clone)]
pub struct FakeSource(Arc<SourceState>);

impl Default for FakeSource {
    /// [`FAKE_COMMIT`] with [`FAKE_BUILDSPEC`] as `buildspec.yml` of `main`.
    fn default() -> Self {
        FakeSource::new(Fetched {
            commit: FAKE_COMMIT.into(),
            default_branch: "main".into(),
            buildspec_path: "buildspec.yml".into(),
            buildspec: FAKE_BUILDSPEC.as_bytes().to_vec(),
        })
    }
}

impl FakeSource {
    pub fn new(fetched: Fetched) -> Self {
        FakeSource(Arc::new(SourceState {
            fetched: Mutex::new(fetched),
            fetch_time: Mutex::new(Duration::ZERO),
            fetch_failures: Mutex::default(),
            archive_failures: Mutex::default(),
            fetches: Mutex::default(),
            archives: Mutex::default(),
            open: AtomicUsize::new(0),
        }))
    }

    /// Later fetches find `commit`.
    pub fn set_commit(&self, commit: &str) {
        lock(&self.0.fetched).commit = commit.to_owned();
    }

    /// Later fetches read `buildspec` from the default branch.
    pub fn set_buildspec(&self, buildspec: &[u8]) {
        lock(&self.0.fetched).buildspec = buildspec.to_vec();
    }

    /// Later fetches take `time`; one whose deadline comes first stops then, with
    /// [`FetchError::TimedOut`], as the git adapter does.
    pub fn set_fetch_time(&self, time: Duration) {
        *lock(&self.0.fetch_time) = time;
    }

    pub fn fail_next_fetch(&self, error: FetchError) {
        lock(&self.0.fetch_failures).push_back(error);
    }

    pub fn fail_next_archive(&self, error: ArchiveError) {
        lock(&self.0.archive_failures).push_back(error);
    }

    pub fn fetches(&self) -> Vec<FetchCall> {
        lock(&self.0.fetches).clone()
    }

    pub fn archives(&self) -> Vec<ArchiveCall> {
        lock(&self.0.archives).clone()
    }

    /// Workspaces handed out and not yet dropped (the scratch folders a real adapter would
    /// still hold).
    pub fn open_workspaces(&self) -> usize {
        self.0.open.load(Ordering::SeqCst)
    }
}

/// What [`FakeSource`] hands out per fetch: counted while it lives.
#[derive(Debug)]
pub struct FakeWorkspace {
    state: Arc<SourceState>,
    commit: String,
}

impl Drop for FakeWorkspace {
    fn drop(&mut self) {
        self.state.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SourceFetcher for FakeSource {
    type Workspace = FakeWorkspace;

    async fn fetch(
        &self,
        request: &BuildRequest,
        order: FetchOrder<'_>,
    ) -> Result<(FakeWorkspace, Fetched), FetchError> {
        lock(&self.0.fetches).push(FetchCall {
            request_id: request.request_id.clone(),
            target_url: order.target_url.to_owned(),
            deadline: order.settings.deadline,
            buildspec_paths: order.settings.buildspec_paths.clone(),
            username: order.credentials.map(|c| c.username.clone()),
        });
        let time = *lock(&self.0.fetch_time);
        if !time.is_zero() {
            tokio::time::sleep(time.min(order.settings.deadline)).await;
            if time > order.settings.deadline {
                return Err(FetchError::TimedOut(order.settings.deadline));
            }
        }
        if let Some(error) = lock(&self.0.fetch_failures).pop_front() {
            return Err(error);
        }
        let fetched = lock(&self.0.fetched).clone();
        (order.check_buildspec)(&fetched.buildspec).map_err(|problem| FetchError::BuildspecInvalid {
            path: fetched.buildspec_path.clone(),
            branch: fetched.default_branch.clone(),
            problem,
        })?;
        self.0.open.fetch_add(1, Ordering::SeqCst);
        Ok((FakeWorkspace { state: self.0.clone(), commit: fetched.commit.clone() }, fetched))
    }

    async fn write_archive(
        &self,
        workspace: &FakeWorkspace,
        order: ArchiveOrder,
    ) -> Result<SourceArchive, ArchiveError> {
        lock(&self.0.archives).push(ArchiveCall {
            commit: order.commit.clone(),
            replacements: order.options.replacements.clone(),
            compression_level: order.options.compression_level,
            limits: order.limits,
        });
        if let Some(error) = lock(&self.0.archive_failures).pop_front() {
            return Err(error);
        }
        let files = order.options.replacements.len() as u64;
        let bytes = order.options.replacements.iter().map(|(_, content)| content.len() as u64).sum();
        Ok(SourceArchive {
            path: PathBuf::from(format!("/fake-workspace/{}/{}.zip", workspace.commit, order.commit)),
            stats: ArchiveStats { files, bytes, ..ArchiveStats::default() },
        })
    }
}

/// An archive [`FakeStore`] was given: where the adapter said it was, and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArchive {
    pub path: PathBuf,
    pub metadata: ArtifactMetadata,
}

#[derive(Debug, Clone)]
struct Marker {
    content: String,
    version: u64,
    written: time::OffsetDateTime,
}

#[derive(Debug, Default)]
struct StoreState {
    markers: Mutex<BTreeMap<String, Marker>>,
    archives: Mutex<BTreeMap<String, StoredArchive>>,
    upload_failures: Mutex<VecDeque<StoreError>>,
    versions: AtomicUsize,
}

/// An [`ArtifactStore`] in memory. Archives are recorded by key (the file is never
/// opened); markers are created and replaced atomically, as S3's conditional writes do.
#[derive(Debug, Clone, Default)]
pub struct FakeStore(Arc<StoreState>);

impl FakeStore {
    /// The marker at `key`, as [`ArtifactStore::marker`] reads it.
    pub fn marker_at(&self, key: &str) -> Option<String> {
        lock(&self.0.markers).get(key).map(|m| m.content.clone())
    }

    /// Every marker: key → content.
    pub fn markers(&self) -> BTreeMap<String, String> {
        lock(&self.0.markers).iter().map(|(k, m)| (k.clone(), m.content.clone())).collect()
    }

    /// Every archive stored: key → what was given.
    pub fn archives(&self) -> BTreeMap<String, StoredArchive> {
        lock(&self.0.archives).clone()
    }

    /// Writes a marker, as a test's setting up (another stage's marker, an earlier run's).
    pub fn set_marker(&self, key: &str, content: &str) {
        let version = self.0.versions.fetch_add(1, Ordering::SeqCst) as u64;
        let marker = Marker { content: content.to_owned(), version, written: time::OffsetDateTime::now_utc() };
        lock(&self.0.markers).insert(key.to_owned(), marker);
    }

    pub fn fail_next_upload(&self, error: StoreError) {
        lock(&self.0.upload_failures).push_back(error);
    }
}

impl ArtifactStore for FakeStore {
    async fn put_archive(
        &self,
        key: &str,
        path: &Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        if let Some(error) = lock(&self.0.upload_failures).pop_front() {
            return Err(error);
        }
        let archive = StoredArchive { path: path.to_owned(), metadata: metadata.clone() };
        lock(&self.0.archives).insert(key.to_owned(), archive);
        Ok(StoredArtifact { key: key.to_owned(), version_id: None })
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        self.set_marker(key, content);
        Ok(())
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.marker_at(key))
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        let mut markers = lock(&self.0.markers);
        if let Some(existing) = markers.get(key) {
            return Ok(Some(StoredMarker { content: existing.content.clone(), version: existing.version.to_string() }));
        }
        let version = self.0.versions.fetch_add(1, Ordering::SeqCst) as u64;
        let marker = Marker { content: content.to_owned(), version, written: time::OffsetDateTime::now_utc() };
        markers.insert(key.to_owned(), marker);
        Ok(None)
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        let mut markers = lock(&self.0.markers);
        match markers.get_mut(key) {
            Some(marker) if marker.version.to_string() == seen.version => {
                marker.content = content.to_owned();
                marker.version = self.0.versions.fetch_add(1, Ordering::SeqCst) as u64;
                marker.written = time::OffsetDateTime::now_utc();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, max: usize) -> Result<Listing, StoreError> {
        let markers = lock(&self.0.markers);
        let archives = lock(&self.0.archives);
        let mut objects: Vec<ListedObject> = markers
            .iter()
            .map(|(key, marker)| (key, marker.written))
            .chain(archives.keys().map(|key| (key, time::OffsetDateTime::UNIX_EPOCH)))
            .filter(|(key, _)| key.starts_with(prefix) && start_after.is_none_or(|after| key.as_str() > after))
            .map(|(key, last_modified)| ListedObject { key: key.clone(), last_modified })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let truncated = objects.len() > max;
        objects.truncate(max);
        Ok(Listing { objects, truncated })
    }

    async fn archive_metadata(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        Ok(lock(&self.0.archives).get(key).map(|archive| archive.metadata.entries.clone()))
    }
}

/// One pipeline start [`FakePipelines`] was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineStart {
    pub pipeline: String,
    pub artifact: StoredArtifact,
    pub variables: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
struct PipelinesState {
    starts: Mutex<Vec<PipelineStart>>,
    failures: Mutex<VecDeque<StartError>>,
}

/// A [`PipelineStarter`] that records each start and names its runs `exec-<n>`; links go
/// to `https://pipelines.example.org/<pipeline>/<execution id>`.
#[derive(Debug, Clone, Default)]
pub struct FakePipelines(Arc<PipelinesState>);

impl FakePipelines {
    pub fn starts(&self) -> Vec<PipelineStart> {
        lock(&self.0.starts).clone()
    }

    pub fn fail_next_start(&self, error: StartError) {
        lock(&self.0.failures).push_back(error);
    }
}

impl PipelineStarter for FakePipelines {
    async fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> Result<String, StartError> {
        if let Some(error) = lock(&self.0.failures).pop_front() {
            return Err(error);
        }
        let mut starts = lock(&self.0.starts);
        starts.push(PipelineStart {
            pipeline: pipeline.to_owned(),
            artifact: artifact.clone(),
            variables: variables.to_vec(),
        });
        Ok(format!("exec-{}", starts.len()))
    }

    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String {
        format!("https://pipelines.example.org/{pipeline}/{execution_id}")
    }
}

/// What [`FakeForge`] says of pull requests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PullRequests {
    /// Open, by `pingou`, to `rawhide`, from the project asked about itself.
    OwnCommitters,
    /// This, for every pull request (`None`: the forge did not answer).
    Fixed(Option<PullRequestFacts>),
}

#[derive(Debug)]
struct ForgeState {
    flags: Mutex<Vec<FlagUpdate>>,
    failures: Mutex<VecDeque<ForgeError>>,
    pull_requests: Mutex<PullRequests>,
    /// `None`: commit access is unknown (the forge could not be asked).
    committers: Mutex<Option<Vec<String>>>,
    /// `(user, branch)` of each commit-access question.
    asked: Mutex<Vec<(String, String)>>,
}

/// A [`Forge`] that records the flags posted and answers the trust questions.
#[derive(Debug, Clone)]
pub struct FakeForge(Arc<ForgeState>);

impl Default for FakeForge {
    fn default() -> Self {
        FakeForge(Arc::new(ForgeState {
            flags: Mutex::default(),
            failures: Mutex::default(),
            pull_requests: Mutex::new(PullRequests::OwnCommitters),
            committers: Mutex::new(Some(vec!["pingou".into()])),
            asked: Mutex::default(),
        }))
    }
}

impl FakeForge {
    /// Every flag posted, in order.
    pub fn flags(&self) -> Vec<FlagUpdate> {
        lock(&self.0.flags).clone()
    }

    /// The `error` flags posted, in order.
    pub fn errors(&self) -> Vec<FlagUpdate> {
        self.flags().into_iter().filter(|f| f.status == FlagStatus::Error).collect()
    }

    /// Every pull request is `facts` (`None`: the forge does not answer).
    pub fn set_pull_request(&self, facts: Option<PullRequestFacts>) {
        *lock(&self.0.pull_requests) = PullRequests::Fixed(facts);
    }

    /// Who may commit (to any branch); `None`: the forge does not answer.
    pub fn set_committers(&self, users: Option<&[&str]>) {
        *lock(&self.0.committers) = users.map(|users| users.iter().map(|u| (*u).to_owned()).collect());
    }

    /// `(user, branch)` of each commit-access question, in order.
    pub fn commit_questions(&self) -> Vec<(String, String)> {
        lock(&self.0.asked).clone()
    }

    /// The next flag is not posted: `error` is returned instead.
    pub fn fail_next_flag(&self, error: ForgeError) {
        lock(&self.0.failures).push_back(error);
    }
}

impl Forge for FakeForge {
    async fn report(&self, update: &FlagUpdate) -> Result<(), ForgeError> {
        if let Some(error) = lock(&self.0.failures).pop_front() {
            return Err(error);
        }
        lock(&self.0.flags).push(update.clone());
        Ok(())
    }

    async fn pull_request(&self, _project_key: &str, project_path: &str, _id: u64) -> Option<PullRequestFacts> {
        match &*lock(&self.0.pull_requests) {
            PullRequests::OwnCommitters => Some(PullRequestFacts {
                status: "Open".into(),
                author: "pingou".into(),
                target_branch: "rawhide".into(),
                head: None,
                source: Some(project_path.to_owned()),
            }),
            PullRequests::Fixed(facts) => facts.clone(),
        }
    }

    async fn has_commit(&self, _project_key: &str, _project_path: &str, user: &str, branch: &str) -> Option<bool> {
        lock(&self.0.asked).push((user.to_owned(), branch.to_owned()));
        lock(&self.0.committers).as_ref().map(|committers| committers.iter().any(|c| c == user))
    }
}

/// A fixed secrets document (empty by default); [`FakeSecrets::failing`] answers with an
/// error instead.
#[derive(Debug, Clone, Default)]
pub struct FakeSecrets {
    document: Arc<SecretsDocument>,
    failure: Option<SecretsError>,
}

impl FakeSecrets {
    pub fn new(document: SecretsDocument) -> Self {
        FakeSecrets { document: Arc::new(document), failure: None }
    }

    pub fn failing(error: SecretsError) -> Self {
        FakeSecrets { document: Arc::default(), failure: Some(error) }
    }
}

impl Secrets for FakeSecrets {
    async fn document(&self) -> Result<Arc<SecretsDocument>, SecretsError> {
        match &self.failure {
            Some(error) => Err(error.clone()),
            None => Ok(self.document.clone()),
        }
    }
}

/// The project the doors' tests trigger: `demo-job` building Pagure project `demo` from a
/// loopback Pagure, every door open, forks allowed.
pub fn demo_project() -> crate::config::ProjectConfig {
    crate::config::ProjectConfig::from_settings(
        "demo-job",
        &crate::config::ProjectSettings {
            pagure_url: "http://127.0.0.1:5600/".into(),
            git_url: "git://127.0.0.1:5602".into(),
            project: "demo".into(),
            pipeline: "demo-ci".into(),
            triggers: vec![
                crate::model::TriggerKind::Jenkins,
                crate::model::TriggerKind::Json,
                crate::model::TriggerKind::Webhook,
            ],
            allow_forks: true,
            allow_insecure_git_url: true,
            buildspec: "buildspec.yml".into(),
            untrusted_pipeline: None,
            approval_phrase: None,
            shared_pagure_api_token: None,
        },
    )
    .expect("project")
}
