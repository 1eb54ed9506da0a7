//! The accept handler: route, authenticate, validate, enqueue, answer. The Lambda (function
//! URL) and local mode both translate their requests into [`TriggerHttpRequest`] and call
//! [`AcceptService::handle`]; nothing else happens before the answer. A forge's web-hooks
//! are authenticated and read by its [`WebhookDialect`], given at construction.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use time::OffsetDateTime;

use crate::auth::{Presented, parse_authorization, signature256_matches, token_matches};
use crate::config::{AcceptConfig, ProjectConfig, is_project_key};
use crate::error::{Rejection, json_response};
use crate::metrics::{self, Metric};
use crate::model::{BuildRequest, TriggerKind};
use crate::ports::{ProjectSecrets, Queue, QueueError, Secrets};
use crate::trigger::{
    RawTrigger, TriggerError, TriggerErrorKind, WebhookDialect, WebhookOutcome, normalise, parse_jenkins, parse_json,
};

/// An HTTP request as the handler sees it, whatever carried it.
#[derive(Debug, Clone)]
pub struct TriggerHttpRequest {
    pub method: Method,
    /// The path as received (still percent-encoded), without the query.
    pub path: String,
    /// The raw query string, without `?` (empty when there is none).
    pub query: String,
    pub headers: HeaderMap,
    /// The body; adapters may cut it at `max_body_bytes + 1`, which is enough to refuse it.
    pub body: Bytes,
    pub source_ip: Option<IpAddr>,
    /// `https` behind a function URL, `http` in local mode: used to build `Location`.
    pub scheme: &'static str,
}

/// Header names the JSON door reads; `HeaderMap` lookups ignore case. (The web-hook door's
/// are its dialect's.)
pub mod headers {
    /// A JSON trigger may be signed as Pagure signs its web-hooks instead of carrying a token.
    pub const PAGURE_SIGNATURE_256: &str = "x-pagure-signature-256";
}

/// The routes, after an optional `/jenkins` prefix for the Jenkins ones.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    Crumb,
    Jenkins { prefix: &'static str, job: String },
    Json { key: String },
    Webhook { key: String },
}

impl Route {
    fn method(&self) -> (Method, &'static str) {
        match self {
            Route::Health | Route::Crumb => (Method::GET, "GET"),
            _ => (Method::POST, "POST"),
        }
    }
}

fn route(path: &str) -> Option<Route> {
    if path == "/healthz" {
        return Some(Route::Health);
    }
    if let Some(key) = path.strip_prefix("/trigger/") {
        return Some(Route::Json { key: key.to_owned() });
    }
    if let Some(key) = path.strip_prefix("/webhook/") {
        return Some(Route::Webhook { key: key.to_owned() });
    }
    let (prefix, rest) = match path.strip_prefix("/jenkins") {
        Some(rest) if rest.starts_with('/') => ("/jenkins", rest),
        _ => ("", path),
    };
    if rest == "/crumbIssuer/api/json" {
        return Some(Route::Crumb);
    }
    // `/job/a/job/b/buildWithParameters` (Jenkins folders) names job `a/b`.
    let rest = rest.strip_suffix("/buildWithParameters").or_else(|| rest.strip_suffix("/build"))?;
    let mut segments = rest.split('/');
    if segments.next() != Some("") {
        return None;
    }
    let mut job = Vec::new();
    while let Some(marker) = segments.next() {
        let name = segments.next()?;
        if marker != "job" || name.is_empty() {
            return None;
        }
        job.push(percent_decode(name));
    }
    if job.is_empty() {
        return None;
    }
    Some(Route::Jenkins { prefix, job: job.join("/") })
}

/// A path segment decoded: `%XX` escapes only (a `+` stays a `+`, as in any path), and bytes
/// that are not UTF-8 shown as U+FFFD (no project key has one).
fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// The handler and what it depends on. Built once per process; `handle` is re-entrant.
#[derive(Debug)]
pub struct AcceptService<Q, S> {
    config: AcceptConfig,
    queue: Q,
    secrets: S,
    /// The web-hook door's forge (`bridge_pagure::PagureWebhooks`).
    webhooks: Box<dyn WebhookDialect>,
}

impl<Q: Queue, S: Secrets> AcceptService<Q, S> {
    /// `webhooks` reads the web-hooks of the forge the projects live on.
    pub fn new(config: AcceptConfig, queue: Q, secrets: S, webhooks: impl WebhookDialect + 'static) -> Self {
        AcceptService { config, queue, secrets, webhooks: Box::new(webhooks) }
    }

    pub fn config(&self) -> &AcceptConfig {
        &self.config
    }

    /// Answers one request. Refusals are logged (code, reason, route; never a credential)
    /// and counted.
    ///
    /// One span per request, its fields recorded once known: `project` once the project is
    /// found, `request_id` and `cause` once the trigger is normalised. At ERROR level, so
    /// that it is enabled at any log level and the warnings and errors inside carry them.
    pub async fn handle(&self, request: TriggerHttpRequest) -> Response<Bytes> {
        use tracing::field::Empty;
        let span = tracing::error_span!("accept", request_id = Empty, project = Empty, cause = Empty);
        tracing::Instrument::instrument(self.answer(request), span).await
    }

    async fn answer(&self, request: TriggerHttpRequest) -> Response<Bytes> {
        match self.dispatch(&request).await {
            Ok(response) => response,
            Err(rejection) => {
                let class = metrics::class_of_status(rejection.status);
                metrics::count(Metric::RequestsRefused, &[(metrics::REASON, rejection.code), (metrics::CLASS, class)]);
                tracing::warn!(
                    status = rejection.status.as_u16(),
                    error = rejection.code,
                    reason = %rejection.reason,
                    method = %request.method,
                    path = %loggable_path(&request.path),
                    source_ip = %request.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    "trigger refused"
                );
                rejection.into_response()
            }
        }
    }

    async fn dispatch(&self, request: &TriggerHttpRequest) -> Result<Response<Bytes>, Rejection> {
        if !self.config.source_allowed(request.source_ip) {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "source_not_allowed",
                "this address may not call the bridge: ask its administrator to add it to the source allow-list",
            ));
        }
        let route = route(&request.path).ok_or_else(|| {
            Rejection::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint: use /job/<job>/buildWithParameters (Pagure CI, type jenkins), /trigger/<project> (JSON) or /webhook/<project> (Pagure web-hooks)",
            )
        })?;
        let (method, allow) = route.method();
        if request.method != method {
            return Err(Rejection::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this endpoint answers {allow} only"),
            )
            .with_header(header::ALLOW, allow));
        }
        let declared_length = request
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let limit = self.config.max_body_bytes;
        if request.body.len() > limit || declared_length.is_some_and(|n| n > limit as u64) {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than the {limit} bytes this bridge accepts"),
            ));
        }
        match route {
            Route::Health => Ok(json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
            // python-jenkins asks for a CSRF crumb first; 404 means "none needed". This is
            // the normal handshake, not a refusal, so it is not logged as one.
            Route::Crumb => Ok(Rejection::new(
                StatusCode::NOT_FOUND,
                "no_crumb",
                "this bridge needs no CSRF crumb: POST to job/<job>/buildWithParameters directly",
            )
            .into_response()),
            Route::Jenkins { prefix, job } => self.jenkins(request, prefix, &job).await,
            Route::Json { key } => self.json(request, &key).await,
            Route::Webhook { key } => self.webhook(request, &key).await,
        }
    }

    async fn project(&self, key: &str, kind: TriggerKind) -> Result<Arc<ProjectConfig>, Rejection> {
        let found = self.config.projects.get(key).await.map_err(|e| {
            tracing::error!(error = %e, "project registry unavailable");
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_unavailable",
                "the bridge cannot read its project registry right now; try again shortly",
            )
        })?;
        let project = found
            .filter(|_| is_project_key(key))
            .ok_or_else(|| {
                Rejection::new(
                    StatusCode::NOT_FOUND,
                    "unknown_project",
                    format!(
                        "no project `{}` is configured on this bridge: check the job name in Pagure's CI settings or the URL",
                        key.chars().take(80).collect::<String>()
                    ),
                )
            })?;
        tracing::Span::current().record("project", key);
        if !project.accepts(kind) {
            return Err(Rejection::new(
                StatusCode::FORBIDDEN,
                "trigger_disabled",
                format!("project `{key}` does not take {} triggers (see its `triggers` setting)", kind.as_str()),
            ));
        }
        Ok(project)
    }

    async fn project_secrets(&self, key: &str) -> Result<ProjectSecrets, Rejection> {
        let document = self.secrets.document().await.map_err(|e| {
            tracing::error!(error = %e, "secrets unavailable");
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secrets_unavailable",
                "the bridge cannot read its secrets right now; try again shortly",
            )
        })?;
        Ok(document.project(key).cloned().unwrap_or_default())
    }

    async fn jenkins(
        &self,
        request: &TriggerHttpRequest,
        prefix: &str,
        job: &str,
    ) -> Result<Response<Bytes>, Rejection> {
        let project = self.project(job, TriggerKind::Jenkins).await?;
        let project = &*project;
        if !request.body.is_empty()
            && media_type(&request.headers).as_deref() != Some("application/x-www-form-urlencoded")
        {
            return Err(unsupported_media_type("an empty body or application/x-www-form-urlencoded parameters"));
        }
        let call = parse_jenkins(&request.query, &request.body)?;
        let secrets = self.project_secrets(job).await?;
        let expected = secrets.trigger_token.as_ref().ok_or_else(|| no_secret(job, "trigger_token"))?;
        let presented = call.token.as_deref().ok_or_else(|| {
            Rejection::unauthorized(
                "missing_credentials",
                "the `token` parameter is missing: set Pagure CI's token in the project's settings",
            )
        })?;
        if !token_matches(presented.as_bytes(), expected) {
            return Err(Rejection::unauthorized(
                "invalid_token",
                "the token does not match this project's Pagure CI token (Settings → Hooks → Pagure CI)",
            ));
        }
        if let (Some(user), Some(password)) = (&secrets.jenkins_username, &secrets.jenkins_password) {
            let basic = header_str(&request.headers, header::AUTHORIZATION.as_str()).map(parse_authorization);
            let ok = matches!(&basic, Some(Presented::Basic { user: u, password: p })
                if token_matches(u.as_bytes(), &crate::auth::Secret::new(user.clone())) & token_matches(p.expose().as_bytes(), password));
            if !ok {
                return Err(Rejection::unauthorized(
                    "invalid_credentials",
                    "this project requires the HTTP Basic credentials set as Pagure CI's username and password",
                )
                .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"pagure-ci-bridge\""));
            }
        }
        let build = self.enqueue(project, call.trigger, TriggerKind::Jenkins).await?;
        let host = header_str(&request.headers, header::HOST.as_str()).unwrap_or("localhost");
        let location = format!("{}://{host}{prefix}/queue/item/{}/", request.scheme, build.queue_item_number());
        let mut response = json_response(
            StatusCode::CREATED,
            &serde_json::json!({"request_id": build.request_id, "queue_item": build.queue_item_number()}),
        );
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    }

    async fn json(&self, request: &TriggerHttpRequest, key: &str) -> Result<Response<Bytes>, Rejection> {
        let project = self.project(key, TriggerKind::Json).await?;
        let project = &*project;
        if media_type(&request.headers).as_deref() != Some("application/json") {
            return Err(unsupported_media_type("application/json"));
        }
        let secrets = self.project_secrets(key).await?;
        if let Some(value) = header_str(&request.headers, header::AUTHORIZATION.as_str()) {
            let expected = secrets.trigger_token.as_ref().ok_or_else(|| no_secret(key, "trigger_token"))?;
            let Presented::Token(token) = parse_authorization(value) else {
                return Err(Rejection::unauthorized(
                    "invalid_credentials",
                    "use `Authorization: token <t>` or `Bearer <t>`",
                ));
            };
            if !token_matches(token.as_bytes(), expected) {
                return Err(Rejection::unauthorized(
                    "invalid_token",
                    "the token does not match this project's trigger token",
                ));
            }
        } else if let Some(signature) = header_str(&request.headers, headers::PAGURE_SIGNATURE_256) {
            let key_secret = secrets.hook_token.as_ref().ok_or_else(|| no_secret(key, "hook_token"))?;
            if !signature256_matches(&request.body, signature, key_secret) {
                return Err(bad_signature());
            }
        } else {
            return Err(Rejection::unauthorized(
                "missing_credentials",
                "send `Authorization: token <t>` or sign the body with X-Pagure-Signature-256",
            ));
        }
        let raw = parse_json(&request.body)?;
        let build = self.enqueue(project, raw, TriggerKind::Json).await?;
        Ok(queued(&build))
    }

    async fn webhook(&self, request: &TriggerHttpRequest, key: &str) -> Result<Response<Bytes>, Rejection> {
        let project = self.project(key, TriggerKind::Webhook).await?;
        let project = &*project;
        if media_type(&request.headers).as_deref() != Some("application/json") {
            return Err(unsupported_media_type("application/json"));
        }
        let secrets = self.project_secrets(key).await?;
        let hook_token = secrets.hook_token.as_ref().ok_or_else(|| no_secret(key, "hook_token"))?;
        let outcome = self.webhooks.read_delivery(
            project,
            &request.headers,
            &request.body,
            hook_token,
            &self.config.rebuild_phrases,
        )?;
        match outcome {
            WebhookOutcome::Build(raw) => {
                let build = self.enqueue(project, raw, TriggerKind::Webhook).await?;
                Ok(queued(&build))
            }
            WebhookOutcome::Approve(raw, approval) => {
                // Only here, behind the web-hook signature, does a request carry an approval.
                let build =
                    normalise(project, raw, TriggerKind::Webhook, OffsetDateTime::now_utc())?.approved(approval);
                let build = self.send(build).await?;
                Ok(queued(&build))
            }
            WebhookOutcome::Ignore(why) => {
                tracing::info!(project = key, reason = %why, "web-hook ignored");
                Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({"ignored": why})))
            }
        }
    }

    async fn enqueue(
        &self,
        project: &ProjectConfig,
        raw: RawTrigger,
        kind: TriggerKind,
    ) -> Result<BuildRequest, Rejection> {
        self.send(normalise(project, raw, kind, OffsetDateTime::now_utc())?).await
    }

    async fn send(&self, build: BuildRequest) -> Result<BuildRequest, Rejection> {
        let span = tracing::Span::current();
        span.record("request_id", build.request_id.as_str());
        span.record("project", build.project.key.as_str());
        span.record("cause", build.cause.as_trigger_value().as_str());
        self.queue.enqueue(&build).await.map_err(|e| {
            tracing::error!(error = %e, "enqueue failed");
            let code = match e {
                QueueError::Full => "queue_full",
                QueueError::Unavailable(_) => "queue_unavailable",
            };
            Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                format!("{e}; nothing was queued, send the trigger again shortly"),
            )
        })?;
        metrics::count(Metric::RequestsAccepted, &[]);
        tracing::info!(
            idempotency_key = %build.idempotency_key,
            project = %build.project.key,
            fork_user = build.project.fork_user.as_deref().unwrap_or(""),
            cause = %build.cause.as_trigger_value(),
            branch = %build.branch,
            trigger = build.trigger.as_str(),
            approved_by = build.approval.as_ref().map_or("", |a| a.by.as_str()),
            "build request queued"
        );
        Ok(build)
    }
}

fn queued(build: &BuildRequest) -> Response<Bytes> {
    json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({"request_id": build.request_id, "idempotency_key": build.idempotency_key, "status": "queued"}),
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::CONTENT_TYPE.as_str())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn unsupported_media_type(wanted: &str) -> Rejection {
    Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("this endpoint takes {wanted}"),
    )
}

fn bad_signature() -> Rejection {
    Rejection::unauthorized(
        "invalid_signature",
        "X-Pagure-Signature-256 does not match the body: check the project's hook_token in the bridge's secret against the key on Pagure's project Settings, tab \"Private Web Hook Key\" (not Project options, which holds only the web-hook URLs)",
    )
}

fn no_secret(key: &str, field: &str) -> Rejection {
    tracing::error!(project = key, field, "secret not configured");
    Rejection::unauthorized(
        "not_configured",
        format!(
            "the bridge has no {field} for project `{key}`: its administrator must add projects.{key}.{field} to the secret"
        ),
    )
}

/// The one place a refused trigger gets its HTTP status: a delivery without credentials or
/// with a wrong signature is 401, a repository outside the project (the SSRF boundary) or a
/// web-hook from another forge instance 403, every other refusal of the trigger's content
/// 400. The body's `error` is the refusal's stable code.
impl From<TriggerError> for Rejection {
    fn from(error: TriggerError) -> Self {
        let status = match error.kind {
            TriggerErrorKind::MissingCredentials | TriggerErrorKind::InvalidSignature => StatusCode::UNAUTHORIZED,
            TriggerErrorKind::RepoNotAllowed | TriggerErrorKind::WrongInstance => StatusCode::FORBIDDEN,
            TriggerErrorKind::InvalidCause
            | TriggerErrorKind::InvalidBranch
            | TriggerErrorKind::InvalidField
            | TriggerErrorKind::MissingField
            | TriggerErrorKind::MalformedBody => StatusCode::BAD_REQUEST,
        };
        Rejection::new(status, error.code(), error.reason)
    }
}

/// The path is logged; the query is not (it carries Jenkins' `token=`).
fn loggable_path(path: &str) -> String {
    path.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
