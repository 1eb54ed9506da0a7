//! Reading Pagure's answers: what a flag call returned, the flags listed, a refusal's code
//! and messages, a pull request's status. Pure functions over the body, so that the fuzz
//! targets reach them without the HTTP client.

use serde::Deserialize;

use crate::{FlagPosted, ListedFlag, PagureError};
use bridge_core::forge::{FlagTarget, PullRequestFacts};

#[derive(Deserialize)]
struct PostAnswer {
    message: Option<String>,
    uid: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    error_code: Option<String>,
    errors: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ListAnswer {
    flags: Vec<ListedFlag>,
}

#[derive(Deserialize)]
struct PullRequestAnswer {
    status: String,
}

/// A 200 answer to a flag POST (`{"flag": …, "message": "Flag added|updated", "uid": …}`);
/// `sent_uid` when Pagure leaves the uid out.
pub fn flag_posted(body: &[u8], target: &FlagTarget, sent_uid: &str) -> Result<FlagPosted, PagureError> {
    let answer: PostAnswer = bridge_core::json::from_slice(body)
        .map_err(|e| PagureError::Invalid(format!("Pagure's answer for {target} is not the flag JSON: {e}")))?;
    Ok(FlagPosted {
        uid: answer.uid.unwrap_or_else(|| sent_uid.to_owned()),
        updated: answer.message.as_deref() == Some("Flag updated"),
    })
}

/// A 200 answer to a flag GET (`{"flags": [...]}`).
pub fn flag_list(body: &[u8], target: &FlagTarget) -> Result<Vec<ListedFlag>, PagureError> {
    bridge_core::json::from_slice::<ListAnswer>(body)
        .map(|a| a.flags)
        .map_err(|e| PagureError::Invalid(format!("Pagure's flag list for {target} is not the expected JSON: {e}")))
}

/// A 4xx answer: its `error_code`, `error` and `errors` when the body is Pagure's JSON, the
/// status's reason otherwise (an HTML error page, say).
pub fn refusal(status: u16, body: &[u8], target: &FlagTarget) -> PagureError {
    let answer: Option<ErrorAnswer> = bridge_core::json::from_slice(body).ok();
    let (error, code, errors) = match answer {
        Some(a) => (a.error, a.error_code, a.errors.map(|e| errors_text(&e))),
        None => (None, None, None),
    };
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("refused");
    PagureError::Refused {
        target: target.to_string(),
        status,
        // An empty code says nothing either; the flag and the logs show that none came.
        code: code.filter(|c| !c.trim().is_empty()).unwrap_or_else(|| "(no error_code)".into()),
        error: error.unwrap_or_else(|| reason.to_owned()),
        errors,
    }
}

/// A pull request's `status` (`Open`, `Merged`, `Closed`) from its JSON.
pub fn pull_request_status(body: &[u8]) -> Result<String, String> {
    bridge_core::json::from_slice::<PullRequestAnswer>(body)
        .map(|a| a.status)
        .map_err(|e| format!("not the expected pull-request JSON: {e}"))
}

#[derive(Deserialize)]
struct PullRequestJson {
    status: String,
    user: UserJson,
    branch: String,
    #[serde(default)]
    commit_stop: Option<String>,
    /// `Project.to_json` of the source; `null` (or absent) for a remote pull request.
    #[serde(default)]
    repo_from: Option<ProjectJson>,
}

#[derive(Deserialize)]
struct UserJson {
    name: String,
}

#[derive(Deserialize)]
struct ProjectJson {
    fullname: String,
}

#[derive(Deserialize)]
struct HasCommitJson {
    hascommit: bool,
}

/// Reads `T` from a body whose structs must all be JSON objects ([`crate::json`]).
fn from_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    bridge_core::json::from_slice(body).map_err(|e| e.to_string())
}

/// A pull request's JSON (`PullRequest.to_json`): status, author, target branch, head.
pub fn pull_request(body: &[u8]) -> Result<PullRequestFacts, String> {
    let pr: PullRequestJson = from_object(body).map_err(|e| format!("not the expected pull-request JSON: {e}"))?;
    let name = pr.user.name.trim();
    if name.is_empty() || pr.branch.is_empty() {
        return Err("the pull-request JSON has an empty `user.name` or `branch`".into());
    }
    let source = match pr.repo_from {
        Some(project) if project.fullname.is_empty() => {
            return Err("the pull-request JSON has an empty `repo_from.fullname`".into());
        }
        Some(project) => Some(project.fullname),
        None => None,
    };
    Ok(PullRequestFacts {
        status: pr.status,
        author: name.to_owned(),
        target_branch: pr.branch,
        head: pr.commit_stop.filter(|c| !c.is_empty()),
        source,
    })
}

/// The answer of `GET /api/0/<repo>/hascommit` (`{"args": …, "hascommit": true|false}`).
pub fn has_commit(body: &[u8]) -> Result<bool, String> {
    from_object::<HasCommitJson>(body).map(|a| a.hascommit).map_err(|e| format!("not the expected hascommit JSON: {e}"))
}

/// The answer of `GET /api/0/<repo>` (`Project.to_json`): the project's full name.
pub fn project_fullname(body: &[u8]) -> Result<String, String> {
    from_object::<ProjectJson>(body).map(|p| p.fullname).map_err(|e| format!("not the expected project JSON: {e}"))
}

#[derive(Deserialize)]
struct WhoamiJson {
    username: String,
}

/// The answer of `POST /api/0/-/whoami` (`{"username": …}`).
pub fn whoami(body: &[u8]) -> Result<String, String> {
    from_object::<WhoamiJson>(body).map(|w| w.username).map_err(|e| format!("not the expected whoami JSON: {e}"))
}

/// `<error_code>: <error>` of a refusal body, when it is Pagure's JSON.
pub fn error_text(body: &[u8]) -> Option<String> {
    let answer: ErrorAnswer = from_object(body).ok()?;
    match (answer.error_code, answer.error) {
        (Some(code), Some(error)) => Some(format!("{code}: {error}")),
        (code, error) => code.or(error),
    }
}

/// `errors` is a string (`"Invalid token"`) or a map of field → messages.
fn errors_text(errors: &serde_json::Value) -> String {
    match errors {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(field, messages)| {
                let messages = match messages {
                    serde_json::Value::Array(items) => {
                        items.iter().filter_map(|m| m.as_str()).collect::<Vec<_>>().join(" ")
                    }
                    other => other.to_string(),
                };
                format!("{field}: {messages}")
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_core::forge::FlagOn;

    fn target() -> FlagTarget {
        FlagTarget { project_path: "demo".into(), on: FlagOn::PullRequest(2) }
    }

    #[test]
    fn errors_detail_reads_both_shapes() {
        assert_eq!(errors_text(&serde_json::json!("Invalid token")), "Invalid token");
        let fields = serde_json::json!({"status": ["Not a valid choice."], "url": ["Invalid input."]});
        assert_eq!(errors_text(&fields), "status: Not a valid choice.; url: Invalid input.");
    }

    #[test]
    fn a_refusal_without_json_keeps_the_status_reason() {
        let error = refusal(404, b"<html>Not Found</html>", &target());
        assert!(
            matches!(&error, PagureError::Refused { status: 404, code, error, errors: None, .. }
                if code == "(no error_code)" && error == "Not Found"),
            "{error:?}"
        );
        assert!(matches!(refusal(499, b"", &target()), PagureError::Refused { error, .. } if error == "refused"));
    }

    #[test]
    fn answers_are_read_or_refused_with_a_reason() {
        let posted = flag_posted(br#"{"message": "Flag updated", "uid": "abc"}"#, &target(), "sent").expect("posted");
        assert_eq!(posted, FlagPosted { uid: "abc".into(), updated: true });
        assert_eq!(flag_posted(b"{}", &target(), "sent").expect("posted").uid, "sent");
        assert!(flag_posted(b"<html>", &target(), "sent").is_err());
        assert!(flag_list(br#"{"flags": []}"#, &target()).expect("list").is_empty());
        assert_eq!(pull_request_status(br#"{"id": 2, "status": "Merged"}"#).as_deref(), Ok("Merged"));
        assert!(pull_request_status(b"[]").is_err());
    }

    /// The fuzz finding `\x01["ek", "", "er"]`: serde read the refusal struct from an array,
    /// in field order, and the error code came out empty. An array is not Pagure's JSON.
    #[test]
    fn answers_spelled_as_arrays_are_not_read() {
        let error = refusal(401, br#"["ek", "", "er"]"#, &target());
        assert!(
            matches!(&error, PagureError::Refused { code, error, errors: None, .. }
                if code == "(no error_code)" && error == "Unauthorized"),
            "{error:?}"
        );
        assert!(flag_posted(br#"["Flag updated", "abc"]"#, &target(), "sent").is_err());
        assert!(flag_list(br#"[[]]"#, &target()).is_err());
        assert!(flag_list(br#"{"flags": [["u", "c", "http://x", "success"]]}"#, &target()).is_err());
        assert!(pull_request_status(br#"["Merged"]"#).is_err());
        let error = refusal(400, br#"{"error_code": " ", "error": "Bad"}"#, &target());
        assert!(matches!(&error, PagureError::Refused { code, .. } if code == "(no error_code)"), "{error:?}");
    }

    #[test]
    fn trust_answers_are_read_or_refused() {
        let pr = br#"{"id": 2, "status": "Open", "branch": "main", "branch_from": "fix", "commit_stop": "05bab967134e26fd2a307065b49ce0bc2a2063ed",
            "user": {"name": "alice", "fullname": "Alice"}, "repo_from": {"fullname": "forks/alice/demo"}, "comments": []}"#;
        assert_eq!(
            pull_request(pr),
            Ok(PullRequestFacts {
                status: "Open".into(),
                author: "alice".into(),
                target_branch: "main".into(),
                head: Some("05bab967134e26fd2a307065b49ce0bc2a2063ed".into()),
                source: Some("forks/alice/demo".into()),
            })
        );
        let no_head = br#"{"status": "Open", "branch": "main", "commit_stop": null, "user": {"name": "alice"}}"#;
        assert_eq!(pull_request(no_head).map(|p| p.head), Ok(None));
        // A remote PR (Pagure's own sample, pull-request.new): no source project.
        let remote = br#"{"status": "Open", "branch": "main", "user": {"name": "bob"},
            "remote_git": "https://git.example.org/carol/remote.git", "repo_from": null}"#;
        assert_eq!(pull_request(remote).map(|p| p.source), Ok(None));
        assert_eq!(pull_request(no_head).map(|p| p.source), Ok(None), "absent is as null: never trusted");
        let same = br#"{"status": "Open", "branch": "main", "user": {"name": "alice"},
            "repo_from": {"fullname": "ns/demo", "name": "demo", "namespace": "ns", "parent": null, "user": {"name": "pingou"}}}"#;
        assert_eq!(pull_request(same).map(|p| p.source), Ok(Some("ns/demo".into())));
        for bad in [
            &br#"["Open", {"name": "alice"}, "main"]"#[..],
            br#"{"status": "Open", "branch": "main", "user": ["alice"]}"#,
            br#"{"status": "Open", "branch": "main"}"#,
            br#"{"status": "Open", "branch": "main", "user": {"name": " "}}"#,
            br#"{"status": "Open", "branch": "", "user": {"name": "alice"}}"#,
            br#"{"status": "Open", "branch": "main", "user": {"name": "alice"}, "repo_from": ["forks/alice/demo"]}"#,
            br#"{"status": "Open", "branch": "main", "user": {"name": "alice"}, "repo_from": "forks/alice/demo"}"#,
            br#"{"status": "Open", "branch": "main", "user": {"name": "alice"}, "repo_from": {"name": "demo"}}"#,
            br#"{"status": "Open", "branch": "main", "user": {"name": "alice"}, "repo_from": {"fullname": ""}}"#,
            b"<html>",
        ] {
            assert!(pull_request(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(has_commit(br#"{"args": {"user": "alice", "branch": "main"}, "hascommit": true}"#), Ok(true));
        assert_eq!(has_commit(br#"{"hascommit": false}"#), Ok(false));
        for bad in [&br#"[true]"#[..], br#"{"hascommit": "true"}"#, br#"{"hascommit": null}"#, br#"{}"#] {
            assert!(has_commit(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            error_text(br#"{"error": "Invalid or incomplete input submitted", "error_code": "EINVALIDREQ"}"#)
                .as_deref(),
            Some("EINVALIDREQ: Invalid or incomplete input submitted")
        );
        assert_eq!(error_text(b"<html>"), None);
    }
}
