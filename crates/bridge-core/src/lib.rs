//! The core of pagure-ci-bridge: everything that does not talk to AWS.
//!
//! - [`model`]: the normalised [`BuildRequest`](model::BuildRequest) every trigger becomes.
//! - [`trigger`]: the three doors (Jenkins-style call, JSON, a forge's web-hook through the
//!   `WebhookDialect` port) and the one normalisation they share.
//! - [`validate`]: branch names, causes, and the repository allow-list (the SSRF boundary).
//! - [`auth`]: constant-time token comparison, web-hook HMAC signatures, redacted secrets.
//! - [`accept`]: the HTTP-agnostic accept handler served by the Lambda and by local mode.
//! - [`config`]: typed configuration from a TOML file or the environment.
//! - [`json`]: outside JSON read strictly: a struct is only ever read from a JSON object.
//! - [`ports`]: the queue, secrets, artifact store and pipeline ports, one file each, with
//!   their errors; their adapters live in `bridge-aws` and `bridge-local`.
//! - [`registry`]: the project registry: routing rules read at run time, exact keys and patterns.
//! - [`buildspec`]: the trigger injected into the default branch's buildspec.
//! - [`archive`]: the deterministic, streaming, link-safe source zip.
//! - [`pack`]: one blob read straight out of a git pack file (index lookup, zlib stream).
//! - [`forge`]: the `Forge` port (flags, pull requests, commit access) and its flag model.
//! - [`retry`]: the one transient-or-terminal classification every stage uses.
//! - [`report`]: build states as flags, and the report stage that turns CodeBuild and
//!   CodePipeline events into them.
//! - [`sweep`]: the scheduled run that settles flags whose final event never came.
//! - [`work`]: the work stage (fetch, inject, zip, store, start) behind its ports, the
//!   source port among them.
//! - [`fakes`]: in-memory adapters of the ports, for tests.
//!
//! An architecture test (`tests/architecture.rs` of the e2e crate) fails if this crate ever
//! depends on an `aws-*` or `lambda*` crate.

pub mod accept;
pub mod archive;
pub mod auth;
pub mod buildspec;
pub mod config;
pub mod dedupe;
pub mod error;
pub mod fakes;
pub mod forge;
pub mod gitpath;
pub mod json;
pub mod metrics;
pub mod model;
pub mod pack;
pub mod ports;
pub mod registry;
pub mod report;
pub mod retry;
pub mod sweep;
pub mod trigger;
pub mod validate;
pub mod work;

#[cfg(test)]
mod proptests;
