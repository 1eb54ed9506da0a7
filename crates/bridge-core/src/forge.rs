//! The forge port: what the stages need from a forge (Pagure today; Forgejo's commit
//! statuses would fit the same shape). A build state is shown as a *flag*: a status, a
//! comment and a link on one commit or pull request, updated in place through its `uid`.
//!
//! `bridge-pagure` implements [`Forge`] over Pagure's API; [`LogStatus`] logs instead.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::retry::{Retry, Transience};

/// The statuses Pagure accepts (`FLAG_STATUSES_LABELS`; case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagStatus {
    Pending,
    Success,
    Failure,
    Error,
    Canceled,
}

impl FlagStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagStatus::Pending => "pending",
            FlagStatus::Success => "success",
            FlagStatus::Failure => "failure",
            FlagStatus::Error => "error",
            FlagStatus::Canceled => "canceled",
        }
    }

    /// True for the states a build ends in.
    pub fn is_final(self) -> bool {
        !matches!(self, FlagStatus::Pending)
    }
}

impl std::str::FromStr for FlagStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(FlagStatus::Pending),
            "success" => Ok(FlagStatus::Success),
            "failure" => Ok(FlagStatus::Failure),
            "error" => Ok(FlagStatus::Error),
            "canceled" => Ok(FlagStatus::Canceled),
            other => Err(format!("`{other}` is not a flag status (pending, success, failure, error, canceled)")),
        }
    }
}

/// What a flag says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The flag's name on Pagure; kept by Pagure when a flag is updated.
    pub username: String,
    pub comment: String,
    pub url: String,
    pub status: FlagStatus,
    pub percent: Option<u8>,
    /// At most 32 characters and globally unique: Pagure finds the flag to update by
    /// (commit, uid), whatever the project.
    pub uid: String,
}

/// The flags' name when the deployment does not choose one (`PCB_FLAG_USERNAME`).
pub const DEFAULT_FLAG_USERNAME: &str = "AWS CodeBuild";

/// Longest comment sent: Pagure has no limit, but a flag is read at a glance.
pub const MAX_COMMENT_CHARS: usize = 500;

impl Flag {
    /// Checks what Pagure would refuse (or store wrongly), before any call is made.
    pub fn check(&self) -> Result<(), InvalidFlag> {
        let invalid = |what: &str| Err(InvalidFlag(what.to_owned()));
        if self.username.trim().is_empty() {
            return invalid("the flag username is empty");
        }
        if self.comment.trim().is_empty() {
            return invalid("the flag comment is empty");
        }
        if self.uid.is_empty()
            || self.uid.len() > 32
            || !self.uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return invalid("the flag uid must be 1 to 32 letters, digits or dashes");
        }
        if !url_acceptable(&self.url) {
            return Err(InvalidFlag(format!("Pagure would refuse the flag url `{}`", self.url)));
        }
        Ok(())
    }
}

/// Pagure's URL rule (`pagure/utils.py:485-561`): scheme http, https, ftp or git; host an
/// IP address, `localhost`, or a dotted name whose last label is at least two letters.
pub fn url_acceptable(text: &str) -> bool {
    let Ok(url) = Url::parse(text) else { return false };
    if !matches!(url.scheme(), "http" | "https" | "ftp" | "git") {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name.rsplit_once('.').is_some_and(|(head, tld)| {
                    !head.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
                })
        }
        None => false,
    }
}

/// Where a flag goes: a commit or a pull request of one project.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlagTarget {
    /// The project part of API paths: `[fork/<user>/][<namespace>/]<name>`.
    pub project_path: String,
    pub on: FlagOn,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FlagOn {
    Commit(String),
    PullRequest(u64),
}

impl FlagTarget {
    /// `fork/<user>/…` (singular) in API paths, where git paths say `forks/<user>/…`.
    pub fn project_path(namespace: Option<&str>, name: &str, fork_user: Option<&str>) -> String {
        let mut path = String::new();
        if let Some(user) = fork_user {
            path.push_str("fork/");
            path.push_str(user);
            path.push('/');
        }
        if let Some(ns) = namespace {
            path.push_str(ns);
            path.push('/');
        }
        path.push_str(name);
        path
    }
}

impl fmt::Display for FlagTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.on {
            FlagOn::Commit(sha) => write!(f, "{} commit {sha}", self.project_path),
            FlagOn::PullRequest(id) => write!(f, "{} PR #{id}", self.project_path),
        }
    }
}

/// What Pagure's API says of a pull request (`GET /api/0/<repo>/pull-request/<id>`,
/// `CONTRACT.md` (e)): what the work stage needs to decide whether to build it, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestFacts {
    /// `Open`, `Merged` or `Closed`.
    pub status: String,
    /// `user.name`: who opened it.
    pub author: String,
    /// `branch`: the target branch (Pagure's, not what a trigger claims).
    pub target_branch: String,
    /// `commit_stop`: its head when Pagure last looked (`null` for a PR without commits).
    pub head: Option<String>,
    /// `repo_from.fullname`: the project its head comes from (`demo`, `ns/demo`,
    /// `forks/alice/ns/demo`); `None` for a remote pull request (`repo_from` null, the head
    /// pulled from `remote_git`, a URL anyone may give).
    pub source: Option<String>,
}

/// One flag to post: where, which, and what it says. The flag's `username` is the
/// reporter's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagUpdate {
    pub project_key: String,
    pub target: FlagTarget,
    pub uid: String,
    pub status: FlagStatus,
    pub comment: String,
    pub url: String,
    pub percent: Option<u8>,
}

/// A flag that the forge would refuse or store wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFlag(pub String);

/// Attempts and waits for transient failures: the wait before retry `n` (from 1) is drawn
/// between half and all of `min(base × 2ⁿ⁻¹, cap)`, so concurrent reporters spread out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
    /// Each attempt's whole time limit (connect, send, answer).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub fn delay(&self, retry: u32) -> Duration {
        let full = self.base.saturating_mul(1u32 << retry.saturating_sub(1).min(16)).min(self.cap);
        let half = full / 2;
        half + Duration::from_nanos(fastrand::u64(0..=(full - half).as_nanos() as u64))
    }
}

/// A failed forge call, and whether it is worth another attempt later (the queue's or
/// EventBridge's).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ForgeError {
    pub retry: Retry,
    pub message: String,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ForgeError {
    pub fn transient(message: impl Into<String>) -> Self {
        ForgeError { retry: Retry::Transient, message: message.into(), source: None }
    }

    pub fn terminal(message: impl Into<String>) -> Self {
        ForgeError { retry: Retry::Terminal, message: message.into(), source: None }
    }

    /// Wraps an adapter's own error, keeping it as the source and its classification.
    pub fn from_source<E: Transience + std::error::Error + Send + Sync + 'static>(error: E) -> Self {
        ForgeError { retry: error.retry(), message: error.to_string(), source: Some(Box::new(error)) }
    }
}

impl Transience for ForgeError {
    fn retry(&self) -> Retry {
        self.retry
    }
}

/// What the stages need from a forge: show a build state (a flag), and read the facts the
/// trust decision rests on. `bridge-pagure` is the first adapter.
pub trait Forge: Send + Sync {
    fn report(&self, update: &FlagUpdate) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// True when the flag already shows a final state for the same build (same `url`): a
    /// late `IN_PROGRESS` event must not turn a finished build back to pending.
    fn already_final(&self, _update: &FlagUpdate) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// What Pagure says of pull request `id` of project `project_path` (`[ns/]name` of the
    /// target): status, author, target branch, head. `None` when it cannot be asked or did
    /// not answer usefully.
    fn pull_request(
        &self,
        _project_key: &str,
        _project_path: &str,
        _id: u64,
    ) -> impl Future<Output = Option<PullRequestFacts>> + Send {
        async { None }
    }

    /// Whether Pagure lets `user` commit to `branch` of `project_path`; `None` when unknown
    /// (not asked, unreachable, refused), which the work stage treats as "no".
    fn has_commit(
        &self,
        _project_key: &str,
        _project_path: &str,
        _user: &str,
        _branch: &str,
    ) -> impl Future<Output = Option<bool>> + Send {
        async { None }
    }
}

/// Logs each state: local mode without a Pagure token, and tests.
#[derive(Debug, Clone, Default)]
pub struct LogStatus;

impl Forge for LogStatus {
    async fn report(&self, update: &FlagUpdate) -> Result<(), ForgeError> {
        tracing::info!(
            project = %update.project_key, target = %update.target, uid = %update.uid, status = update.status.as_str(),
            comment = %update.comment, url = %update.url, "build status (not posted: no Pagure token)"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
