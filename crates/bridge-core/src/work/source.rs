//! The source port: what the work stage needs from git and the file system, and nothing
//! more. An adapter ([`SourceFetcher`]; `bridge-git`'s `GitFetcher` in both deployments)
//! fetches what a request names into a place it owns, reads the buildspec from the target's
//! default branch, and writes the source archive there. The work stage never opens what the
//! adapter wrote: the archive's path is a value it hands to the
//! [`ArtifactStore`](crate::ports::ArtifactStore).

use std::path::PathBuf;
use std::time::Duration;

use crate::archive::{ArchiveError, ArchiveLimits, ArchiveOptions, ArchiveStats};
use crate::auth::Secret;
use crate::buildspec::BuildspecError;
use crate::model::BuildRequest;
use crate::ports::ErrorCause;
use crate::retry::{Retry, Transience};

/// Limits and choices for one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// Whole fetch (all transfers) must finish within this.
    pub deadline: Duration,
    /// Most bytes received over all transfers.
    pub max_bytes: u64,
    /// Depths tried in turn for a commit that is not the branch tip.
    pub deepen_steps: Vec<i32>,
    /// Buildspec paths tried in order on the default branch.
    pub buildspec_paths: Vec<String>,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            deadline: Duration::from_secs(300),
            max_bytes: 2 * 1024 * 1024 * 1024,
            deepen_steps: vec![1, 16, 128, 1024],
            buildspec_paths: vec!["buildspec.yml".into(), "buildspec.yaml".into()],
        }
    }
}

/// HTTP credentials for private repositories.
#[derive(Debug, Clone)]
pub struct GitCredentials {
    pub username: String,
    pub password: Secret,
}

/// What was fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit to build (for a PR, the resolved head).
    pub commit: String,
    /// The target's default branch name, without `refs/heads/`.
    pub default_branch: String,
    /// The buildspec's path and content, from the default branch.
    pub buildspec_path: String,
    pub buildspec: Vec<u8>,
}

/// Why a buildspec cannot take the trigger's variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildspecProblem {
    #[error("the buildspec is not UTF-8")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error(transparent)]
    Invalid(#[from] BuildspecError),
}

/// The check a fetch runs on the buildspec as soon as it is read, before the (possibly
/// large) tree is transferred: [`super::check_buildspec`] in the work stage.
pub type BuildspecCheck = fn(&[u8]) -> Result<(), BuildspecProblem>;

/// Why a fetch failed. Where the git library (or the task that ran it) failed, its error is
/// kept as the source ([`ErrorCause`]: core does not name the adapter's types).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no {tried} on the default branch `{branch}` of `{project}`")]
    NoBuildspec { tried: String, branch: String, project: String },
    #[error("`{path}` on the default branch `{branch}` is not a regular file")]
    BuildspecNotAFile { path: String, branch: String },
    #[error("`{path}` on the default branch `{branch}`: {problem}")]
    BuildspecInvalid {
        path: String,
        branch: String,
        #[source]
        problem: BuildspecProblem,
    },
    #[error("the repository has no default branch (its HEAD points nowhere)")]
    NoDefaultBranch,
    #[error("branch `{branch}` does not exist (any more) in the repository")]
    BranchGone { branch: String },
    #[error(
        "commit {sha} is not among the last {depth} commits of branch `{branch}` (force-pushed away, or on another branch)"
    )]
    CommitNotOnBranch { sha: String, branch: String, depth: i32 },
    #[error("pull request #{id} has no head in the target repository (refs/pull/{id}/head)")]
    PullRequestGone { id: u64 },
    /// Not found, or access refused: what the host or the bridge said, with what to fix.
    #[error("the repository was not found or access was refused: {0}")]
    Refused(String),
    #[error("the fetch received more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The fetch's own deadline ([`FetchSettings::deadline`]) passed.
    #[error("the fetch took longer than {0:?}")]
    TimedOut(Duration),
    /// The host stopped answering (a connect or I/O time limit), which another attempt may
    /// not meet.
    #[error("git: the git host stopped answering: {0}")]
    Stalled(#[source] ErrorCause),
    /// Network trouble, server errors.
    #[error("git: {0}")]
    Transient(#[source] ErrorCause),
    #[error("local git storage: {0}")]
    Local(#[source] ErrorCause),
    #[error("scratch folder: {0}")]
    Scratch(#[source] ErrorCause),
    /// The task running the fetch ended without an answer.
    #[error("fetch task: {0}")]
    Task(#[source] ErrorCause),
}

impl Transience for FetchError {
    /// Terminal errors will not go away by retrying: the request fails for good. A fetch
    /// stopped by its own deadline is terminal (the repository is too slow to fetch); the
    /// work stage tells one it shortened to the request's time left from that.
    fn retry(&self) -> Retry {
        match self {
            FetchError::Stalled(_)
            | FetchError::Transient(_)
            | FetchError::Local(_)
            | FetchError::Scratch(_)
            | FetchError::Task(_) => Retry::Transient,
            FetchError::NoBuildspec { .. }
            | FetchError::BuildspecNotAFile { .. }
            | FetchError::BuildspecInvalid { .. }
            | FetchError::NoDefaultBranch
            | FetchError::BranchGone { .. }
            | FetchError::CommitNotOnBranch { .. }
            | FetchError::PullRequestGone { .. }
            | FetchError::Refused(_)
            | FetchError::TooLarge { .. }
            | FetchError::TimedOut(_) => Retry::Terminal,
        }
    }
}

/// Writing the archive: the disk or the writer failing is worth another attempt; a tree
/// that breaks a limit or a rule breaks it again.
impl Transience for ArchiveError {
    fn retry(&self) -> Retry {
        match self {
            ArchiveError::Io(_) | ArchiveError::Write(_) => Retry::Transient,
            _ => Retry::Terminal,
        }
    }
}

/// What one fetch needs besides the request: where the target is, the limits, the
/// credentials, and the buildspec check.
#[derive(Debug, Clone, Copy)]
pub struct FetchOrder<'a> {
    /// The target project's clone URL (for the default branch and pull-request heads),
    /// checked against the project's allow-list.
    pub target_url: &'a str,
    pub settings: &'a FetchSettings,
    pub credentials: Option<&'a GitCredentials>,
    pub check_buildspec: BuildspecCheck,
}

/// How to write the archive of a fetched commit.
#[derive(Debug, Clone)]
pub struct ArchiveOrder {
    pub commit: String,
    /// The injected buildspec among the replacements, and the compression level.
    pub options: ArchiveOptions,
    pub limits: ArchiveLimits,
    /// Writing stops with a transient I/O error ([`ArchiveError::Io`], `TimedOut`) once this
    /// has passed, rather than writing on after the request was cut short.
    pub until: Option<tokio::time::Instant>,
}

/// An archive the adapter wrote, for the store to upload: `path` is valid while the
/// workspace it was written in lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArchive {
    pub path: PathBuf,
    pub stats: ArchiveStats,
}

/// Fetches a request's tree shallowly and writes its source archive (git and the file
/// system in `bridge-git`; in memory in [`crate::fakes`]).
pub trait SourceFetcher: Send + Sync {
    /// One request's fetched repository and archive, in a place the adapter owns (a scratch
    /// folder): removed when dropped, on every path.
    type Workspace: Send + Sync;

    /// Fetches what `request` names: the target's default branch, the buildspec from it
    /// (the first of `settings.buildspec_paths`, checked with `check_buildspec` before the
    /// tree is transferred), then the commit or pull-request head to build. Stops with
    /// [`FetchError::TimedOut`] once `settings.deadline` has passed.
    fn fetch(
        &self,
        request: &BuildRequest,
        order: FetchOrder<'_>,
    ) -> impl Future<Output = Result<(Self::Workspace, Fetched), FetchError>> + Send;

    /// Writes the zip of `order.commit`'s tree, with `order.options`' replacements, into
    /// `workspace`.
    fn write_archive(
        &self,
        workspace: &Self::Workspace,
        order: ArchiveOrder,
    ) -> impl Future<Output = Result<SourceArchive, ArchiveError>> + Send;
}
