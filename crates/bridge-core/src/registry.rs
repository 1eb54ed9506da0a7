//! The project registry: which projects a deployment builds and how, as routing rules that
//! the three stages read at run time (an S3 object in AWS, a file in local mode), so that a
//! project is onboarded without touching the infrastructure.
//!
//! The document is JSON, machine-edited by `pagure-ci-bridge projects` and read at every cold
//! start:
//!
//! ```json
//! {"version": 1,
//!  "defaults": {"approval_phrase": "/ok-to-test"},
//!  "rules": [{"match": "rpms/*"},
//!            {"match": "pagure", "untrusted_pipeline": "pcb-untrusted"}]}
//! ```
//!
//! A rule's `match` is a project key (the Jenkins job name Pagure calls, and the last part of
//! `/trigger/<key>` and `/webhook/<key>`) or a pattern where `*` stands for any run of
//! characters inside one `/`-separated segment. Exact rules win; patterns are tried in
//! document order. The key of a project matched by a pattern is its Pagure full name. A
//! field missing from a rule comes from `defaults`, then from the deployment (the stack's
//! forge and shared pipelines), then from the built-in defaults.
//!
//! The parts:
//! - `document`: the document as written (rules, defaults) and what the deployment supplies
//!   to every rule; parsing and the stored form;
//! - `pattern`: a rule's `match`, and how a pattern matches a key segment by segment;
//! - `compile`: the [`Registry`] the stages look projects up in, compiled from inline
//!   projects and the document, with every rule checked by `checks`;
//! - `checks`: each rule as the project it would give, and what no single rule can see
//!   (pipelines shared across rules, one Pagure project under two keys);
//! - `projects`: the [`Projects`] handle the stages hold, reading the document from a
//!   [`RegistrySource`] and keeping it for a TTL, and the [`RegistryStore`] the CLI edits.

mod checks;
mod compile;
mod document;
mod pattern;
mod projects;

use std::time::Duration;

pub use compile::{Registry, RuleSource};
pub use document::{Deployment, RegistryDocument, RuleSettings};
pub use projects::{Projects, RegistrySource, RegistryStore, StoredRegistry};

/// The only document version this bridge reads.
pub const REGISTRY_VERSION: u32 = 1;

/// The longest a registry read may take before the last good copy is used instead.
pub const REGISTRY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the stages keep a registry before reading it again.
pub const DEFAULT_REGISTRY_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The document (or one rule of it) is wrong; `at` says where.
    #[error("the project registry is invalid at {at}: {message}")]
    Invalid { at: String, message: String },
    /// Reading or writing it failed (the store's error, or its words, is the source).
    #[error("the project registry could not be read: {0}")]
    Unavailable(#[source] crate::ports::ErrorCause),
    /// A conditional write lost: someone changed the document since it was read.
    #[error("the project registry changed while it was being edited ({0}): run the command again")]
    Conflict(String),
}

impl crate::retry::Transience for RegistryError {
    fn retry(&self) -> crate::retry::Retry {
        match self {
            // An invalid document is the bridge's own configuration, not the request's: the
            // request waits (the queue's or EventBridge's retries) while a person fixes it.
            RegistryError::Invalid { .. } | RegistryError::Unavailable(_) | RegistryError::Conflict(_) => {
                crate::retry::Retry::Transient
            }
        }
    }
}

#[cfg(test)]
mod tests;
