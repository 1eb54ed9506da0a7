//! The work stage, the same in Lambda and in local mode: for one build request, fetch the
//! tree, inject the trigger into the target's default-branch buildspec, zip, store the
//! archive with metadata, and start the project's pipeline on exactly that archive
//! ([`Worker`]). Domain code behind ports: git and the file system are a [`SourceFetcher`]
//! ([`source`]), the rest the [`ArtifactStore`](crate::ports::ArtifactStore),
//! [`PipelineStarter`](crate::ports::PipelineStarter), [`Forge`](crate::forge::Forge) and
//! [`Secrets`](crate::ports::Secrets); [`crate::fakes`] has an in-memory one of each.
//!
//! Idempotent per request: a marker `<prefix>/<project>/<request-id>.started` is written
//! after the pipeline starts, and a redelivered request that finds it starts nothing.
//! Idempotent per build too: requests for the same event and commit within the dedupe
//! window start one pipeline ([`crate::dedupe`]).
//! Failures are terminal (reported as an `error` flag, not retried) or transient (retried
//! by the queue; reported when the last attempt fails too): [`WorkError`]'s
//! [`Transience`].
//!
//! Trust: each request is classified before it builds ([`trust`]): trusted requests (pushes
//! to the project itself, pull requests from the project itself or their author's own fork
//! whose author may commit to the target branch, and approved heads) start the project's
//! `pipeline`; untrusted ones its `untrusted_pipeline`, or wait for a committer's approval
//! comment, or are refused with the settings to change.
//!
//! Flags: `pending` "Queued for AWS CodePipeline" once the pipeline is started, linking to
//! the execution; `pending` with what is awaited for an untrusted pull request waiting for
//! an approval; `error` with the reason when the request cannot be built. This is the
//! first moment a flag can be right: before the fetch, a PR's head commit is unknown, and
//! the accept Lambda cannot call Pagure after answering (its sandbox is frozen).

use std::time::Duration;

use crate::archive::{ArchiveError, ArchiveLimits};
use crate::buildspec::inject;
use crate::config::WorkConfig;
use crate::model::{BuildRequest, Cause, TrustClass};
use crate::ports::{ArtifactMetadata, SecretsError, StartError, StoreError};
use crate::registry::RegistryError;
use crate::retry::{Retry, Transience};
use crate::validate::RepoError;

mod service;
pub mod source;
pub mod trust;

pub use service::Worker;
pub use source::{
    ArchiveOrder, BuildspecProblem, FetchError, FetchOrder, FetchSettings, Fetched, GitCredentials, SourceArchive,
    SourceFetcher,
};

/// Limits and places for the work stage.
#[derive(Debug, Clone)]
pub struct WorkSettings {
    pub fetch: FetchSettings,
    pub archive: ArchiveLimits,
    /// Object keys start with this (`sources`).
    pub key_prefix: String,
    /// See [`WorkConfig::dedupe_window`].
    pub dedupe_window: Duration,
    /// See [`WorkConfig::compression_level`].
    pub compression_level: u8,
    /// See [`WorkConfig::codebuild_buildspec`].
    pub codebuild_buildspec: String,
}

impl WorkSettings {
    /// The configured fetch and archive limits; everything else as [`Default`].
    pub fn with_limits(work: &WorkConfig) -> Self {
        WorkSettings {
            fetch: FetchSettings {
                deadline: work.fetch_timeout,
                max_bytes: work.max_fetch_bytes,
                ..FetchSettings::default()
            },
            archive: ArchiveLimits { max_entries: work.max_archive_entries, max_bytes: work.max_archive_bytes },
            dedupe_window: work.dedupe_window,
            compression_level: work.compression_level,
            codebuild_buildspec: work.codebuild_buildspec.clone(),
            ..WorkSettings::default()
        }
    }
}

impl Default for WorkSettings {
    fn default() -> Self {
        WorkSettings {
            fetch: FetchSettings::default(),
            archive: ArchiveLimits::default(),
            key_prefix: "sources".into(),
            dedupe_window: Duration::from_secs(crate::config::DEFAULT_DEDUPE_WINDOW_SECONDS),
            compression_level: crate::archive::DEFAULT_COMPRESSION_LEVEL,
            codebuild_buildspec: crate::config::DEFAULT_CODEBUILD_BUILDSPEC.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkOutcome {
    Started {
        key: String,
        commit: String,
        execution_id: String,
        /// The pipeline started: the project's `pipeline` or its `untrusted_pipeline`.
        pipeline: String,
        trust: TrustClass,
    },
    /// An untrusted pull request waiting for a committer's approval of its head `commit`;
    /// `comment` says what is awaited.
    Awaiting { commit: String, comment: String },
    /// A redelivery of a request whose pipeline already started.
    AlreadyStarted { execution_id: String },
    /// Another request for the same build (same event, same commit) came first, within the
    /// dedupe window, and its pipeline had not started when this one was accepted: that one
    /// builds, this one starts nothing. `started`: that pipeline has started since.
    Duplicate { of: String, started: bool },
    /// A pull request that Pagure says is no longer open.
    Ignored { reason: String },
}

/// What is known of a request while it is processed, for the flag and clean-up of a failure.
#[derive(Debug, Default)]
pub struct Progress {
    /// The resolved commit, once fetched.
    pub commit: Option<String>,
    /// The claim this request holds on its build (see [`crate::dedupe`]).
    pub claim: Option<String>,
}

/// The comment of the flag posted when the pipeline has started.
pub const QUEUED_COMMENT: &str = "Queued for AWS CodePipeline";

/// Why work that ran out of time stopped (a transient failure: tried again).
pub const CUT_SHORT: &str = "cut short: the work function's time for this request ran out";

/// Why a request was not built. Its text is the `error` flag's comment; [`Transience`]
/// says whether the queue tries it again.
#[derive(Debug, thiserror::Error)]
pub enum WorkError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("project `{0}` is no longer configured on the bridge")]
    ProjectGone(String),
    /// The queue is trusted, but the allow-list is the SSRF boundary: checked again here.
    #[error("repository refused: {0}")]
    RepositoryRefused(#[source] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The time for this request ran out.
    #[error("{CUT_SHORT}")]
    CutShort,
    /// The fetch, shortened to the time left for this request, ran out of it.
    #[error("{CUT_SHORT} (during the fetch)")]
    CutShortFetching(#[source] FetchError),
    /// Not trusted, and the project has no way to build it: the reason names the settings.
    #[error("{0}")]
    NotBuilt(String),
    #[error("pipeline `{pipeline}` not started: {source}")]
    UnsafeVariable {
        pipeline: String,
        #[source]
        source: UnsafeVariable,
    },
    #[error("`{path}`: {problem}")]
    Buildspec {
        path: String,
        #[source]
        problem: BuildspecProblem,
    },
    #[error("{}", archive_reason(.0))]
    Archive(#[source] ArchiveError),
    #[error("{}", start_reason(.pipeline, .source))]
    Start {
        pipeline: String,
        #[source]
        source: StartError,
    },
}

fn archive_reason(e: &ArchiveError) -> String {
    match e.retry() {
        Retry::Transient => format!("archive: {e}"),
        Retry::Terminal => format!("the tree cannot be archived: {e}"),
    }
}

/// What the pipeline service said; a refusal names the pipeline.
fn start_reason(pipeline: &str, e: &StartError) -> String {
    match e.retry() {
        Retry::Transient => e.cause().to_string(),
        Retry::Terminal => format!("pipeline `{pipeline}`: {}", e.cause()),
    }
}

impl Transience for WorkError {
    fn retry(&self) -> Retry {
        match self {
            // The bridge's own configuration, not the request: a request waits in the queue
            // while a person fixes it (a malformed secret too), and builds then.
            WorkError::Registry(e) => e.retry(),
            WorkError::Secrets(e) => e.retry(),
            WorkError::CutShort | WorkError::CutShortFetching(_) => Retry::Transient,
            WorkError::Store(e) => e.retry(),
            WorkError::Fetch(e) => e.retry(),
            WorkError::Archive(e) => e.retry(),
            WorkError::Start { source, .. } => source.retry(),
            WorkError::ProjectGone(_)
            | WorkError::RepositoryRefused(_)
            | WorkError::NotBuilt(_)
            | WorkError::UnsafeVariable { .. }
            | WorkError::Buildspec { .. } => Retry::Terminal,
        }
    }
}

/// What the consumer does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Delete it: the request has reached its final state.
    Done(Ending),
    /// Leave it for another attempt (and, after the last, the dead-letter queue).
    Retry(String),
}

/// The final state of a request that is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its pipeline was started (by this delivery or an earlier one).
    Started { execution_id: String },
    /// Merged into an earlier request for the same build.
    Duplicate { of: String },
    /// Nothing to build, and why (a pull request closed before its turn).
    Ignored { reason: String },
    /// Nothing built yet: an untrusted pull request waits for a committer's approval, which
    /// the `pending` flag (posted when `flagged`) asks for.
    Awaiting { comment: String, flagged: bool },
    /// Cannot be built; the reason went to Pagure as an `error` flag (`flagged`), or, when
    /// Pagure refused the flag, to the log only.
    Failed { reason: String, flagged: bool },
}

/// The characters a pipeline variable's value may have. The templates' CodeBuild actions
/// pass the variables on as `#{variables.NAME}` inside their `EnvironmentVariables` JSON
/// text, and nothing says CodePipeline escapes what it substitutes there: a `"` or `\`
/// would end the string or add entries. These need no JSON escaping and are no variable
/// syntax (`#`, `{`, `}`, `$` are out), and they cover every value the bridge sends: request
/// ids (hex), project full names (`[ns/]name`, Pagure's `[A-Za-z0-9_.+-]`), causes (a PR
/// number or a full commit id), commits, and canonical repository URLs (scheme, host, port,
/// `[…]` around an IPv6 host, the configured base path with its `~` or `%`-escapes, Pagure
/// names).
pub fn pipeline_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '~' | '=' | '-' | '%' | '[' | ']')
}

/// A pipeline variable whose value has a character outside [`pipeline_value_char`]: the
/// variable and the character, never the value, which may be hostile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name} has the character {character:?}, outside what a pipeline variable may hold ([A-Za-z0-9._:/@+~=%[]-]: the pipeline pastes it into JSON unescaped)"
)]
pub struct UnsafeVariable {
    pub name: &'static str,
    pub character: char,
}

/// Refuses a pipeline variable whose value has a character outside [`pipeline_value_char`].
pub fn check_pipeline_variables(variables: &[(&'static str, String)]) -> Result<(), UnsafeVariable> {
    for (name, value) in variables {
        if let Some(character) = value.chars().find(|c| !pipeline_value_char(*c)) {
            return Err(UnsafeVariable { name, character });
        }
    }
    Ok(())
}

/// A buildspec the trigger can be injected into: UTF-8 YAML, a mapping, `version: 0.2`,
/// within the size limits. The [`source::BuildspecCheck`] the work stage gives a fetch.
pub fn check_buildspec(bytes: &[u8]) -> Result<(), BuildspecProblem> {
    let text = std::str::from_utf8(bytes).map_err(BuildspecProblem::NotUtf8)?;
    inject(text, &[])?;
    Ok(())
}

/// Object metadata and the one-line revision summary CodePipeline shows.
pub fn metadata(request: &BuildRequest, fetched: &Fetched, trust: TrustClass) -> ArtifactMetadata {
    let short = &fetched.commit[..fetched.commit.len().min(12)];
    let what = match request.cause {
        Cause::PullRequest { id } => {
            format!("PR #{id} {} -> {}", request.branch, request.branch_to.as_deref().unwrap_or(""))
        }
        Cause::Commit { .. } => format!("push to {}", request.branch),
    };
    let from = match &request.project.fork_user {
        Some(user) => format!(" from forks/{user}/{}", request.project.target_fullname()),
        None => String::new(),
    };
    let mut revision_summary = format!("{} {what} ({short}){from}", request.project.target_fullname());
    revision_summary.truncate(2048);
    ArtifactMetadata {
        entries: vec![
            ("pagure-project".into(), request.project.target_fullname()),
            ("pagure-repo".into(), request.repo_url.clone()),
            ("pagure-cause".into(), request.cause.as_trigger_value()),
            ("pagure-branch".into(), request.branch.clone()),
            ("pagure-branch-to".into(), request.branch_to.clone().unwrap_or_default()),
            ("pagure-commit".into(), fetched.commit.clone()),
            ("pagure-request-id".into(), request.request_id.clone()),
            ("pagure-trigger".into(), request.trigger.as_str().into()),
            ("pagure-trust".into(), trust.as_str().into()),
        ],
        revision_summary,
    }
}

#[cfg(test)]
mod tests;
