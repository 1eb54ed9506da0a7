//! The three ways a build is asked for, each parsed into the same [`RawTrigger`], then
//! normalised by one function into a [`BuildRequest`]: the same event gives the same request
//! whichever door it came through.

use serde::Deserialize;
use time::OffsetDateTime;

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

/// Pagure's envelope; `msg` is read straight into the topic's type (no intermediate
/// `serde_json::Value`: this is the hot part of a web-hook).
#[derive(Deserialize)]
struct Envelope<Msg> {
    topic: String,
    msg: Msg,
}

fn envelope<'a, Msg: Deserialize<'a>>(topic: &str, body: &'a [u8]) -> Result<Msg, TriggerError> {
    let mismatch = |found: &str| {
        TriggerError::new(
            TriggerErrorKind::InvalidField,
            format!("X-Pagure-Topic `{topic}` does not match the body's topic `{found}`"),
        )
    };
    match crate::json::from_slice::<Envelope<Msg>>(body) {
        Ok(envelope) if envelope.topic == topic => Ok(envelope.msg),
        Ok(envelope) => Err(mismatch(&envelope.topic)),
        Err(e) if e.is_data() => {
            // Well-formed JSON of the wrong shape. A body of another topic is the likelier
            // mistake, so check that first (only on this error path).
            match crate::json::from_slice::<Envelope<serde::de::IgnoredAny>>(body) {
                Ok(other) if other.topic != topic => Err(mismatch(&other.topic)),
                _ => Err(TriggerError::new(
                    TriggerErrorKind::MalformedBody,
                    format!("the `{topic}` web-hook body lacks what the bridge needs: {e}"),
                )),
            }
        }
        Err(e) => Err(TriggerError::new(
            TriggerErrorKind::MalformedBody,
            format!("the web-hook body is not Pagure's JSON envelope: {e}"),
        )),
    }
}

#[derive(Deserialize)]
struct ProjectJson {
    fullname: String,
}

#[derive(Deserialize)]
struct GitReceive {
    branch: String,
    end_commit: String,
    project_fullname: String,
}

#[derive(Deserialize)]
struct PullRequestMsg {
    pullrequest: PullRequestJson,
}

#[derive(Deserialize)]
struct PullRequestJson {
    id: u64,
    branch: String,
    branch_from: String,
    status: String,
    project: ProjectJson,
    repo_from: Option<ProjectJson>,
    #[serde(default)]
    remote_git: Option<String>,
    #[serde(default)]
    comments: Vec<CommentJson>,
    /// The head when the event was sent: what an approval covers.
    #[serde(default)]
    commit_stop: Option<String>,
}

#[derive(Deserialize)]
struct CommentJson {
    id: u64,
    comment: String,
    #[serde(default)]
    notification: bool,
    #[serde(default)]
    user: Option<UserJson>,
}

#[derive(Deserialize)]
struct UserJson {
    name: String,
}

/// Reads a verified web-hook body (`topic` is `X-Pagure-Topic`). `project` is the
/// configured project the URL named: the event must be about it.
pub fn parse_webhook(
    project: &ProjectConfig,
    topic: &str,
    body: &[u8],
    rebuild_phrases: &[String],
) -> Result<WebhookOutcome, TriggerError> {
    let fullname = project.repo.fullname();
    match topic {
        "git.receive" => {
            let msg: GitReceive = envelope(topic, body)?;
            if msg.project_fullname != fullname {
                return Ok(WebhookOutcome::Ignore(format!(
                    "push to `{}`, which is not `{fullname}` (pushes to forks are built through their pull requests)",
                    msg.project_fullname
                )));
            }
            if msg.end_commit.bytes().all(|b| b == b'0') {
                return Ok(WebhookOutcome::Ignore("the push deleted the branch".into()));
            }
            Ok(WebhookOutcome::Build(RawTrigger {
                cause: msg.end_commit,
                repo: project.repo.clone_url(None),
                branch: msg.branch,
                branch_to: None,
                rebuild: false,
            }))
        }
        "pull-request.new"
        | "pull-request.updated"
        | "pull-request.rebased"
        | "pull-request.reopened"
        | "pull-request.comment.added" => {
            let msg: PullRequestMsg = envelope(topic, body)?;
            let pr = msg.pullrequest;
            if pr.project.fullname != fullname {
                return Ok(WebhookOutcome::Ignore(format!(
                    "pull request targets `{}`, which is not `{fullname}`",
                    pr.project.fullname
                )));
            }
            if pr.status != "Open" {
                return Ok(WebhookOutcome::Ignore(format!("pull request #{} is {}", pr.id, pr.status)));
            }
            let mut approval = None;
            if topic == "pull-request.comment.added" {
                // The newest comment is the one this event is about. A notification (Pagure's
                // own "N new commits added") never counts, and an older approval is not looked
                // for behind it: it covered an earlier head.
                let newest = pr.comments.iter().max_by_key(|c| c.id).filter(|c| !c.notification);
                let said = newest.map(|c| c.comment.trim());
                if let (Some(comment), Some(phrase)) = (newest, project.approval_phrase.as_deref())
                    && comment.comment.trim() == phrase
                {
                    approval = Some(approval_of(pr.id, comment, pr.commit_stop.as_deref())?);
                } else if !said.is_some_and(|said| rebuild_phrases.iter().any(|p| p == said)) {
                    return Ok(WebhookOutcome::Ignore(match &project.approval_phrase {
                        Some(phrase) => {
                            format!(
                                "the new comment neither asks for a rebuild nor approves the pull request (`{phrase}`)"
                            )
                        }
                        None => "the new comment does not ask for a rebuild".into(),
                    }));
                }
            }
            // As pagure-ci: a remote PR is built from the target repository (its head is
            // `refs/pull/<id>/head` there); a fork PR from the fork; else the project itself.
            let repo = match (&pr.remote_git, &pr.repo_from) {
                (None, Some(from)) => fork_clone_url(project, &from.fullname),
                _ => project.repo.clone_url(None),
            };
            let trigger = RawTrigger {
                cause: pr.id.to_string(),
                repo,
                branch: pr.branch_from,
                branch_to: Some(pr.branch),
                rebuild: topic == "pull-request.comment.added",
            };
            Ok(match approval {
                Some(approval) => WebhookOutcome::Approve(trigger, approval),
                None => WebhookOutcome::Build(trigger),
            })
        }
        other => {
            // Not read, but Pagure's `msg` is an object: anything else is refused.
            envelope::<crate::json::IgnoredObject>(topic, body)?;
            Ok(WebhookOutcome::Ignore(format!("topic `{other}` does not start builds")))
        }
    }
}

/// The approval an approval comment gives: its author, and the head it covers (a full
/// commit id, or the web-hook is refused: an approval of "whatever the head is" is none).
fn approval_of(id: u64, comment: &CommentJson, commit_stop: Option<&str>) -> Result<Approval, TriggerError> {
    let by = comment.user.as_ref().map(|u| u.name.trim()).filter(|name| !name.is_empty()).ok_or_else(|| {
        TriggerError::new(
            TriggerErrorKind::MalformedBody,
            format!("pull request #{id}: the approval comment has no `user.name`"),
        )
    })?;
    let commit = match commit_stop.map(|c| parse_cause(c.trim())) {
        Some(Ok(Cause::Commit { sha })) => sha,
        _ => {
            return Err(TriggerError::new(
                TriggerErrorKind::MalformedBody,
                format!("pull request #{id}: an approval needs the head commit (`commit_stop`, a full commit id)"),
            ));
        }
    };
    Ok(Approval { by: by.to_owned(), commit })
}

/// The clone URL of a project full name (`forks/<user>/<fullname>` or the project's own),
/// spelled as pagure-ci spells `REPO`. The result is checked by [`normalise`] like any other.
fn fork_clone_url(project: &ProjectConfig, from_fullname: &str) -> String {
    let base = project.repo.clone_url(None);
    let own = format!("{}.git", project.repo.fullname());
    let prefix = base.strip_suffix(&own).unwrap_or(&base);
    format!("{prefix}{from_fullname}.git")
}

#[cfg(test)]
pub(crate) mod tests;
