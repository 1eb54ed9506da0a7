//! Which flag a build request has: its subject (project, cause, commit), its `uid`, and
//! the comment and link a state gives it.

use sha2::{Digest, Sha256};
use url::Url;

use crate::forge::{FlagOn, FlagStatus, FlagTarget, FlagUpdate, MAX_COMMENT_CHARS};
use crate::model::{BuildRequest, Cause, ProjectRef};

/// What is being built, as far as flags are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagSubject<'a> {
    pub project: &'a ProjectRef,
    pub cause: &'a Cause,
    /// The commit built, once known (a PR's head is only known after the fetch).
    pub commit: Option<&'a str>,
    pub request_id: &'a str,
}

impl<'a> From<&'a BuildRequest> for FlagSubject<'a> {
    fn from(request: &'a BuildRequest) -> Self {
        let commit = match &request.cause {
            Cause::Commit { sha } => Some(sha.as_str()),
            Cause::PullRequest { .. } => None,
        };
        FlagSubject { project: &request.project, cause: &request.cause, commit, request_id: &request.request_id }
    }
}

impl FlagSubject<'_> {
    pub fn with_commit<'b>(&self, commit: &'b str) -> FlagSubject<'b>
    where
        Self: 'b,
    {
        FlagSubject { commit: Some(commit), ..self.clone() }
    }

    /// A push is flagged on the repository pushed to (a fork, when a fork's own CI plugin
    /// calls the bridge); a PR on its target, on the built commit when it is known and on
    /// the PR (its current head) before that.
    pub fn target(&self) -> FlagTarget {
        let project = self.project;
        let fork_user = match self.cause {
            Cause::Commit { .. } => project.fork_user.as_deref(),
            Cause::PullRequest { .. } => None,
        };
        let project_path = FlagTarget::project_path(project.namespace.as_deref(), &project.name, fork_user);
        let on = match (self.commit, self.cause) {
            (Some(sha), _) => FlagOn::Commit(sha.to_owned()),
            (None, Cause::Commit { sha }) => FlagOn::Commit(sha.clone()),
            (None, Cause::PullRequest { id }) => FlagOn::PullRequest(*id),
        };
        FlagTarget { project_path, on }
    }

    pub fn update(&self, status: FlagStatus, comment: &str, url: String, percent: Option<u8>) -> FlagUpdate {
        FlagUpdate {
            project_key: self.project.key.clone(),
            target: self.target(),
            uid: flag_uid(self.request_id),
            status,
            comment: short_comment(comment),
            url,
            percent,
        }
    }

    /// The Pagure page of what is built: where an `error` flag links when no build ran.
    pub fn pagure_page(&self, pagure_url: &Url) -> String {
        let target = self.target();
        let path = match &target.on {
            FlagOn::Commit(sha) => format!("{}/c/{sha}", target.project_path),
            FlagOn::PullRequest(id) => format!("{}/pull-request/{id}", target.project_path),
        };
        pagure_url.join(&path).map(String::from).unwrap_or_else(|_| pagure_url.to_string())
    }
}

/// The flag uid of a build request: its id when that fits Pagure's 32 characters (request
/// ids are UUID v4 in simple form: unique across projects and forks), else a digest of it.
pub fn flag_uid(request_id: &str) -> String {
    if (1..=32).contains(&request_id.len()) && request_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        request_id.to_owned()
    } else {
        hex::encode(Sha256::digest(request_id.as_bytes()))[..32].to_owned()
    }
}

pub(crate) fn short_comment(comment: &str) -> String {
    let comment = comment.trim();
    match comment.char_indices().nth(MAX_COMMENT_CHARS - 1) {
        Some((at, _)) => format!("{}…", &comment[..at]),
        None => comment.to_owned(),
    }
}
