//! Pagure's web-hooks: [`PagureWebhooks`], the [`WebhookDialect`] that authenticates a
//! delivery (`X-Pagure-Signature-256`, an HMAC-SHA256 of the body under the project's
//! "Private Web Hook Key"; `X-Pagure`, the instance that sent it) and reads its envelope
//! (`X-Pagure-Topic` and the JSON `{"topic", "msg"}`) into the same
//! [`RawTrigger`](bridge_core::trigger::RawTrigger) the other doors produce.

use bridge_core::auth::{Secret, signature256_matches};
use bridge_core::config::ProjectConfig;
use bridge_core::model::{Approval, Cause};
use bridge_core::trigger::{RawTrigger, TriggerError, TriggerErrorKind, WebhookDialect, WebhookOutcome};
use bridge_core::validate::parse_cause;
use http::HeaderMap;
use serde::Deserialize;

/// Header names as Pagure spells them; `HeaderMap` lookups ignore case.
pub mod headers {
    /// The instance that sent the web-hook (its `APP_URL`).
    pub const PAGURE_INSTANCE: &str = "x-pagure";
    pub const PAGURE_TOPIC: &str = "x-pagure-topic";
    /// Hex HMAC-SHA256 of the body under the project's web-hook key.
    pub const PAGURE_SIGNATURE_256: &str = "x-pagure-signature-256";
}

/// Pagure's web-hook door. Stateless: the project, its key and the rebuild phrases come with
/// each delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PagureWebhooks;

impl WebhookDialect for PagureWebhooks {
    /// The signature first (nothing else of an unauthenticated body is read), then the
    /// instance, then the topic and the body.
    fn read_delivery(
        &self,
        project: &ProjectConfig,
        headers: &HeaderMap,
        body: &[u8],
        hook_secret: &Secret,
        rebuild_phrases: &[String],
    ) -> Result<WebhookOutcome, TriggerError> {
        let signature = header_str(headers, headers::PAGURE_SIGNATURE_256).ok_or_else(|| {
            TriggerError::new(
                TriggerErrorKind::MissingCredentials,
                "X-Pagure-Signature-256 is missing: is this a Pagure web-hook?",
            )
        })?;
        if !signature256_matches(body, signature, hook_secret) {
            return Err(TriggerError::new(TriggerErrorKind::InvalidSignature, BAD_SIGNATURE));
        }
        let instance = header_str(headers, headers::PAGURE_INSTANCE).unwrap_or("");
        if instance.trim_end_matches('/') != project.pagure_url.as_str().trim_end_matches('/') {
            return Err(TriggerError::new(
                TriggerErrorKind::WrongInstance,
                format!("web-hooks for `{}` must come from {} (X-Pagure)", project.key, project.pagure_url),
            ));
        }
        let topic = header_str(headers, headers::PAGURE_TOPIC)
            .ok_or_else(|| TriggerError::new(TriggerErrorKind::MissingField, "X-Pagure-Topic is missing"))?;
        parse_webhook(project, topic, body, rebuild_phrases)
    }
}

/// The reason of an `invalid_signature` refusal: where the right key is on Pagure.
pub const BAD_SIGNATURE: &str = "X-Pagure-Signature-256 does not match the body: check the project's hook_token in the bridge's secret against the key on Pagure's project Settings, tab \"Private Web Hook Key\" (not Project options, which holds only the web-hook URLs)";

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
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
    match bridge_core::json::from_slice::<Envelope<Msg>>(body) {
        Ok(envelope) if envelope.topic == topic => Ok(envelope.msg),
        Ok(envelope) => Err(mismatch(&envelope.topic)),
        Err(e) if e.is_data() => {
            // Well-formed JSON of the wrong shape. A body of another topic is the likelier
            // mistake, so check that first (only on this error path).
            match bridge_core::json::from_slice::<Envelope<serde::de::IgnoredAny>>(body) {
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
            envelope::<bridge_core::json::IgnoredObject>(topic, body)?;
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
/// spelled as pagure-ci spells `REPO`. The result is checked by
/// [`normalise`](bridge_core::trigger::normalise) like any other.
fn fork_clone_url(project: &ProjectConfig, from_fullname: &str) -> String {
    let base = project.repo.clone_url(None);
    let own = format!("{}.git", project.repo.fullname());
    let prefix = base.strip_suffix(&own).unwrap_or(&base);
    format!("{prefix}{from_fullname}.git")
}

#[cfg(test)]
mod tests;
