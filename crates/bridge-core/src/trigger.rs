//! The three ways a build is asked for, each parsed into the same [`RawTrigger`], then
//! normalised by one function into a [`BuildRequest`]: the same event gives the same request
//! whichever door it came through.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::ProjectConfig;
use crate::error::Rejection;
use crate::model::{Approval, BuildRequest, BuildTarget, Cause, TriggerKind};
use crate::validate::{FieldError, check_branch, parse_cause};

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
/// The repository check comes first: it is the SSRF boundary and answers 403.
pub fn normalise(
    project: &ProjectConfig,
    raw: RawTrigger,
    kind: TriggerKind,
    received_at: OffsetDateTime,
) -> Result<BuildRequest, Rejection> {
    let (repo_url, project_ref) = project
        .repo
        .check(&project.key, &raw.repo)
        .map_err(|e| Rejection::repo_not_allowed(FieldError::Repo(e).to_string()))?;
    let cause = parse_cause(raw.cause.trim()).map_err(|e| Rejection::invalid("invalid_cause", e.to_string()))?;
    check_branch(&raw.branch).map_err(|e| Rejection::invalid("invalid_branch", e.to_string()))?;
    let branch_to = raw.branch_to.filter(|b| !b.is_empty() && b != "None");
    match (&cause, &branch_to) {
        (Cause::Commit { .. }, Some(_)) => {
            return Err(Rejection::invalid(
                "invalid_field",
                "branch_to: a commit build has no target branch; send it empty, null or \"None\" (as pagure-ci does), or send a pull-request number as cause",
            ));
        }
        (Cause::PullRequest { .. }, None) => {
            return Err(Rejection::invalid("missing_field", "branch_to: a pull-request build needs the target branch"));
        }
        (_, Some(target)) => {
            check_branch(target).map_err(|e| Rejection::invalid("invalid_branch", format!("branch_to: {e}")))?;
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
pub fn parse_jenkins(query: &str, form_body: &[u8]) -> Result<JenkinsCall, Rejection> {
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
            return Err(Rejection::invalid("invalid_field", format!("parameter `{name}` is given more than once")));
        }
        *slot = Some(value.into_owned());
    }
    let need = |value: Option<String>, name: &str| {
        value.ok_or_else(|| {
            Rejection::invalid(
                "missing_field",
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
pub fn parse_json(body: &[u8]) -> Result<RawTrigger, Rejection> {
    let t: JsonTrigger = crate::json::from_slice(body).map_err(|e| {
        Rejection::invalid(
            "malformed_body",
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

fn envelope<'a, Msg: Deserialize<'a>>(topic: &str, body: &'a [u8]) -> Result<Msg, Rejection> {
    let mismatch = |found: &str| {
        Rejection::invalid(
            "invalid_field",
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
                _ => Err(Rejection::invalid(
                    "malformed_body",
                    format!("the `{topic}` web-hook body lacks what the bridge needs: {e}"),
                )),
            }
        }
        Err(e) => {
            Err(Rejection::invalid("malformed_body", format!("the web-hook body is not Pagure's JSON envelope: {e}")))
        }
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
) -> Result<WebhookOutcome, Rejection> {
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
fn approval_of(id: u64, comment: &CommentJson, commit_stop: Option<&str>) -> Result<Approval, Rejection> {
    let by = comment.user.as_ref().map(|u| u.name.trim()).filter(|name| !name.is_empty()).ok_or_else(|| {
        Rejection::invalid("malformed_body", format!("pull request #{id}: the approval comment has no `user.name`"))
    })?;
    let commit = match commit_stop.map(|c| parse_cause(c.trim())) {
        Some(Ok(Cause::Commit { sha })) => sha,
        _ => {
            return Err(Rejection::invalid(
                "malformed_body",
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
pub(crate) mod tests {
    use super::*;
    use crate::config::{ProjectConfig, ProjectSettings};

    pub(crate) fn project() -> ProjectConfig {
        ProjectConfig::from_settings(
            "demo-job",
            &ProjectSettings {
                pagure_url: "http://127.0.0.1:5600/".into(),
                git_url: "git://127.0.0.1:5602".into(),
                project: "demo".into(),
                pipeline: "demo-ci".into(),
                triggers: vec![TriggerKind::Jenkins, TriggerKind::Json, TriggerKind::Webhook],
                allow_forks: true,
                allow_insecure_git_url: true,
                buildspec: "buildspec.yml".into(),
                untrusted_pipeline: None,
                approval_phrase: None,
                shared_pagure_api_token: None,
            },
        )
        .expect("project")
    }

    fn raw(cause: &str, branch_to: Option<&str>) -> RawTrigger {
        RawTrigger {
            cause: cause.into(),
            repo: "git://127.0.0.1:5602/demo.git".into(),
            branch: "feature-1".into(),
            branch_to: branch_to.map(String::from),
            rebuild: false,
        }
    }

    #[test]
    fn commit_and_pr_normalise() {
        let sha = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
        let r = normalise(&project(), raw(sha, Some("None")), TriggerKind::Jenkins, OffsetDateTime::UNIX_EPOCH)
            .expect("commit");
        assert_eq!(r.cause, Cause::Commit { sha: sha.into() });
        assert_eq!(r.branch_to, None);
        let r =
            normalise(&project(), raw("1", Some("main")), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).expect("pr");
        assert_eq!(r.cause, Cause::PullRequest { id: 1 });
        assert_eq!(r.branch_to.as_deref(), Some("main"));
        assert!(normalise(&project(), raw("1", None), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).is_err());
        assert!(normalise(&project(), raw(sha, Some("main")), TriggerKind::Json, OffsetDateTime::UNIX_EPOCH).is_err());
    }

    #[test]
    fn jenkins_parameters() {
        let call = parse_jenkins("cause=2&REPO=git%3A%2F%2F127.0.0.1%3A5602%2Fforks%2Fbob%2Fdemo.git&BRANCH=bob-fix&BRANCH_TO=main&token=T&delay=0sec", b"").expect("parse");
        assert_eq!(call.trigger.repo, "git://127.0.0.1:5602/forks/bob/demo.git");
        assert_eq!(call.token.as_deref(), Some("T"));
        assert!(parse_jenkins("cause=1&cause=2&REPO=r&BRANCH=b", b"").is_err());
        assert!(parse_jenkins("cause=1&REPO=r", b"").is_err());
        let form = parse_jenkins("token=T", b"cause=1&REPO=r&BRANCH=b&BRANCH_TO=main").expect("form");
        assert_eq!(form.trigger.cause, "1");
    }

    #[test]
    fn json_accepts_numeric_cause() {
        let t = parse_json(br#"{"cause": 3, "repo": "r", "branch": "b", "branch_to": "main"}"#).expect("json");
        assert_eq!(t.cause, "3");
        assert!(parse_json(br#"{"cause": "3", "repo": "r", "branch": "b", "extra": 1}"#).is_err());
        assert!(parse_json(br#"[]"#).is_err());
    }

    /// serde reads a struct from an array in field order; the contract says object.
    #[test]
    fn json_trigger_spelled_as_an_array_is_refused() {
        let sha = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
        for body in [
            format!(r#"["{sha}", "git://127.0.0.1:5602/demo.git", "main", null]"#),
            format!(r#"["{sha}", "git://127.0.0.1:5602/demo.git", "main", null, false]"#),
            r#"[1, "r", "b", "main"]"#.to_owned(),
        ] {
            let error = parse_json(body.as_bytes()).expect_err(&body);
            assert_eq!(error.code, "malformed_body");
            assert!(error.reason.contains("invalid type: sequence"), "{}", error.reason);
        }
        for body in ["\"cause\"", "1", "null", "true"] {
            assert_eq!(parse_json(body.as_bytes()).expect_err(body).code, "malformed_body");
        }
    }

    #[test]
    fn webhook_structs_spelled_as_arrays_are_refused() {
        let body = br#"{"topic": "git.receive", "msg": ["main", "05bab967134e26fd2a307065b49ce0bc2a2063ed", "demo"]}"#;
        let error = parse_webhook(&project(), "git.receive", body, &[]).expect_err("msg as an array");
        assert_eq!(error.code, "malformed_body");
        let body = br#"["git.receive", {"branch": "main", "end_commit": "05bab967134e26fd2a307065b49ce0bc2a2063ed", "project_fullname": "demo"}]"#;
        assert!(parse_webhook(&project(), "git.receive", body, &[]).is_err(), "envelope as an array");
        let ignored = parse_webhook(&project(), "project.edit", br#"{"topic": "project.edit", "msg": {"a": 1}}"#, &[]);
        assert!(matches!(ignored, Ok(WebhookOutcome::Ignore(_))), "{ignored:?}");
        for msg in ["[]", "1", "null"] {
            let body = format!(r#"{{"topic": "project.edit", "msg": {msg}}}"#);
            assert!(parse_webhook(&project(), "project.edit", body.as_bytes(), &[]).is_err(), "msg {msg}");
        }
    }

    fn approving_project() -> ProjectConfig {
        ProjectConfig { approval_phrase: Some("/ok-to-test".into()), ..project() }
    }

    const HEAD: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";

    /// A `pull-request.comment.added` body of a fork PR whose comments are (author, text,
    /// notification), oldest first.
    fn comment_added(comments: &[(&str, &str, bool)], commit_stop: serde_json::Value) -> Vec<u8> {
        let comments: Vec<serde_json::Value> = comments
            .iter()
            .enumerate()
            .map(|(i, (user, comment, notification))| {
                serde_json::json!({"id": i + 1, "comment": comment, "notification": notification,
                    "user": {"name": user, "fullname": user}})
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({"topic": "pull-request.comment.added", "msg": {"pullrequest": {
            "id": 4, "branch": "main", "branch_from": "fix", "status": "Open", "project": {"fullname": "demo"},
            "repo_from": {"fullname": "forks/mallory/demo"}, "remote_git": null, "commit_stop": commit_stop,
            "user": {"name": "mallory"}, "comments": comments}}}))
        .expect("json")
    }

    fn rebuild_phrases() -> Vec<String> {
        vec!["pretty please pagure-ci rebuild".into()]
    }

    #[test]
    fn an_approval_comment_carries_its_author_and_the_head() {
        let body =
            comment_added(&[("mallory", "please test", false), ("carol", "  /ok-to-test\n", false)], HEAD.into());
        let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
        let Ok(WebhookOutcome::Approve(raw, approval)) = outcome else { panic!("{outcome:?}") };
        assert_eq!(approval, Approval { by: "carol".into(), commit: HEAD.into() });
        assert!(raw.rebuild);
        assert_eq!((raw.cause.as_str(), raw.repo.as_str()), ("4", "git://127.0.0.1:5602/forks/mallory/demo.git"));
        let request = normalise(&approving_project(), raw.clone(), TriggerKind::Webhook, OffsetDateTime::UNIX_EPOCH)
            .expect("request");
        assert_eq!(request.approval, None, "normalise alone never approves");
        let approved = request.clone().approved(approval);
        assert_ne!(approved.idempotency_key, request.idempotency_key);

        // Without an approval phrase, the same comment is just a comment.
        let outcome = parse_webhook(&project(), "pull-request.comment.added", &body, &rebuild_phrases());
        assert_eq!(outcome, Ok(WebhookOutcome::Ignore("the new comment does not ask for a rebuild".into())));
        // A rebuild phrase still asks for a plain rebuild.
        let body = comment_added(&[("carol", "pretty please pagure-ci rebuild", false)], HEAD.into());
        let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
        assert!(matches!(outcome, Ok(WebhookOutcome::Build(ref raw)) if raw.rebuild), "{outcome:?}");
    }

    #[test]
    fn only_the_newest_real_comment_approves() {
        // An approval followed by Pagure's notification of a push: the push is not approved.
        let body =
            comment_added(&[("carol", "/ok-to-test", false), ("mallory", "**1 new commit added**", true)], HEAD.into());
        let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
        assert!(matches!(outcome, Ok(WebhookOutcome::Ignore(_))), "{outcome:?}");
        // An approval followed by another comment: that comment is the event.
        let body = comment_added(&[("carol", "/ok-to-test", false), ("mallory", "thanks!", false)], HEAD.into());
        let outcome = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases());
        assert!(matches!(outcome, Ok(WebhookOutcome::Ignore(ref why)) if why.contains("/ok-to-test")), "{outcome:?}");
        // The phrase quoted inside a longer comment is not the phrase.
        let body = comment_added(&[("carol", "do not /ok-to-test yet", false)], HEAD.into());
        assert!(matches!(
            parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases()),
            Ok(WebhookOutcome::Ignore(_))
        ));
    }

    #[test]
    fn an_approval_without_a_head_or_an_author_is_refused() {
        for commit_stop in [serde_json::Value::Null, "abc".into(), "main".into()] {
            let body = comment_added(&[("carol", "/ok-to-test", false)], commit_stop.clone());
            let error = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases())
                .expect_err("no head");
            assert!(error.reason.contains("commit_stop"), "{commit_stop}: {}", error.reason);
        }
        let body = comment_added(&[(" ", "/ok-to-test", false)], HEAD.into());
        let error = parse_webhook(&approving_project(), "pull-request.comment.added", &body, &rebuild_phrases())
            .expect_err("no author");
        assert!(error.reason.contains("user.name"), "{}", error.reason);
    }

    #[test]
    fn json_and_jenkins_doors_cannot_approve() {
        // The JSON trigger has no such field (unknown fields are refused) ...
        let body = format!(
            r#"{{"cause": 4, "repo": "r", "branch": "b", "branch_to": "main", "approval": {{"by": "carol", "commit": "{HEAD}"}}}}"#
        );
        assert_eq!(parse_json(body.as_bytes()).expect_err("approval field").code, "malformed_body");
        // ... and Jenkins ignores parameters it does not declare.
        let call =
            parse_jenkins(&format!("cause=4&REPO=r&BRANCH=b&BRANCH_TO=main&approval={HEAD}&approved_by=carol"), b"")
                .expect("parse");
        let request = normalise(
            &approving_project(),
            RawTrigger { repo: "git://127.0.0.1:5602/demo.git".into(), ..call.trigger },
            TriggerKind::Jenkins,
            OffsetDateTime::UNIX_EPOCH,
        )
        .expect("request");
        assert_eq!(request.approval, None);
    }

    #[test]
    fn fork_clone_url_uses_the_fork_path() {
        assert_eq!(fork_clone_url(&project(), "forks/bob/demo"), "git://127.0.0.1:5602/forks/bob/demo.git");
    }
}
