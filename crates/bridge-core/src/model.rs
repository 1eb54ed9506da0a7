//! The normalised build request: what every trigger kind is turned into and what travels on
//! the queue from `accept` to `work`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// What to build: a pushed commit, or the head of a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "CauseObject")]
pub enum Cause {
    /// A full commit id (40 hex for SHA-1 repositories, 64 for SHA-256), lower case.
    Commit { sha: String },
    /// A pull request of the target project; its head is `refs/pull/<id>/head` there.
    PullRequest { id: u64 },
}

/// [`Cause`] as read. serde buffers an internally tagged enum before reading its variant,
/// out of reach of [`crate::json`]'s object check, and takes `["commit", "<sha>"]` for one;
/// a plain struct is read as an object only.
#[derive(Deserialize)]
struct CauseObject {
    kind: CauseKind,
    sha: Option<String>,
    id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CauseKind {
    Commit,
    PullRequest,
}

impl TryFrom<CauseObject> for Cause {
    type Error = &'static str;

    fn try_from(object: CauseObject) -> Result<Self, Self::Error> {
        match object {
            CauseObject { kind: CauseKind::Commit, sha: Some(sha), id: None } => Ok(Cause::Commit { sha }),
            CauseObject { kind: CauseKind::PullRequest, id: Some(id), sha: None } => Ok(Cause::PullRequest { id }),
            CauseObject { kind: CauseKind::Commit, .. } => Err("a commit cause has a `sha` and no `id`"),
            CauseObject { kind: CauseKind::PullRequest, .. } => Err("a pull-request cause has an `id` and no `sha`"),
        }
    }
}

impl Cause {
    /// The value pagure-ci sends as `cause`: the sha or the PR number.
    pub fn as_trigger_value(&self) -> String {
        match self {
            Cause::Commit { sha } => sha.clone(),
            Cause::PullRequest { id } => id.to_string(),
        }
    }
}

/// Which door a trigger came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// pagure-ci's `jenkins` CI type calling `buildWithParameters`.
    Jenkins,
    /// A JSON `POST` of `{cause, repo, branch, branch_to}`.
    Json,
    /// A signed Pagure project web-hook.
    Webhook,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Jenkins => "jenkins",
            TriggerKind::Json => "json",
            TriggerKind::Webhook => "webhook",
        }
    }
}

impl std::str::FromStr for TriggerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "jenkins" => Ok(TriggerKind::Jenkins),
            "json" => Ok(TriggerKind::Json),
            "webhook" => Ok(TriggerKind::Webhook),
            other => Err(format!("`{other}` is not a trigger kind (jenkins, json, webhook)")),
        }
    }
}

/// The project whose repository is built. `key` is the bridge's name for the configured
/// (target) project; `fork_user` is set when the repository is a fork of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProjectRef {
    pub key: String,
    pub namespace: Option<String>,
    pub name: String,
    pub fork_user: Option<String>,
}

impl ProjectRef {
    /// Pagure's `fullname` of the target project: `[namespace/]name`.
    pub fn target_fullname(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// One normalised build request. Serialised as JSON as the queue message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// Unique per accepted trigger (UUID v4, simple form).
    pub request_id: String,
    /// Same value for the same event however (and however often) it arrives; see
    /// [`idempotency_key`].
    pub idempotency_key: String,
    pub project: ProjectRef,
    /// Canonical clone URL (`<git_url>/[forks/<user>/][<ns>/]<name>.git`), already checked
    /// against the project's allow-list.
    pub repo_url: String,
    pub cause: Cause,
    pub branch: String,
    /// Target branch of a pull request; `None` for commit builds (pagure-ci sends `"None"`).
    pub branch_to: Option<String>,
    pub trigger: TriggerKind,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// Asked for as a rebuild (a rebuild comment, or `"rebuild": true` in JSON): never merged
    /// with an earlier request for the same build.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
    /// A committer's approval comment on the pull request (see [`Approval`]). Only the signed
    /// web-hook door sets it; absent in messages from before approvals existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// A comment equal to the project's `approval_phrase` on an untrusted pull request: who wrote
/// it and which head commit it covers (the PR's `commit_stop` when the comment was made). The
/// work stage checks that `by` may commit to the target branch and that `commit` is still the
/// head; only then does the request build in the trusted pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    pub commit: String,
}

/// How far a request is trusted (see the work stage's classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustClass {
    /// A push to the project's own repository, or a pull request whose author may commit to
    /// its target branch.
    Trusted,
    /// An untrusted pull request whose current head a committer approved.
    Approved,
    /// Anything else, including a pull request Pagure could not tell about.
    Untrusted,
}

impl TrustClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TrustClass::Trusted => "trusted",
            TrustClass::Approved => "approved",
            TrustClass::Untrusted => "untrusted",
        }
    }
}

/// The fields that identify an event, independent of the door it came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTarget {
    pub project: ProjectRef,
    pub repo_url: String,
    pub cause: Cause,
    pub branch: String,
    pub branch_to: Option<String>,
}

impl BuildRequest {
    pub fn new(target: BuildTarget, trigger: TriggerKind, received_at: OffsetDateTime) -> Self {
        let idempotency_key = idempotency_key(&target);
        BuildRequest {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            idempotency_key,
            project: target.project,
            repo_url: target.repo_url,
            cause: target.cause,
            branch: target.branch,
            branch_to: target.branch_to,
            trigger,
            received_at,
            rebuild: false,
            approval: None,
        }
    }

    /// This request as the approval `approval` asks for it: always built (never merged into
    /// an earlier, untrusted request for the same build), and with its own idempotency key,
    /// so that neither a plain rebuild nor another approval is taken for it.
    pub fn approved(mut self, approval: Approval) -> Self {
        self.idempotency_key =
            short_digest(&[&self.idempotency_key, "approval", approval.by.as_str(), approval.commit.as_str()]);
        self.rebuild = true;
        self.approval = Some(approval);
        self
    }

    /// The event part of the request, for comparing requests that came through different doors.
    pub fn target(&self) -> BuildTarget {
        BuildTarget {
            project: self.project.clone(),
            repo_url: self.repo_url.clone(),
            cause: self.cause.clone(),
            branch: self.branch.clone(),
            branch_to: self.branch_to.clone(),
        }
    }

    /// A positive integer for Jenkins' `Location: …/queue/item/<n>/`, derived from the request
    /// id so that no shared counter is needed between Lambda instances. Kept below 2^53 so
    /// that JSON clients holding it as a double see it exactly.
    pub fn queue_item_number(&self) -> u64 {
        let digest = Sha256::digest(self.request_id.as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(bytes) >> 11) + 1
    }

    pub fn to_json(&self) -> String {
        // A BuildRequest holds only strings, numbers and enums: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        // A queue message is written by the accept stage, as an object; nothing else is read.
        crate::json::from_str(body)
    }
}

/// `sha256(project key, repository, cause, branch, target branch)`, hex, 32 characters.
/// The trigger kind, request id and arrival time are left out on purpose: the same push
/// reported by pagure-ci and by a web-hook has the same key.
pub fn idempotency_key(target: &BuildTarget) -> String {
    short_digest(&[
        target.project.key.as_str(),
        target.repo_url.as_str(),
        &target.cause.as_trigger_value(),
        target.branch.as_str(),
        target.branch_to.as_deref().unwrap_or(""),
    ])
}

/// SHA-256 of `parts`, each length-prefixed so that ("ab", "c") and ("a", "bc") differ; the
/// first 32 hex characters.
pub fn short_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let mut key = hex::encode(hasher.finalize());
    key.truncate(32);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> BuildTarget {
        BuildTarget {
            project: ProjectRef { key: "demo-job".into(), namespace: None, name: "demo".into(), fork_user: None },
            repo_url: "https://pagure.io/demo.git".into(),
            cause: Cause::PullRequest { id: 7 },
            branch: "fix".into(),
            branch_to: Some("main".into()),
        }
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let request = BuildRequest::new(target(), TriggerKind::Jenkins, OffsetDateTime::UNIX_EPOCH);
        let back = BuildRequest::from_json(&request.to_json()).expect("round trip");
        assert_eq!(back, request);
        let value: serde_json::Value = serde_json::from_str(&request.to_json()).expect("json");
        assert_eq!(value["cause"], serde_json::json!({"kind": "pull_request", "id": 7}));
        assert_eq!(value["trigger"], "jenkins");
        assert_eq!(value["received_at"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn idempotency_key_ignores_door_and_time_but_not_content() {
        let a = BuildRequest::new(target(), TriggerKind::Jenkins, OffsetDateTime::UNIX_EPOCH);
        let b = BuildRequest::new(target(), TriggerKind::Webhook, OffsetDateTime::now_utc());
        assert_eq!(a.idempotency_key, b.idempotency_key);
        assert_ne!(a.request_id, b.request_id);
        assert_eq!(a.idempotency_key.len(), 32);
        let mut other = target();
        other.branch = "fi".into();
        other.branch_to = Some("xmain".into());
        assert_ne!(idempotency_key(&other), a.idempotency_key);
    }

    #[test]
    fn approvals_have_their_own_key_and_old_messages_still_parse() {
        let plain = BuildRequest::new(target(), TriggerKind::Webhook, OffsetDateTime::UNIX_EPOCH);
        let approval = Approval { by: "carol".into(), commit: "05bab967134e26fd2a307065b49ce0bc2a2063ed".into() };
        let approved = plain.clone().approved(approval.clone());
        assert!(approved.rebuild);
        assert_eq!(approved.approval.as_ref(), Some(&approval));
        assert_ne!(approved.idempotency_key, plain.idempotency_key, "not a plain rebuild's key");
        let other = plain.clone().approved(Approval { by: "dave".into(), ..approval });
        assert_ne!(other.idempotency_key, approved.idempotency_key);
        assert_eq!(BuildRequest::from_json(&approved.to_json()).expect("round trip"), approved);
        // A message written before approvals existed has no `approval` field.
        let value: serde_json::Value = serde_json::from_str(&plain.to_json()).expect("json");
        assert!(value.get("approval").is_none());
        assert_eq!(BuildRequest::from_json(&plain.to_json()).expect("old message").approval, None);
    }

    #[test]
    fn queue_item_number_is_positive_and_below_2_pow_53() {
        for _ in 0..1000 {
            let r = BuildRequest::new(target(), TriggerKind::Jenkins, OffsetDateTime::UNIX_EPOCH);
            let n = r.queue_item_number();
            assert!((1..(1u64 << 53)).contains(&n), "{n}");
        }
    }
}
