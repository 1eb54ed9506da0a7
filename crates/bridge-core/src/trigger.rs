//! The three ways a build is asked for, each parsed into the same [`RawTrigger`], then
//! normalised by one function into a [`BuildRequest`]: the same event gives the same request
//! whichever door it came through. The Jenkins-style call and the JSON trigger are read here;
//! a forge's web-hooks are read by that forge's adapter, through the [`WebhookDialect`] port
//! (Pagure's: `bridge_pagure::PagureWebhooks`).

use http::HeaderMap;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::auth::Secret;
use crate::config::ProjectConfig;
use crate::model::{Approval, BuildRequest, BuildTarget, Cause, TriggerKind};
use crate::validate::{FieldError, check_branch, parse_cause};

/// Why a trigger is refused. No HTTP here: the accept edge chooses the answer
/// (`impl From<TriggerError> for Rejection` in [`crate::accept`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TriggerError {
    pub kind: TriggerErrorKind,
    /// For a person: what is wrong and what to send instead. Never a secret.
    pub reason: String,
    /// The field rule that refused it, when one did.
    #[source]
    pub field: Option<FieldError>,
}

/// The kinds of refused triggers, each with a stable code (the README's troubleshooting
/// table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerErrorKind {
    /// The repository is neither the project's nor an allowed fork: the SSRF boundary.
    RepoNotAllowed,
    InvalidCause,
    InvalidBranch,
    /// A field that must not be there, or is given twice.
    InvalidField,
    MissingField,
    /// The body is not what this door reads.
    MalformedBody,
    /// The delivery carries no credential (a web-hook without its signature).
    MissingCredentials,
    /// The delivery's signature does not match its body under the project's hook secret.
    InvalidSignature,
    /// The delivery names a forge instance other than the project's.
    WrongInstance,
}

impl TriggerErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            TriggerErrorKind::RepoNotAllowed => "repo_not_allowed",
            TriggerErrorKind::InvalidCause => "invalid_cause",
            TriggerErrorKind::InvalidBranch => "invalid_branch",
            TriggerErrorKind::InvalidField => "invalid_field",
            TriggerErrorKind::MissingField => "missing_field",
            TriggerErrorKind::MalformedBody => "malformed_body",
            TriggerErrorKind::MissingCredentials => "missing_credentials",
            TriggerErrorKind::InvalidSignature => "invalid_signature",
            TriggerErrorKind::WrongInstance => "wrong_instance",
        }
    }
}

impl TriggerError {
    pub fn new(kind: TriggerErrorKind, reason: impl Into<String>) -> Self {
        TriggerError { kind, reason: reason.into(), field: None }
    }

    /// Refused by a field rule: `reason` says which field, `field` why.
    fn of_field(kind: TriggerErrorKind, reason: String, field: FieldError) -> Self {
        TriggerError { kind, reason, field: Some(field) }
    }

    /// The stable code, e.g. `invalid_branch`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// pagure-ci's four parameters, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTrigger {
    pub cause: String,
    pub repo: String,
    pub branch: String,
    /// `None`, or the literal `"None"`/`""` pagure-ci sends for commit builds, mean no target.
    pub branch_to: Option<String>,
    /// Explicitly a rebuild: see [`BuildRequest::rebuild`].
    pub rebuild: bool,
}

/// Turns a raw trigger for `project` into a build request, or says which field is wrong.
/// The repository check comes first: it is the SSRF boundary.
pub fn normalise(
    project: &ProjectConfig,
    raw: RawTrigger,
    kind: TriggerKind,
    received_at: OffsetDateTime,
) -> Result<BuildRequest, TriggerError> {
    use TriggerErrorKind::{InvalidBranch, InvalidCause, InvalidField, MissingField, RepoNotAllowed};
    let refused = |kind, e: FieldError| TriggerError::of_field(kind, e.to_string(), e);
    let (repo_url, project_ref) =
        project.repo.check(&project.key, &raw.repo).map_err(|e| refused(RepoNotAllowed, FieldError::Repo(e)))?;
    let cause = parse_cause(raw.cause.trim()).map_err(|e| refused(InvalidCause, e))?;
    check_branch(&raw.branch).map_err(|e| refused(InvalidBranch, e))?;
    let branch_to = raw.branch_to.filter(|b| !b.is_empty() && b != "None");
    match (&cause, &branch_to) {
        (Cause::Commit { .. }, Some(_)) => {
            return Err(TriggerError::new(
                InvalidField,
                "branch_to: a commit build has no target branch; send it empty, null or \"None\" (as pagure-ci does), or send a pull-request number as cause",
            ));
        }
        (Cause::PullRequest { .. }, None) => {
            return Err(TriggerError::new(MissingField, "branch_to: a pull-request build needs the target branch"));
        }
        (_, Some(target)) => {
            check_branch(target).map_err(|e| TriggerError::of_field(InvalidBranch, format!("branch_to: {e}"), e))?;
        }
        _ => {}
    }
    let mut request = BuildRequest::new(
        BuildTarget { project: project_ref, repo_url, cause, branch: raw.branch, branch_to },
        kind,
        received_at,
    );
    request.rebuild = raw.rebuild;
    Ok(request)
}

/// The parameters of a Jenkins `buildWithParameters` call, with the token kept apart.
#[derive(Debug)]
pub struct JenkinsCall {
    pub trigger: RawTrigger,
    /// `token=`: pagure-ci's `pagure_ci_token`. Never log it.
    pub token: Option<String>,
}

/// Parses `cause`, `REPO`, `BRANCH`, `BRANCH_TO` and `token` from a query string and an
/// optional form-encoded body (Jenkins takes parameters in either). Other parameters are
/// ignored (Jenkins ignores undeclared ones too); a known one given twice is refused.
pub fn parse_jenkins(query: &str, form_body: &[u8]) -> Result<JenkinsCall, TriggerError> {
    let mut cause = None;
    let mut repo = None;
    let mut branch = None;
    let mut branch_to = None;
    let mut token = None;
    let pairs = url::form_urlencoded::parse(query.as_bytes()).chain(url::form_urlencoded::parse(form_body));
    for (name, value) in pairs {
        let slot = match name.as_ref() {
            "cause" => &mut cause,
            "REPO" => &mut repo,
            "BRANCH" => &mut branch,
            "BRANCH_TO" => &mut branch_to,
            "token" => &mut token,
            _ => continue,
        };
        if slot.is_some() {
            return Err(TriggerError::new(
                TriggerErrorKind::InvalidField,
                format!("parameter `{name}` is given more than once"),
            ));
        }
        *slot = Some(value.into_owned());
    }
    let need = |value: Option<String>, name: &str| {
        value.ok_or_else(|| {
            TriggerError::new(
                TriggerErrorKind::MissingField,
                format!("parameter `{name}` is missing: pagure-ci sends cause, REPO, BRANCH, BRANCH_TO and token"),
            )
        })
    };
    Ok(JenkinsCall {
        trigger: RawTrigger {
            cause: need(cause, "cause")?,
            repo: need(repo, "REPO")?,
            branch: need(branch, "BRANCH")?,
            branch_to,
            // pagure-ci's "rerun CI" sends the same call as a first trigger.
            rebuild: false,
        },
        token,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTrigger {
    cause: CauseValue,
    repo: String,
    branch: String,
    #[serde(default)]
    branch_to: Option<String>,
    #[serde(default)]
    rebuild: bool,
}

/// A JSON client may send a PR number as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum CauseValue {
    Text(String),
    Number(u64),
}

/// Parses `{"cause", "repo", "branch", "branch_to"}` and an optional `"rebuild": true`.
pub fn parse_json(body: &[u8]) -> Result<RawTrigger, TriggerError> {
    let t: JsonTrigger = crate::json::from_slice(body).map_err(|e| {
        TriggerError::new(
            TriggerErrorKind::MalformedBody,
            format!("the body is not a trigger object {{cause, repo, branch, branch_to}}: {e}"),
        )
    })?;
    Ok(RawTrigger {
        cause: match t.cause {
            CauseValue::Text(s) => s,
            CauseValue::Number(n) => n.to_string(),
        },
        repo: t.repo,
        branch: t.branch,
        branch_to: t.branch_to,
        rebuild: t.rebuild,
    })
}

/// What a web-hook asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Build this (the repository URL is still to be checked by [`normalise`]).
    Build(RawTrigger),
    /// Nothing to build, and why (answered 202 `{"ignored": why}`).
    Ignore(String),
    /// Build this as approved: a comment equal to the project's `approval_phrase`. Only the
    /// signed web-hook door produces this; the work stage still checks the approver's
    /// commit access and that the approved commit is the head it builds.
    Approve(RawTrigger, Approval),
}

/// A forge's web-hook door: how one forge signs, addresses and spells its web-hook
/// deliveries (Pagure's: `bridge_pagure::PagureWebhooks`). The accept service finds the
/// project, checks the media type and reads the project's hook secret first; the dialect
/// authenticates the delivery (before reading anything else from it), checks that it comes
/// from the project's forge instance, and says what it asks for. Refusals are typed: the
/// accept edge alone chooses their HTTP status.
pub trait WebhookDialect: Send + Sync + std::fmt::Debug {
    /// Authenticates and reads one delivery for `project` (the project its URL named):
    /// `headers` and `body` as received, `hook_secret` the project's web-hook key,
    /// `rebuild_phrases` the deployment's comments that ask for a rebuild.
    fn read_delivery(
        &self,
        project: &ProjectConfig,
        headers: &HeaderMap,
        body: &[u8],
        hook_secret: &Secret,
        rebuild_phrases: &[String],
    ) -> Result<WebhookOutcome, TriggerError>;
}

#[cfg(test)]
pub(crate) mod tests;
