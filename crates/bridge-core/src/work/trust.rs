//! How far a build request is trusted, decided from what Pagure said, with no IO of its own
//! (the worker gathers the facts; [`classify`] decides; [`route`] picks what to do).
//!
//! - Trusted: a push to the project's own repository (`fork_user` is `None`), or a pull
//!   request whose author may commit to the PR's target branch *as Pagure reports it* (the
//!   PR's `branch`, never the trigger's `branch_to`, which a JSON caller chooses) and whose
//!   source is one the author controls: the project itself or the author's own fork
//!   (`repo_from.fullname` is `[ns/]name` or `forks/<author>/[ns/]name`). A committer's
//!   access vouches for what they push, not for a remote PR (any git URL, `repo_from` null)
//!   or someone else's fork, whose later heads its owner chooses.
//! - Approved: an untrusted pull request with an approval (a web-hook comment equal to the
//!   project's `approval_phrase`) whose author may commit to the target branch and whose
//!   approved commit is the head that was fetched.
//! - Untrusted: everything else, including pushes to forks and every case where Pagure could
//!   not be asked or did not answer.

use crate::forge::PullRequestFacts;
use crate::model::{Approval, BuildRequest, Cause, TriggerKind, TrustClass};

/// What Pagure said about a request; `None` wherever it was not asked or did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustFacts {
    /// The pull request's own JSON.
    pub pull_request: Option<PullRequestFacts>,
    /// `hascommit` of the PR's author on the PR's target branch.
    pub author_has_commit: Option<bool>,
    /// `hascommit` of the approval's author on the PR's target branch.
    pub approver_has_commit: Option<bool>,
}

/// Why a request is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// A push to a fork (pagure-ci of a fork, or a JSON call naming a fork's commit).
    ForkPush { user: String },
    /// Pagure did not say who opened the pull request.
    PullRequestUnknown { id: u64 },
    /// The author may not commit to the target branch (`known`: Pagure said so; otherwise
    /// it could not be asked).
    Author { author: String, branch: String, known: bool },
    /// The author may commit, but the head comes from somewhere they do not control
    /// (`source` `None`: a remote pull request), so their access vouches for nothing.
    Source { author: String, source: Option<String> },
}

/// Why an approval did not make an untrusted pull request buildable in the trusted pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefused {
    /// The approver may not commit to the target branch (or Pagure could not tell).
    NotCommitter { by: String, known: bool },
    /// The head moved after the approval: the approval covered another commit.
    HeadMoved { by: String, approved: String, head: String },
}

/// The decision, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    Trusted,
    Approved { by: String },
    Untrusted { why: Untrusted, approval: Option<ApprovalRefused> },
}

impl Classification {
    pub fn class(&self) -> TrustClass {
        match self {
            Classification::Trusted => TrustClass::Trusted,
            Classification::Approved { .. } => TrustClass::Approved,
            Classification::Untrusted { .. } => TrustClass::Untrusted,
        }
    }
}

/// The approval a request may use: only one that came through the signed web-hook door, for
/// a pull request. A queue message from any other door that carries one is not believed.
pub fn usable_approval(request: &BuildRequest) -> Option<&Approval> {
    match (&request.cause, request.trigger) {
        (Cause::PullRequest { .. }, TriggerKind::Webhook) => request.approval.as_ref(),
        _ => None,
    }
}

/// Whether the author's commit access may vouch for `pr`: its source is the target project
/// `target` (`[ns/]name`) itself or the author's own fork of it. Compared exactly, as Pagure
/// spells `fullname`: anything else is someone else's.
pub fn source_is_authors(pr: &PullRequestFacts, target: &str) -> bool {
    match &pr.source {
        Some(source) => *source == target || *source == format!("forks/{}/{target}", pr.author),
        None => false,
    }
}

/// Classifies `request`, whose fetched head is `head`, from `facts`. Pure: no IO.
pub fn classify(request: &BuildRequest, facts: &TrustFacts, head: &str) -> Classification {
    let id = match (&request.cause, &request.project.fork_user) {
        (Cause::Commit { .. }, None) => return Classification::Trusted,
        (Cause::Commit { .. }, Some(user)) => {
            return Classification::Untrusted { why: Untrusted::ForkPush { user: user.clone() }, approval: None };
        }
        (Cause::PullRequest { id }, _) => *id,
    };
    let Some(pr) = &facts.pull_request else {
        return Classification::Untrusted { why: Untrusted::PullRequestUnknown { id }, approval: None };
    };
    // An author who may not commit is the reason whatever the source; a committer's PR
    // is untrusted only for its source.
    let why = if facts.author_has_commit != Some(true) {
        Untrusted::Author {
            author: pr.author.clone(),
            branch: pr.target_branch.clone(),
            known: facts.author_has_commit.is_some(),
        }
    } else if source_is_authors(pr, &request.project.target_fullname()) {
        return Classification::Trusted;
    } else {
        Untrusted::Source { author: pr.author.clone(), source: pr.source.clone() }
    };
    let Some(approval) = usable_approval(request) else {
        return Classification::Untrusted { why, approval: None };
    };
    let refused = if facts.approver_has_commit != Some(true) {
        ApprovalRefused::NotCommitter { by: approval.by.clone(), known: facts.approver_has_commit.is_some() }
    } else if !approval.commit.eq_ignore_ascii_case(head) {
        ApprovalRefused::HeadMoved { by: approval.by.clone(), approved: approval.commit.clone(), head: head.to_owned() }
    } else {
        return Classification::Approved { by: approval.by.clone() };
    };
    Classification::Untrusted { why, approval: Some(refused) }
}

/// What the work stage does with a classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Build in this pipeline.
    Build { pipeline: String },
    /// Build nothing yet: a `pending` flag says what is awaited.
    Await { comment: String },
    /// Build nothing: an `error` flag says why and what to configure (terminal).
    Refuse { reason: String },
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

impl Untrusted {
    /// "untrusted pull request from alice", as the flags say it.
    pub fn describe(&self) -> String {
        match self {
            Untrusted::ForkPush { user } => format!("untrusted push to the fork of {user}"),
            Untrusted::PullRequestUnknown { id } => {
                format!("untrusted pull request #{id}: Pagure did not say who opened it")
            }
            Untrusted::Author { author, known: true, .. } => format!("untrusted pull request from {author}"),
            Untrusted::Author { author, branch, known: false } => format!(
                "untrusted pull request from {author}: Pagure did not say whether they may commit to `{branch}`"
            ),
            Untrusted::Source { author, source: None } => format!(
                "untrusted: a remote pull request from {author}; its source is not the project or the author's fork"
            ),
            Untrusted::Source { author, source: Some(source) } => format!(
                "untrusted: a pull request from {author} out of `{source}`; its source is not the project or the author's fork"
            ),
        }
    }
}

/// Where a request of `classification` goes for a project with `pipeline`, `untrusted_pipeline`
/// and `approval_phrase`.
pub fn route(
    classification: &Classification,
    project_key: &str,
    pipeline: &str,
    untrusted_pipeline: Option<&str>,
    approval_phrase: Option<&str>,
) -> Route {
    let Classification::Untrusted { why, approval } = classification else {
        return Route::Build { pipeline: pipeline.to_owned() };
    };
    if let Some(untrusted) = untrusted_pipeline {
        return Route::Build { pipeline: untrusted.to_owned() };
    }
    let what = why.describe();
    match (approval_phrase, why) {
        // A push has no pull request to comment on: approvals cannot help it.
        (Some(phrase), Untrusted::PullRequestUnknown { .. } | Untrusted::Author { .. } | Untrusted::Source { .. }) => {
            let comment = match approval {
                None => format!("Waiting for a committer to comment `{phrase}` ({what})"),
                Some(ApprovalRefused::NotCommitter { by, known: true }) => format!(
                    "Waiting for a committer to comment `{phrase}`: {by} may not commit to the target branch ({what})"
                ),
                Some(ApprovalRefused::NotCommitter { by, known: false }) => format!(
                    "Waiting for a committer to comment `{phrase}`: Pagure did not say whether {by} may commit to the target branch ({what})"
                ),
                Some(ApprovalRefused::HeadMoved { by, approved, head }) => format!(
                    "Waiting for a committer to comment `{phrase}` again: the head moved to {} after {by} approved {} ({what})",
                    short(head),
                    short(approved)
                ),
            };
            Route::Await { comment }
        }
        (Some(_), Untrusted::ForkPush { .. }) => Route::Refuse {
            reason: format!(
                "not built: {what}, and project `{project_key}` has no untrusted_pipeline (approvals are for pull requests; set untrusted_pipeline to build untrusted pushes)"
            ),
        },
        (None, _) => Route::Refuse {
            reason: format!(
                "not built: {what}, and project `{project_key}` has neither untrusted_pipeline (a pipeline without the trusted build's secrets, to build it there) nor approval_phrase (to build it in `{pipeline}` once a committer approves its head)"
            ),
        },
    }
}

#[cfg(test)]
mod tests;
