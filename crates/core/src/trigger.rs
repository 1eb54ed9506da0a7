//! The three ways a build is asked for, each parsed into the same [`RawTrigger`], then
//! normalised by one function into a [`BuildRequest`]: the same event gives the same request
//! whichever door it came through.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::ProjectConfig;
use crate::error::Rejection;
use crate::model::{BuildRequest, BuildTarget, Cause, TriggerKind};
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
    let t: JsonTrigger = serde_json::from_slice(body).map_err(|e| {
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
    match serde_json::from_slice::<Envelope<Msg>>(body) {
        Ok(envelope) if envelope.topic == topic => Ok(envelope.msg),
        Ok(envelope) => Err(mismatch(&envelope.topic)),
        Err(e) if e.is_data() => {
            // Well-formed JSON of the wrong shape. A body of another topic is the likelier
            // mistake, so check that first (only on this error path).
            match serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(body) {
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
}

#[derive(Deserialize)]
struct CommentJson {
    id: u64,
    comment: String,
    #[serde(default)]
    notification: bool,
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
            if topic == "pull-request.comment.added" {
                let newest = pr.comments.iter().max_by_key(|c| c.id);
                let asks =
                    newest.is_some_and(|c| !c.notification && rebuild_phrases.iter().any(|p| p == c.comment.trim()));
                if !asks {
                    return Ok(WebhookOutcome::Ignore("the new comment does not ask for a rebuild".into()));
                }
            }
            // As pagure-ci: a remote PR is built from the target repository (its head is
            // `refs/pull/<id>/head` there); a fork PR from the fork; else the project itself.
            let repo = match (&pr.remote_git, &pr.repo_from) {
                (None, Some(from)) => fork_clone_url(project, &from.fullname),
                _ => project.repo.clone_url(None),
            };
            Ok(WebhookOutcome::Build(RawTrigger {
                cause: pr.id.to_string(),
                repo,
                branch: pr.branch_from,
                branch_to: Some(pr.branch),
                rebuild: topic == "pull-request.comment.added",
            }))
        }
        other => {
            envelope::<serde::de::IgnoredAny>(topic, body)?;
            Ok(WebhookOutcome::Ignore(format!("topic `{other}` does not start builds")))
        }
    }
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
mod tests {
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

    #[test]
    fn fork_clone_url_uses_the_fork_path() {
        assert_eq!(fork_clone_url(&project(), "forks/bob/demo"), "git://127.0.0.1:5602/forks/bob/demo.git");
    }
}
