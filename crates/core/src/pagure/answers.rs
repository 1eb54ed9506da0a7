//! Reading Pagure's answers: what a flag call returned, the flags listed, a refusal's code
//! and messages, a pull request's status. Pure functions over the body, so that the fuzz
//! targets reach them without the HTTP client.

use serde::Deserialize;

use super::{FlagPosted, FlagTarget, ListedFlag, PagureError};

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
    let answer: PostAnswer = serde_json::from_slice(body)
        .map_err(|e| PagureError::Invalid(format!("Pagure's answer for {target} is not the flag JSON: {e}")))?;
    Ok(FlagPosted {
        uid: answer.uid.unwrap_or_else(|| sent_uid.to_owned()),
        updated: answer.message.as_deref() == Some("Flag updated"),
    })
}

/// A 200 answer to a flag GET (`{"flags": [...]}`).
pub fn flag_list(body: &[u8], target: &FlagTarget) -> Result<Vec<ListedFlag>, PagureError> {
    serde_json::from_slice::<ListAnswer>(body)
        .map(|a| a.flags)
        .map_err(|e| PagureError::Invalid(format!("Pagure's flag list for {target} is not the expected JSON: {e}")))
}

/// A 4xx answer: its `error_code`, `error` and `errors` when the body is Pagure's JSON, the
/// status's reason otherwise (an HTML error page, say).
pub fn refusal(status: u16, body: &[u8], target: &FlagTarget) -> PagureError {
    let answer: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
    let (error, code, errors) = match answer {
        Some(a) => (a.error, a.error_code, a.errors.map(|e| errors_text(&e))),
        None => (None, None, None),
    };
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("refused");
    PagureError::Refused {
        target: target.to_string(),
        status,
        code: code.unwrap_or_else(|| "(no error_code)".into()),
        error: error.unwrap_or_else(|| reason.to_owned()),
        errors,
    }
}

/// A pull request's `status` (`Open`, `Merged`, `Closed`) from its JSON.
pub fn pull_request_status(body: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<PullRequestAnswer>(body)
        .map(|a| a.status)
        .map_err(|e| format!("not the expected pull-request JSON: {e}"))
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
    use crate::pagure::FlagOn;

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
}
