//! Pagure's flag API, as `CONTRACT.md` section (a) describes it: commit and pull-request
//! flags, `Authorization: token <t>`, `percent` always a string, one flag per build request
//! updated in place through its `uid`.
//!
//! Transient failures (5xx, 429, timeouts, connection errors) are retried with exponential
//! backoff and jitter; a 4xx is final and its error carries Pagure's `error_code` and
//! `errors`. Errors and logs never contain the token: it only ever goes into one header,
//! marked sensitive.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

pub mod answers;
#[cfg(feature = "pagure-client")]
mod client;
#[cfg(feature = "pagure-client")]
pub use client::PagureClient;

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

/// Longest comment sent: Pagure has no limit, but a flag is read at a glance.
pub const MAX_COMMENT_CHARS: usize = 500;

impl Flag {
    /// Checks what Pagure would refuse (or store wrongly), before any call is made.
    pub fn check(&self) -> Result<(), PagureError> {
        let invalid = |what: &str| Err(PagureError::Invalid(what.to_owned()));
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
            return Err(PagureError::Invalid(format!("Pagure would refuse the flag url `{}`", self.url)));
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

    /// `api/0/<project>/c/<sha>/flag` or `api/0/<project>/pull-request/<id>/flag`, relative
    /// to Pagure's `APP_URL`.
    pub fn api_path(&self) -> String {
        match &self.on {
            FlagOn::Commit(sha) => format!("api/0/{}/c/{sha}/flag", self.project_path),
            FlagOn::PullRequest(id) => format!("api/0/{}/pull-request/{id}/flag", self.project_path),
        }
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

/// Pagure's answer to a flag POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagPosted {
    pub uid: String,
    /// `"Flag updated"` rather than `"Flag added"`.
    pub updated: bool,
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

/// A flag as Pagure lists it (no `uid`: Pagure does not show it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListedFlag {
    pub username: String,
    pub comment: String,
    pub url: String,
    pub status: FlagStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagureError {
    /// A 4xx: Pagure will answer the same again, so it is not retried.
    #[error("Pagure refused the flag on {target} with HTTP {status} {code}: {error}{}", errors.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Refused { target: String, status: u16, code: String, error: String, errors: Option<String> },
    /// 5xx, 429, timeouts and connection failures, after every attempt.
    #[error("Pagure did not answer usefully for {target} after {attempts} attempts: {last}")]
    Unavailable { target: String, attempts: u32, last: String },
    /// The flag or its answer is not what the contract allows.
    #[error("{0}")]
    Invalid(String),
}

impl PagureError {
    /// Worth trying again later (another queue delivery, another EventBridge attempt).
    pub fn is_transient(&self) -> bool {
        matches!(self, PagureError::Unavailable { .. })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_follow_the_contract() {
        let path = FlagTarget::project_path(Some("rpms"), "bash", None);
        let commit = FlagTarget { project_path: path.clone(), on: FlagOn::Commit("ab12".into()) };
        assert_eq!(commit.api_path(), "api/0/rpms/bash/c/ab12/flag");
        let pr = FlagTarget { project_path: path, on: FlagOn::PullRequest(7) };
        assert_eq!(pr.api_path(), "api/0/rpms/bash/pull-request/7/flag");
        assert_eq!(FlagTarget::project_path(None, "demo", Some("bob")), "fork/bob/demo");
        assert_eq!(FlagTarget::project_path(Some("ns"), "demo", Some("bob")), "fork/bob/ns/demo");
    }

    #[test]
    fn url_rule_matches_pagure() {
        for good in [
            "https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/1/projects/p/build/p%3Aab/?region=eu-west-1",
            "http://localhost:8080/runs/1",
            "http://127.0.0.1/x",
            "http://[::1]/x",
            "ftp://ci.example.org/log",
            "git://example.io/x#frag",
        ] {
            assert!(url_acceptable(good), "{good}");
        }
        for bad in ["http://ci/1", "file:///etc/passwd", "https://example.c0m/", "not a url", "https://.io/"] {
            assert!(!url_acceptable(bad), "{bad}");
        }
    }

    #[test]
    fn flag_checks_uid_and_fields() {
        let flag = Flag {
            username: "AWS CodeBuild".into(),
            comment: "Build #1 running".into(),
            url: "https://example.org/".into(),
            status: FlagStatus::Pending,
            percent: None,
            uid: "0123456789abcdef0123456789abcdef".into(),
        };
        assert_eq!(flag.check(), Ok(()));
        let long = Flag { uid: "x".repeat(33), ..flag.clone() };
        assert!(matches!(long.check(), Err(PagureError::Invalid(_))));
        let no_comment = Flag { comment: "  ".into(), ..flag.clone() };
        assert!(no_comment.check().is_err());
        let bad_url = Flag { url: "http://ci/1".into(), ..flag };
        assert!(bad_url.check().is_err());
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let policy = RetryPolicy::default();
        for retry in 1..10 {
            let full = policy.base.saturating_mul(1 << (retry - 1)).min(policy.cap);
            let delay = policy.delay(retry);
            assert!(delay >= full / 2 && delay <= full, "retry {retry}: {delay:?} outside {:?}..={full:?}", full / 2);
        }
    }
}
