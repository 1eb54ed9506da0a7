//! Pagure, the first forge: its flag API, pull-request and commit-access queries, project
//! and token look-ups, as `CONTRACT.md` sections (a) and (e) describe them,
//! [`PagureForge`], the [`Forge`](bridge_core::forge::Forge) adapter the stages use, and
//! [`PagureWebhooks`], the [`WebhookDialect`](bridge_core::trigger::WebhookDialect) the
//! accept service reads Pagure's web-hooks with.
//!
//! Transient failures (5xx, 429, timeouts, connection errors) are retried with exponential
//! backoff and jitter; a 4xx is final and its error carries Pagure's `error_code` and
//! `errors`. Errors and logs never contain the token: it only ever goes into one header,
//! marked sensitive.

use bridge_core::forge::{FlagOn, FlagStatus, FlagTarget};
use bridge_core::retry::{Retry, Transience};
use serde::Deserialize;

pub mod answers;
mod client;
mod forge;
pub mod webhook;

pub use client::PagureClient;
pub use forge::PagureForge;
pub use webhook::PagureWebhooks;

/// `api/0/<project>/c/<sha>/flag` or `api/0/<project>/pull-request/<id>/flag`, relative
/// to Pagure's `APP_URL`.
pub fn api_path(target: &FlagTarget) -> String {
    match &target.on {
        FlagOn::Commit(sha) => format!("api/0/{}/c/{sha}/flag", target.project_path),
        FlagOn::PullRequest(id) => format!("api/0/{}/pull-request/{id}/flag", target.project_path),
    }
}

/// Pagure's answer to a flag POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagPosted {
    pub uid: String,
    /// `"Flag updated"` rather than `"Flag added"`.
    pub updated: bool,
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

impl Transience for PagureError {
    /// Worth trying again later (another queue delivery, another EventBridge attempt).
    fn retry(&self) -> Retry {
        match self {
            PagureError::Unavailable { .. } => Retry::Transient,
            PagureError::Refused { .. } | PagureError::Invalid(_) => Retry::Terminal,
        }
    }
}

impl From<bridge_core::forge::InvalidFlag> for PagureError {
    fn from(e: bridge_core::forge::InvalidFlag) -> Self {
        PagureError::Invalid(e.0)
    }
}

#[cfg(test)]
mod tests {
    use bridge_core::forge::{FlagOn, FlagTarget};

    #[test]
    fn api_paths_follow_the_contract() {
        let path = FlagTarget::project_path(Some("rpms"), "bash", None);
        let commit = FlagTarget { project_path: path.clone(), on: FlagOn::Commit("ab12".into()) };
        assert_eq!(super::api_path(&commit), "api/0/rpms/bash/c/ab12/flag");
        let pr = FlagTarget { project_path: path, on: FlagOn::PullRequest(7) };
        assert_eq!(super::api_path(&pr), "api/0/rpms/bash/pull-request/7/flag");
        let fork = FlagTarget { project_path: "fork/bob/demo".into(), on: FlagOn::Commit("ab12".into()) };
        assert_eq!(super::api_path(&fork), "api/0/fork/bob/demo/c/ab12/flag");
    }
}
