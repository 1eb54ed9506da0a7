//! The HTTP side of the flag API (feature `pagure-client`, on by default: the fuzz targets
//! build without it, and without its TLS stack).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Flag, FlagPosted, FlagTarget, ListedFlag, PagureError, RetryPolicy};
use crate::auth::Secret;

/// A client for Pagure's flag endpoints. Cheap to clone; build it once per process.
#[derive(Debug, Clone)]
pub struct PagureClient {
    http: reqwest::Client,
    retry: RetryPolicy,
}

#[derive(Serialize)]
struct FlagBody<'a> {
    username: &'a str,
    comment: &'a str,
    url: &'a str,
    status: &'a str,
    /// A string: a JSON number makes Pagure answer 500 (and a numeric 0 is stored as null).
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<String>,
    uid: &'a str,
}

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

/// One attempt's result: done, or worth another attempt and why.
enum Attempt<T> {
    Done(Result<T, PagureError>),
    Again(String),
}

impl PagureClient {
    /// TLS is rustls with the system's root certificates.
    pub fn new(retry: RetryPolicy) -> Result<Self, PagureError> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no system root certificates found: https calls to Pagure will fail");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PagureError::Invalid(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout.min(Duration::from_secs(5)))
            // A flag call is never redirected by Pagure; following one would resend the token.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pagure-ci-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PagureError::Invalid(format!("HTTP client setup: {e}")))?;
        Ok(PagureClient { http, retry: RetryPolicy { attempts: retry.attempts.max(1), ..retry } })
    }

    /// Adds the flag, or updates the one with the same uid on the same commit.
    pub async fn post_flag(
        &self,
        pagure_url: &Url,
        target: &FlagTarget,
        flag: &Flag,
        token: &Secret,
    ) -> Result<FlagPosted, PagureError> {
        flag.check()?;
        let url = endpoint(pagure_url, target)?;
        let body = FlagBody {
            username: &flag.username,
            comment: &flag.comment,
            url: &flag.url,
            status: flag.status.as_str(),
            percent: flag.percent.map(|p| p.to_string()),
            uid: &flag.uid,
        };
        let mut authorization = reqwest::header::HeaderValue::from_str(&format!("token {}", token.expose()))
            .map_err(|_| PagureError::Invalid("the Pagure API token is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        self.with_retries(target, || async {
            let sent = self
                .http
                .post(url.clone())
                .header(reqwest::header::AUTHORIZATION, authorization.clone())
                .json(&body)
                .send()
                .await;
            self.answer(target, sent, |bytes| {
                let answer: PostAnswer = serde_json::from_slice(bytes).map_err(|e| {
                    PagureError::Invalid(format!("Pagure's answer for {target} is not the flag JSON: {e}"))
                })?;
                Ok(FlagPosted {
                    uid: answer.uid.unwrap_or_else(|| flag.uid.clone()),
                    updated: answer.message.as_deref() == Some("Flag updated"),
                })
            })
            .await
        })
        .await
    }

    /// The flags Pagure shows for a commit or pull request (public: no token).
    pub async fn list_flags(&self, pagure_url: &Url, target: &FlagTarget) -> Result<Vec<ListedFlag>, PagureError> {
        let url = endpoint(pagure_url, target)?;
        self.with_retries(target, || async {
            let sent = self.http.get(url.clone()).send().await;
            self.answer(target, sent, |bytes| {
                serde_json::from_slice::<ListAnswer>(bytes).map(|a| a.flags).map_err(|e| {
                    PagureError::Invalid(format!("Pagure's flag list for {target} is not the expected JSON: {e}"))
                })
            })
            .await
        })
        .await
    }

    /// A pull request's `status` as Pagure's API has it (`Open`, `Merged`, `Closed`): one
    /// attempt, as the answer is only advice. `project_path` is `[ns/]name` of the target.
    pub async fn pull_request_status(
        &self,
        pagure_url: &Url,
        project_path: &str,
        id: u64,
        token: Option<&Secret>,
    ) -> Result<String, PagureError> {
        #[derive(Deserialize)]
        struct PullRequestAnswer {
            status: String,
        }
        let url = pagure_url
            .join(&format!("api/0/{project_path}/pull-request/{id}"))
            .map_err(|e| PagureError::Invalid(format!("pull-request URL under {pagure_url}: {e}")))?;
        let mut call = self.http.get(url);
        if let Some(token) = token {
            // Private projects answer only with a token.
            let mut authorization = reqwest::header::HeaderValue::from_str(&format!("token {}", token.expose()))
                .map_err(|_| PagureError::Invalid("the Pagure API token is not a valid header value".into()))?;
            authorization.set_sensitive(true);
            call = call.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = call.send().await.map_err(|e| PagureError::Invalid(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(PagureError::Invalid(format!(
                "pull request #{id} of {project_path}: HTTP {}",
                status.as_u16()
            )));
        }
        let bytes = response.bytes().await.map_err(|e| PagureError::Invalid(describe(&e)))?;
        serde_json::from_slice::<PullRequestAnswer>(&bytes).map(|a| a.status).map_err(|e| {
            PagureError::Invalid(format!("pull request #{id} of {project_path}: not the expected JSON: {e}"))
        })
    }

    async fn with_retries<T, F, Fut>(&self, target: &FlagTarget, attempt: F) -> Result<T, PagureError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut last = String::new();
        for n in 1..=self.retry.attempts {
            if n > 1 {
                tokio::time::sleep(self.retry.delay(n - 1)).await;
            }
            match attempt().await {
                Attempt::Done(result) => return result,
                Attempt::Again(why) => {
                    tracing::warn!(%target, attempt = n, of = self.retry.attempts, reason = %why, "Pagure call failed");
                    last = why;
                }
            }
        }
        Err(PagureError::Unavailable { target: target.to_string(), attempts: self.retry.attempts, last })
    }

    async fn answer<T>(
        &self,
        target: &FlagTarget,
        sent: Result<reqwest::Response, reqwest::Error>,
        parse: impl FnOnce(&[u8]) -> Result<T, PagureError>,
    ) -> Attempt<T> {
        let response = match sent {
            Ok(response) => response,
            // reqwest's message names the URL (no token in it) and the kind of failure.
            Err(e) => return Attempt::Again(describe(&e)),
        };
        let status = response.status();
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return Attempt::Again(format!("reading the answer: {}", describe(&e))),
        };
        if status.is_success() {
            return Attempt::Done(parse(&bytes));
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Attempt::Again(format!("HTTP {}", status.as_u16()));
        }
        let answer: Option<ErrorAnswer> = serde_json::from_slice(&bytes).ok();
        let (error, code, errors) = match answer {
            Some(a) => (a.error, a.error_code, a.errors.map(|e| errors_text(&e))),
            None => (None, None, None),
        };
        Attempt::Done(Err(PagureError::Refused {
            target: target.to_string(),
            status: status.as_u16(),
            code: code.unwrap_or_else(|| "(no error_code)".into()),
            error: error.unwrap_or_else(|| status.canonical_reason().unwrap_or("refused").to_owned()),
            errors,
        }))
    }
}

fn endpoint(pagure_url: &Url, target: &FlagTarget) -> Result<Url, PagureError> {
    pagure_url
        .join(&target.api_path())
        .map_err(|e| PagureError::Invalid(format!("flag URL for {target} under {pagure_url}: {e}")))
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

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_sent_as_a_string() {
        let body = FlagBody {
            username: "u",
            comment: "c",
            url: "https://example.org/",
            status: "success",
            percent: Some(100.to_string()),
            uid: "a",
        };
        let json = serde_json::to_value(&body).unwrap_or_default();
        assert_eq!(json["percent"], serde_json::json!("100"));
        let pending = FlagBody { percent: None, ..body };
        let json = serde_json::to_value(&pending).unwrap_or_default();
        assert!(json.get("percent").is_none());
    }

    #[test]
    fn errors_detail_reads_both_shapes() {
        assert_eq!(errors_text(&serde_json::json!("Invalid token")), "Invalid token");
        let fields = serde_json::json!({"status": ["Not a valid choice."], "url": ["Invalid input."]});
        assert_eq!(errors_text(&fields), "status: Not a valid choice.; url: Invalid input.");
    }
}
