//! The HTTP side of Pagure's API: rustls on the aws-lc-rs provider the AWS SDK already
//! links (one crypto library in the Lambda binaries), the system's root certificates, no
//! redirects (they would resend the token), retries with backoff for what may pass.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use bridge_core::forge::{Flag, FlagTarget, PullRequestFacts, RetryPolicy};

use crate::{FlagPosted, ListedFlag, PagureError, answers};
use bridge_core::auth::Secret;

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
        let authorization = token_header(token)?;
        self.with_retries(target, || async {
            let sent = self
                .http
                .post(url.clone())
                .header(reqwest::header::AUTHORIZATION, authorization.clone())
                .json(&body)
                .send()
                .await;
            self.answer(target, sent, |bytes| answers::flag_posted(bytes, target, &flag.uid)).await
        })
        .await
    }

    /// The flags Pagure shows for a commit or pull request (public: no token).
    pub async fn list_flags(&self, pagure_url: &Url, target: &FlagTarget) -> Result<Vec<ListedFlag>, PagureError> {
        let url = endpoint(pagure_url, target)?;
        self.with_retries(target, || async {
            let sent = self.http.get(url.clone()).send().await;
            self.answer(target, sent, |bytes| answers::flag_list(bytes, target)).await
        })
        .await
    }

    /// A pull request as Pagure's API has it (status, author, target branch, head).
    /// `project_path` is `[ns/]name` of the target; `token` is sent when given (private
    /// projects answer only with one). Retried like a flag call: whether it builds, and
    /// where, depends on the answer.
    pub async fn pull_request(
        &self,
        pagure_url: &Url,
        project_path: &str,
        id: u64,
        token: Option<&Secret>,
    ) -> Result<PullRequestFacts, PagureError> {
        let url = pagure_url
            .join(&format!("api/0/{project_path}/pull-request/{id}"))
            .map_err(|e| PagureError::Invalid(format!("pull-request URL under {pagure_url}: {e}")))?;
        self.read(url, token, &format!("pull request #{id} of {project_path}"), answers::pull_request).await
    }

    /// Whether `user` may commit to `branch` of `project_path` (`GET …/hascommit`, which
    /// follows the project's users, groups and per-branch ACLs; no token needed for a public
    /// project). Both values go in the query, encoded.
    pub async fn has_commit(
        &self,
        pagure_url: &Url,
        project_path: &str,
        user: &str,
        branch: &str,
        token: Option<&Secret>,
    ) -> Result<bool, PagureError> {
        let mut url = pagure_url
            .join(&format!("api/0/{project_path}/hascommit"))
            .map_err(|e| PagureError::Invalid(format!("hascommit URL under {pagure_url}: {e}")))?;
        url.query_pairs_mut().append_pair("user", user).append_pair("branch", branch);
        let what = format!("whether `{user}` may commit to `{branch}` of {project_path}");
        self.read(url, token, &what, answers::has_commit).await
    }

    /// Whether Pagure has the project `project_path` (`GET /api/0/<project>`, public; a
    /// private project answers only with a token of someone who may see it): its full
    /// name as Pagure spells it, `None` on 404.
    pub async fn project(
        &self,
        pagure_url: &Url,
        project_path: &str,
        token: Option<&Secret>,
    ) -> Result<Option<String>, PagureError> {
        let url = pagure_url
            .join(&format!("api/0/{project_path}"))
            .map_err(|e| PagureError::Invalid(format!("project URL under {pagure_url}: {e}")))?;
        let what = format!("project {project_path}");
        self.call(reqwest::Method::GET, url, token, &what, answers::project_fullname).await
    }

    /// The user an API token belongs to (`POST /api/0/-/whoami`, which writes nothing):
    /// checks a token before it is stored. A wrong or expired token is refused (401).
    pub async fn whoami(&self, pagure_url: &Url, token: &Secret) -> Result<String, PagureError> {
        let url = pagure_url
            .join("api/0/-/whoami")
            .map_err(|e| PagureError::Invalid(format!("whoami URL under {pagure_url}: {e}")))?;
        self.call(reqwest::Method::POST, url, Some(token), "the API token's owner", answers::whoami)
            .await?
            .ok_or_else(|| PagureError::Invalid("the API token's owner: HTTP 404 (no whoami endpoint)".into()))
    }

    /// A GET of one of Pagure's read endpoints, with the flag calls' retries on 5xx, 429,
    /// timeouts and connection failures; a 4xx or an answer `parse` refuses is final.
    async fn read<T>(
        &self,
        url: Url,
        token: Option<&Secret>,
        what: &str,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<T, PagureError> {
        self.call(reqwest::Method::GET, url, token, what, parse)
            .await?
            .ok_or_else(|| PagureError::Invalid(format!("{what}: HTTP 404 (not found)")))
    }

    /// [`Self::read`] with any method; a 404 is `None`.
    async fn call<T>(
        &self,
        method: reqwest::Method,
        url: Url,
        token: Option<&Secret>,
        what: &str,
        parse: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, PagureError> {
        let authorization = token.map(token_header).transpose()?;
        let mut last = String::new();
        for n in 1..=self.retry.attempts {
            if n > 1 {
                tokio::time::sleep(self.retry.delay(n - 1)).await;
            }
            let mut call = self.http.request(method.clone(), url.clone());
            if let Some(authorization) = &authorization {
                call = call.header(reqwest::header::AUTHORIZATION, authorization.clone());
            }
            let why = match call.send().await {
                Err(e) => describe(&e),
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Err(e) => format!("reading the answer: {}", describe(&e)),
                        Ok(bytes) if status.is_success() => {
                            return parse(&bytes).map(Some).map_err(|e| PagureError::Invalid(format!("{what}: {e}")));
                        }
                        Ok(_) if status == reqwest::StatusCode::NOT_FOUND => return Ok(None),
                        Ok(_) if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                            format!("HTTP {}", status.as_u16())
                        }
                        Ok(bytes) => {
                            let detail = answers::error_text(&bytes).map(|e| format!(" {e}")).unwrap_or_default();
                            return Err(PagureError::Invalid(format!("{what}: HTTP {}{detail}", status.as_u16())));
                        }
                    }
                }
            };
            tracing::warn!(what, attempt = n, of = self.retry.attempts, reason = %why, "Pagure read failed");
            last = why;
        }
        Err(PagureError::Unavailable { target: what.to_owned(), attempts: self.retry.attempts, last })
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
        Attempt::Done(Err(answers::refusal(status.as_u16(), &bytes, target)))
    }
}

/// `Authorization: token <t>`, as Pagure reads it, marked sensitive so that no log shows it.
fn token_header(token: &Secret) -> Result<reqwest::header::HeaderValue, PagureError> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("token {}", token.expose()))
        .map_err(|_| PagureError::Invalid("the Pagure API token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn endpoint(pagure_url: &Url, target: &FlagTarget) -> Result<Url, PagureError> {
    pagure_url
        .join(&crate::api_path(target))
        .map_err(|e| PagureError::Invalid(format!("flag URL for {target} under {pagure_url}: {e}")))
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
}
